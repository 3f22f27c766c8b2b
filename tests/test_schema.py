"""The contract's JSON Schema is written once (medpol.service.schema): the docs' copy and the
service's OpenAPI document are that schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from medpol.service import schema

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_schema_is_the_modules():
    printed = subprocess.run(
        [sys.executable, "-m", "medpol.service.schema"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert (ROOT / "docs" / "claims.schema.json").read_text(encoding="utf-8") == printed, (
        "docs/claims.schema.json is stale: python -m medpol.service.schema > docs/claims.schema.json"
    )


def test_the_openapi_document_holds_the_schemas():
    document = schema.openapi("1")
    assert document["components"]["schemas"]["Claim"] is schema.CLAIM
    assert document["components"]["schemas"]["Decision"] is schema.DECISION
    json.dumps(document)  # plain JSON throughout


def test_the_schema_names_every_field_of_the_contract_examples():
    claims = [json.loads(line) for line in (ROOT / "tests/fixtures/contract/claims.jsonl").read_text().splitlines()]
    decisions = [
        json.loads(line) for line in (ROOT / "tests/fixtures/contract/expected.jsonl").read_text().splitlines()
    ]
    for claim in claims:
        assert set(claim) <= set(schema.CLAIM["properties"])
        for line in claim["lines"]:
            assert set(line) <= set(schema.CLAIM["properties"]["lines"]["items"]["properties"])
    for decision in decisions:
        assert set(decision) <= set(schema.DECISION["properties"])
        for line in decision["lines"]:
            assert set(line) <= set(schema.LINE_DECISION["properties"]), set(line) - set(
                schema.LINE_DECISION["properties"]
            )
            assert line["outcome"] in schema.OUTCOMES
