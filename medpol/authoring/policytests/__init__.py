"""Policy tests: the YAML cases kept beside a policy (`NAME.tests.yaml`), run, and the criteria
they exercise measured, one module per job: load (read a tests file into cases), compare (a
decision against a case's expectations), coverage (what the cases exercised) and run (the runner).

Each case is decided with the compiled policy and compared line by line; it is also decided by
the reference interpreter, whose trace gives the explanation tree of a failure and the coverage.
Coverage counts, per policy, the rules evaluated, the criteria (nodes of a rule's condition) seen
true and seen false, and the HCPCS codes and ICD-10-CM entries the cases exercised.

The command line that runs them (`medpol test`) is medpol.cli.test; the tests of medpol itself
are in the repository's tests/ folder, not here.
"""
