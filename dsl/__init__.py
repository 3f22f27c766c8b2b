"""The medpol policy language: grammar, parser, typed IR and diagnostics."""
