"""Claims are read strictly: impossible values are `error` decisions naming the field, and a
fact name the policy does not declare is a warning with a did-you-mean (an error when strict)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from medpol.api import load_policy

ROOT = Path(__file__).resolve().parent.parent
FIRST = json.loads((ROOT / "tests/fixtures/contract/claims.jsonl").read_text().splitlines()[0])


@pytest.fixture(scope="module")
def pump():
    return load_policy(ROOT / "policies" / "external-infusion-pump.policy")


def with_facts(**facts) -> dict:
    claim = copy.deepcopy(FIRST)
    claim["facts"].update(facts)
    return claim


@pytest.mark.parametrize(
    ("facts", "field", "says"),
    [
        ({"cycle_number": -1e25}, "facts.cycle_number", "is negative: a count is 0 or more"),
        ({"cycle_number": -1}, "facts.cycle_number", "is negative: a count is 0 or more"),
        ({"infusion_hours": -3}, "facts.infusion_hours", "is negative: a measure is 0 or more"),
        ({"face_to_face_date": "2025-02-30"}, "facts.face_to_face_date", "February 2025 has 28 days"),
    ],
)
def test_impossible_fact_values_are_errors_naming_the_field(pump, facts, field, says):
    decision = pump.decide(with_facts(**facts))
    assert decision["outcome"] == "error"
    assert decision["field"] == field
    assert says in decision["message"]


def test_a_birth_date_after_the_date_of_service_is_an_error(pump):
    claim = copy.deepcopy(FIRST)
    claim["member"]["birth_date"] = "2026-05-01"
    decision = pump.decide(claim)
    assert (decision["outcome"], decision["field"]) == ("error", "member.birth_date")


def test_a_misspelt_fact_is_a_warning_with_a_did_you_mean(pump):
    decision = pump.decide(with_facts(cd19_positiv=True))
    assert decision["warnings"] == [
        "`facts.cd19_positiv` is not a fact of this policy and was ignored (did you mean `cd19_positive`?)"
    ]
    assert decision["lines"][0]["outcome"] == "covered"  # the claim still carries cd19_positive


def test_strict_makes_an_unknown_fact_an_error(pump):
    pump.engine.facts.strict = True
    try:
        decision = pump.decide(with_facts(cd19_positiv=True))
    finally:
        pump.engine.facts.strict = False
    assert decision["outcome"] == "error"
    assert decision["field"] == "facts.cd19_positiv"
    assert "did you mean `cd19_positive`?" in decision["message"]


def test_the_owned_base_must_be_one_of_the_policys_base_items(pump):
    claim = copy.deepcopy(FIRST)
    claim["lines"] = [line for line in claim["lines"] if line["hcpcs"] == "J9039"]
    claim["facts"]["owned_pump"] = "J9039"  # a drug, not a pump
    decision = pump.decide(claim)
    assert (decision["outcome"], decision["field"]) == ("error", "facts.owned_pump")
    assert "is not a pump this policy knows" in decision["message"]
    claim["facts"]["owned_pump"] = "E0781"
    assert pump.decide(claim)["lines"][0]["outcome"] == "covered"
