"""medpol: medical coverage policies as code.

The public Python API is medpol.api. The language is medpol.dsl and its compiler medpol.compiler;
the sub-packages by job: engine (deciding claims), batch (files of claims, workers), authoring
(policy tests, scaffolding, editor support), history (revisions, diffs, impact), publish (the
site), service (HTTP, FHIR, JSON Schema) and cli (the `medpol` command line).
"""
