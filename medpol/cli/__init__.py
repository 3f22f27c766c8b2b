"""The `medpol` command line: the main group and its commands (main), `medpol fmt` (fmt),
`medpol lsp` (lsp), `medpol serve` and `medpol fhir` (serve), `medpol test` and `medpol new` (test).

It owns options, exit codes and what the commands print; the work is done by the other
sub-packages. `python -m medpol.cli` runs it as the `medpol` script does.
"""
