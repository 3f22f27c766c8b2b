"""Deciding claims: read a claim, decide each line with a compiled policy (or a library of them),
and say why: the reasons, the criteria that failed, what would change a decision, the trace.

It owns the claims contract in code (claims, contract, facts), the engine (decide), error
decisions, failed criteria, why-not routes, explanation trees and the library of policies.
It does not parse or compile policies (medpol.dsl, medpol.compiler), read files of claims in
bulk (medpol.batch), or speak HTTP or FHIR (medpol.service).
"""
