"""The claims contract (docs/claims-contract.md) as JSON Schema, and the service's OpenAPI document.

The schemas here are the one statement of the claim and decision shapes in JSON Schema:
`medpol serve` publishes them in its OpenAPI document (`GET /openapi.json`), and
docs/service.md shows them as `python -m medpol.service.schema` prints them (a test keeps the two
the same). They describe what `read_claim` accepts and what a decision holds: the claim's
is generated from the Structs that decode claims (medpol.engine.contract). The reader itself stays
the judge of a claim (a claim that breaks the schema gets an `error`
decision naming the field, not a refusal).
"""

from __future__ import annotations

import json
import sys

from medpol.engine.contract import claim_schema

DATE = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}

# The claim's schema is the one its decoder's Structs imply (medpol.engine.contract); the
# decision's is written here.
CLAIM = claim_schema()

REASON = {
    "type": "object",
    "required": ["rule", "text"],
    "properties": {
        "rule": {"type": "string"},
        "text": {"type": "string", "description": "the policy passage"},
        "source": {"type": "string", "description": "where the passage stands in the policy"},
        "policy": {"type": "string", "description": "on a line several policies decide: the reason's policy"},
    },
}
FAILED = {
    "type": "object",
    "required": ["id", "text"],
    "properties": {
        "id": {"type": "string"},
        "text": {"type": "string"},
        "source": {"type": "string"},
        "facts": {"type": "object"},
        "effective": DATE,
        "until": DATE,
    },
}
OUTCOMES = ["covered", "denied", "pending", "refer", "not_applicable", "error"]
CATEGORIES = ["not_reasonable_and_necessary", "incorrect_coding", "not_covered"]

LINE_DECISION = {
    "title": "LineDecision",
    "type": "object",
    "required": ["seq", "hcpcs", "outcome"],
    "properties": {
        "seq": {"type": ["integer", "null"]},
        "hcpcs": {"type": ["string", "null"]},
        "outcome": {"enum": OUTCOMES},
        "category": {"enum": CATEGORIES, "description": "on a denied line: how it is denied"},
        "reasons": {"type": "array", "items": REASON},
        "failed": {"type": "array", "items": FAILED},
        "missing": {"type": "array", "items": {"type": "string"}, "description": "on a pending line"},
        "refer_to": {"type": "string", "description": "on a referred line: the policy that governs it"},
        "message": {"type": "string", "description": "on an error line: why"},
        "field": {"type": "string"},
        "allowed_units": {"type": "number"},
        "denied_units": {"type": "number"},
        "denied_category": {"enum": CATEGORIES, "description": "on a line paid in part: how the rest is denied"},
        "denied_reasons": {"type": "array", "items": REASON},
        "base": {"type": "object", "description": "the base line (a pump) a drug or supply follows"},
        "policy": {"type": "string", "description": "under a library: the policy the outcome follows"},
        "revision": {"type": ["string", "null"]},
        "decisions": {"type": "array", "items": {"type": "object"}},
        "path": {"type": "array", "items": {"type": "object"}},
        "why_not": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"facts": {"type": "object"}, "route": {"type": "string"}, "closed": {"type": "string"}},
            },
        },
        "missing_by_route": {"type": "array", "items": {"type": "object"}},
    },
}

DECISION = {
    "title": "Decision",
    "description": "One decision per claim, one entry per claim line in line order "
    "(docs/claims-contract.md, section 2). Under a library, `policy` and `revision` are on each line.",
    "type": "object",
    "required": ["claim", "lines"],
    "properties": {
        "claim": {"type": ["string", "null"]},
        "policy": {"type": ["string", "null"]},
        "revision": {"type": ["string", "null"]},
        "outcome": {"const": "error", "description": "only on a claim that cannot be read"},
        "field": {"type": "string"},
        "message": {"type": "string"},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "lines": {"type": "array", "items": LINE_DECISION},
    },
}

ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["error", "status"],
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
}


def schemas() -> dict:
    """The contract's schemas, by name, as the OpenAPI document's components hold them."""
    return {"Claim": CLAIM, "Decision": DECISION, "LineDecision": LINE_DECISION, "Error": ERROR}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi(version: str = "0") -> dict:
    """The OpenAPI 3.1 document of `medpol serve`."""
    claim = {"$ref": "#/components/schemas/Claim"}
    decision = {"$ref": "#/components/schemas/Decision"}
    date_param = {"type": "string", "format": "date"}
    parameters = [
        {
            "name": "as_of",
            "in": "query",
            "schema": date_param,
            "description": "decide every line as if served on this date (as `medpol eval --as-of`)",
        },
        {
            "name": "known_at",
            "in": "query",
            "schema": date_param,
            "description": "decide under the revisions published on this date, from git (as `--known-at`)",
        },
        {
            "name": "why_not",
            "in": "query",
            "schema": {"type": "boolean"},
            "description": "each denied or pending line also lists the least facts that would cover it",
        },
        {
            "name": "format",
            "in": "query",
            "schema": {"type": "string", "enum": ["fhir"]},
            "description": "answer with FHIR ClaimResponses, as `Accept: application/fhir+json` asks",
        },
    ]
    text = {"type": "string"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "medpol decision service",
            "version": version,
            "description": "Decides claims under the plan's coverage policies, line by line, each decision "
            "citing the policy passage behind it. The same decisions as `medpol eval`.",
        },
        "paths": {
            "/v1/decisions": {
                "post": {
                    "summary": "Decide one claim, or a batch of claims",
                    "parameters": parameters,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": claim},
                            "application/x-ndjson": {
                                "schema": text,
                                "description": "JSON Lines: one claim per line",
                            },
                            "application/fhir+json": {
                                "schema": {"type": "object"},
                                "description": "a FHIR R4 (R4B) Claim, or a Bundle holding one with its Patient "
                                "and QuestionnaireResponse",
                            },
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "the decision (JSON), the decisions in input order (JSON Lines), or a "
                            "FHIR ClaimResponse (with `Accept: application/fhir+json`)",
                            "content": {
                                "application/json": {"schema": decision},
                                "application/x-ndjson": {"schema": text},
                                "application/fhir+json": {"schema": {"type": "object"}},
                            },
                        },
                        "400": _error("the body or a parameter cannot be read, or a parameter is unknown"),
                        "413": _error("the body or the batch is larger than the service takes"),
                        "415": _error("a content type (or a charset other than UTF-8) the service does not read"),
                        "422": _error("the revisions published by `known_at` do not compile"),
                    },
                }
            },
            "/v1/policies": {
                "get": {
                    "summary": "The policies served, with their revisions and effective dates",
                    "responses": {"200": {"description": "the policies", "content": {"application/json": {}}}},
                }
            },
            "/v1/policies/{id}": {
                "get": {
                    "summary": "One policy: its revision, history, facts and codes",
                    "parameters": [{"name": "id", "in": "path", "required": True, "schema": text}],
                    "responses": {
                        "200": {"description": "the policy", "content": {"application/json": {}}},
                        "404": _error("no policy served has this id"),
                    },
                }
            },
            "/v1/policies/{id}/questionnaire": {
                "get": {
                    "summary": "The policy's FHIR Questionnaire: every fact it reads, as a question",
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": text},
                        {
                            "name": "base",
                            "in": "query",
                            "schema": text,
                            "description": "the canonical base of the Questionnaire's url",
                        },
                    ],
                    "responses": {
                        "200": {"description": "a FHIR Questionnaire", "content": {"application/fhir+json": {}}},
                        "400": _error("a parameter is unknown"),
                        "404": _error("no policy served has this id"),
                    },
                }
            },
            "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "Policies are loaded; `degraded` with the diagnostics when a changed policy no "
                    "longer compiles and the last good one is still served",
                    "responses": {"200": {"description": "ready, or degraded (the last good policies serving)"}},
                }
            },
        },
        "components": {"schemas": schemas()},
    }


def main() -> None:
    """Print the claim and decision schemas (`python -m medpol.service.schema`), as docs/service.md shows them."""
    json.dump({"Claim": CLAIM, "Decision": DECISION}, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
