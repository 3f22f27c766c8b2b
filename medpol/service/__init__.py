"""Decisions for other systems: the HTTP decision service (serve), FHIR R4 in and out (fhir), and
the claims contract as JSON Schema with the service's OpenAPI document (schema).

It does not decide claims itself (medpol.engine) and holds no command line (medpol.cli serves
`medpol serve` and `medpol fhir` from here).
"""
