"""The compiled predicates agree with the reference interpreter on generated claims,
under every policy of the library."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpol.api import load_policy
from tests.strategies import claims, fact_strategy, glucose_claims, policy_claims

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "policies" / "external-infusion-pump.policy")
INTERPRETED = POLICY.interpreted()
GLUCOSE = load_policy(ROOT / "policies" / "glucose-monitors.policy")
GLUCOSE_INTERPRETED = GLUCOSE.interpreted()
LIBRARY = sorted((ROOT / "policies").glob("*.policy"))


def without_trace(decision: dict) -> dict:
    lines = [{k: v for k, v in line.items() if k != "trace"} for line in decision["lines"]]
    return {**decision, "lines": lines}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=claims(POLICY.model), as_of=st.one_of(st.none(), st.just(datetime.date(2026, 1, 24))))
def test_compiled_and_interpreted_decisions_agree(claim, as_of):
    compiled = POLICY.decide(claim, as_of)
    interpreted = without_trace(INTERPRETED.decide(claim, as_of))
    assert compiled == interpreted


@settings(max_examples=200, deadline=None)
@given(claim=claims(POLICY.model))
def test_every_line_gets_a_contract_outcome(claim):
    decision = POLICY.decide(claim)
    assert [line["seq"] for line in decision["lines"]] == [line["seq"] for line in claim["lines"]]
    for line in decision["lines"]:
        assert line["outcome"] in {"covered", "denied", "pending", "refer", "not_applicable", "error"}
        if line["outcome"] == "pending":
            assert line["missing"] and line["missing"] == sorted(line["missing"])
        if line["outcome"] in ("covered", "denied"):
            assert line["reasons"]
        if line["outcome"] == "denied":
            assert line["category"] in {"not_reasonable_and_necessary", "incorrect_coding", "not_covered"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claim=glucose_claims(GLUCOSE.model))
def test_glucose_monitor_decisions_agree_and_units_add_up(claim):
    compiled = GLUCOSE.decide(claim)
    assert compiled == without_trace(GLUCOSE_INTERPRETED.decide(claim))
    for line, billed in zip(compiled["lines"], claim["lines"], strict=True):
        if "allowed_units" in line:
            assert line["allowed_units"] + line["denied_units"] == billed["units"]
            assert 0 <= line["allowed_units"] < billed["units"]
            if line["outcome"] == "covered":  # paid in part: the limit's denial says why
                assert line["allowed_units"] > 0 and line["denied_reasons"]
            else:  # nothing fits: the line is denied by the limit itself
                assert line["outcome"] == "denied" and line["allowed_units"] == 0 and line["reasons"]


@st.composite
def library_claims(draw, model):
    """A claim under any policy: its codes on dates around its revision and its items'
    windows, with facts of its lines, the member's history of its codes, and modifiers."""
    claim = draw(policy_claims(model))
    codes = sorted(model.governed)
    days = sorted({line["service_date"] for line in claim["lines"]})
    for line in claim["lines"]:
        if draw(st.integers(0, 2)) == 0:
            line["modifiers"] = draw(st.lists(st.sampled_from(["RR", "NU", "KX", "GA", "KF"]), max_size=2))
        if draw(st.integers(0, 3)) == 0:
            line["facts"] = draw(fact_strategy(model, per_line=True))
    claim["history"] = [
        {
            "hcpcs": draw(st.sampled_from(codes)),
            "service_date": draw(st.sampled_from(days)),
            "units": draw(st.sampled_from([1, 2, 6])),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    claim["member"]["line_of_business"] = draw(st.sampled_from(["medicare", "commercial", "medicaid"]))
    return claim


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_every_policy_decides_as_its_interpreter(path):
    policy = load_policy(path)
    interpreted = policy.interpreted()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(claim=library_claims(policy.model), as_of=st.one_of(st.none(), st.just(datetime.date(2026, 1, 24))))
    def agree(claim, as_of):
        assert policy.decide(claim, as_of) == without_trace(interpreted.decide(claim, as_of))

    agree()


def test_codes_no_rule_names_share_one_compiled_decision():
    """The drug a claim's facts name for its pump can be any code: codes no rule names plan
    alike, so deciding pumps for many of them compiles a handful of decisions, not one each,
    and each line is decided as the interpreter decides it."""
    policy = load_policy(ROOT / "policies" / "external-infusion-pump.policy")
    interpreted = policy.interpreted()
    for i in range(300):
        claim = {
            "id": f"C-{i}",
            "member": {"id": "M-1", "birth_date": "1960-04-01", "line_of_business": "commercial"},
            "diagnoses": ["C91.00"],
            "lines": [{"seq": 1, "hcpcs": "E0781", "service_date": "2026-03-02"}],
            "facts": {"home_parenteral_necessary": True, "pump_drug": f"Q{i:03d}"},
        }
        decision = policy.decide(claim)
        assert decision["lines"][0]["outcome"] != "error"
        assert decision == without_trace(interpreted.decide(claim))
    compiled = {id(fn) for fn in policy.engine._decisions.values()}
    assert len(compiled) <= 2
