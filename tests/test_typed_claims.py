"""Claims decoded as typed data in one pass (medpol.engine.contract): the same claims, decisions
and error messages as the detailed reader, and the contract's JSON Schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.eval import generate
from medpol.api import load_policy
from medpol.batch import local as batch
from medpol.engine.claims import read_claim
from medpol.engine.contract import ClaimIn, claim_schema, decode_claim
from medpol.service import schema
from medpol.service.fhir import FhirClaims
from tests.test_claims import CLAIM_ERRORS, LINE_ERRORS, VALID, _apply, _split, claim

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"


@pytest.fixture(scope="module")
def policy():
    return load_policy(ROOT / "policies" / "external-infusion-pump.policy")


def decided(policy, raws: list[bytes], typed: bool) -> bytes:
    """The decisions `medpol eval` writes for `raws` (a FHIR claim, or facts as a
    QuestionnaireResponse, are read as the claim they map to, as there)."""
    engine = FhirClaims(policy).engine
    decisions, _ = batch.decide_items(engine, policy.id, policy.revision, 1, raws, "claims.jsonl", None, typed)
    return batch.encode(decisions)


def test_a_valid_claim_is_read_in_one_pass_as_the_reader_reads_it():
    raws = [orjson.dumps(c) for c in generate(500, 21)] + CONTRACT.read_bytes().splitlines()
    for raw in raws:
        fast = decode_claim(raw)
        assert fast is not None, raw  # every valid claim takes the fast path
        assert fast == read_claim(orjson.loads(raw))


# Claims the decoder must hand to the detailed reader: every one breaks the contract, or
# needs the reader's warnings, or holds what another JSON reader reads differently.
AWAY = [
    ("unknown field", (("extra", 1),)),
    ("unknown line field", (("lines[0].colour", "red"),)),
    ("null supplier", (("supplier", None),)),
    ("null place of service", (("lines[0].place_of_service", None),)),
    ("negative units", (("lines[1].units", -1),)),
    ("units past 64 bits", (("lines[1].units", 2**64),)),
    ("seq past 64 bits", (("lines[1].seq", 2**64),)),
    ("fact past 64 bits", (("facts.n", -(2**63) - 1),)),
    ("nested fact", (("facts.n", {"a": 1}),)),
    ("questionnaire facts", (("facts", {"resourceType": "QuestionnaireResponse", "item": []}),)),
    ("bare questionnaire facts", (("facts", {"resourceType": "QuestionnaireResponse"}),)),
    ("lowercase-free code with a space", (("lines[0].hcpcs", "E 0791"),)),
    ("non-ASCII code", (("lines[0].hcpcs", "E０791"),)),
    ("bad diagnosis", (("diagnoses", ["E83,111"]),)),
    ("duplicate seq", (("lines[1].seq", 1),)),
    ("born after service", (("member.birth_date", "2026-06-01"),)),
    ("day that does not exist", (("lines[0].service_date", "2026-02-30"),)),
    ("empty id", (("id", ""),)),
    ("empty member id", (("member.id", ""),)),
    ("history units negative", (("history", [{"hcpcs": "E0791", "service_date": "2026-01-01", "units": -1}]),)),
]
AWAY += [(p.id, ((f"lines[1].{p.values[0]}", p.values[1]),)) for p in LINE_ERRORS]


@pytest.mark.parametrize(("name", "changes"), AWAY + [(p.id, p.values[0]) for p in CLAIM_ERRORS])
def test_a_claim_the_decoder_refuses_goes_to_the_reader(name, changes):
    assert decode_claim(json.dumps(claim(*changes)).encode()) is None, name


def test_decisions_and_messages_are_byte_identical_with_and_without_the_decoder(policy):
    raws = [orjson.dumps(c) for c in generate(120, 5)] + CONTRACT.read_bytes().splitlines()
    raws += [json.dumps(claim(*changes)).encode() for _, changes in AWAY]
    raws += [json.dumps(claim(*p.values[0])).encode() for p in CLAIM_ERRORS]
    raws += [b"{not json", b"[1, 2]", b'"a claim"', b"  \n", b'{"id": "x"}', b"\xff"]
    typed, detailed = decided(policy, raws, True), decided(policy, raws, False)
    assert typed == detailed
    assert typed.count(b'"outcome":"error"') >= len(AWAY)  # the malformed ones are errors, not dropped


# JSON values to put anywhere in a valid claim.
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "E0791", "e0791", "2026-03-02", "2026-02-30", "C91.00", "commercial", "RR", "é"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "seq", "x"]), children),
    max_leaves=6,
)
_PATHS = [
    "id",
    "member",
    "member.id",
    "member.birth_date",
    "member.line_of_business",
    "supplier",
    "diagnoses",
    "diagnoses[0]",
    "lines",
    "lines[0]",
    "lines[1].seq",
    "lines[1].hcpcs",
    "lines[1].units",
    "lines[0].modifiers",
    "lines[0].service_date",
    "lines[0].place_of_service",
    "lines[0].facts",
    "facts",
    "facts.face_to_face_date",
    "facts.infusion_hours",
    "history",
    "unknown",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(_PATHS), _JSON), max_size=3))
def test_any_change_to_a_claim_is_decided_alike_by_both_readers(policy, changes):
    obj = copy.deepcopy(VALID)
    for path, value in changes:
        try:
            _apply(obj, _split(path), value)
        except (KeyError, IndexError, TypeError):
            pass  # the path no longer exists after an earlier change
    raw = json.dumps(obj).encode()
    assert decided(policy, [raw], True) == decided(policy, [raw], False)


def test_the_published_schema_is_the_decoders():
    assert schema.CLAIM == claim_schema()
    implied = msgspec.json.schema(ClaimIn)
    claim_def = implied["$defs"]["ClaimIn"]
    assert claim_def["required"] == schema.CLAIM["required"]
    assert list(claim_def["properties"]) == list(schema.CLAIM["properties"])
    # The contract lets unknown fields through (with a warning); the decoder refuses them.
    assert claim_def["additionalProperties"] is False and "additionalProperties" not in schema.CLAIM
    docs = json.loads((ROOT / "docs" / "claims.schema.json").read_text())
    assert docs["Claim"] == json.loads(json.dumps(schema.CLAIM))
