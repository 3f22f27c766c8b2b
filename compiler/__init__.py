"""The medpol compiler: resolve, check, generate and load policy predicates."""
