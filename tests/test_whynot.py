"""What would change a decision: the routes `why_not` offers cover the line, and nothing less does."""

from __future__ import annotations

import datetime
import itertools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from medpol.api import load_library, load_policy
from medpol.engine.whynot import describe_routes, why_not, with_facts
from tests.claimbuilder import SET1, claim, line
from tests.strategies import claims, glucose_claims, indicated_pump_claims, policy_claims

ROOT = Path(__file__).resolve().parent.parent
PUMP = load_policy(ROOT / "policies" / "external-infusion-pump.policy")
GLUCOSE = load_policy(ROOT / "policies" / "glucose-monitors.policy")

# Criteria set 1 and set 2, as the policy's boundaries give them.
ROUTE_SET1 = {
    "home_parenteral_necessary": True,
    "infusion_hours": 8,
    "prolonged_infusion_efficacy_proven": True,
    "pump_necessary_for_safety": True,
    "regimen_advantage_proven": True,
}
ROUTE_SET2 = {
    "home_parenteral_necessary": True,
    "infusion_hours": 7,
    "no_office_return_required": True,
    "pump_necessary_for_safety": True,
    "toxicity_requires_controlled_rate": True,
}
# Situation J, item 3: CD19 positive, Philadelphia chromosome-negative B-cell ALL.
ITEM3 = {"all_setting": "cd19_ph_negative", "cd19_positive": True, "ph_negative": True}


def blinatumomab_claim(**facts):
    """A pump, blinatumomab and cassettes for a member with B-cell ALL meeting item 3."""
    return claim(
        "E0781",
        line("J9039", units=140),
        line("A4222", units=2),
        diagnoses=["C91.00"],
        facts={**ITEM3, **facts},
    )


# ---------------------------------------------------------------- examples


def test_pending_blinatumomab_lists_criteria_set_1_and_set_2():
    decision = why_not(PUMP, blinatumomab_claim())
    pump, drug, cassettes = decision["lines"]
    assert pump["outcome"] == "pending"
    assert [r["facts"] for r in pump["why_not"]] == [ROUTE_SET1, ROUTE_SET2]
    assert "Criteria set 1" in pump["why_not"][0]["route"]
    assert "Criteria set 2" in pump["why_not"][1]["route"]
    assert all("item 3" in r["route"] for r in pump["why_not"])
    # What to send: each route's facts, all of them missing from the claim.
    assert pump["missing_by_route"] == [
        {"route": pump["why_not"][0]["route"], "missing": sorted(ROUTE_SET1)},
        {"route": pump["why_not"][1]["route"], "missing": sorted(ROUTE_SET2)},
    ]
    assert set().union(*(r["missing"] for r in pump["missing_by_route"])) == set(pump["missing"])
    # The drug follows the pump: its routes are the pump's.
    assert drug["why_not"] == pump["why_not"]
    # Intermittent infusion also needs a cassette per dose.
    assert cassettes["why_not"][1]["facts"] == {**ROUTE_SET2, "doses": 2}
    assert "not denied by misc.cassettes_per_dose" in cassettes["why_not"][1]["route"]


def test_a_denied_line_whose_only_route_needs_a_diagnosis_is_closed():
    decision = why_not(PUMP, claim("E0781", line("J0895"), facts=SET1))
    for denied in decision["lines"]:
        assert denied["outcome"] == "denied"
        assert denied["why_not"] == [
            {
                "route": "External infusion pumps are commonly used for (commonly_used.deferoxamine)",
                "closed": "needs a diagnosis in chronic_iron_overload",
            }
        ]
        assert "missing_by_route" not in denied


def test_an_item_not_yet_in_effect_is_named_with_the_date_it_needs():
    decision = why_not(PUMP, blinatumomab_claim(**SET1), as_of=datetime.date(2026, 1, 24))
    pump = decision["lines"][0]
    assert pump["outcome"] == "denied"
    closed = [r for r in pump["why_not"] if "closed" in r]
    assert {
        "route": "J. Blinatumomab (J.blinatumomab): item 3",
        "closed": "needs a date of service on or after 2026-01-25",
    } in closed
    # Items 1 and 2 are open, by answering the setting differently.
    opened = [r["facts"] for r in pump["why_not"] if "facts" in r]
    assert {"all_setting": "relapsed_refractory", "cycle_number": 9} in opened


def test_a_denial_is_cleared_by_negating_it():
    decision = why_not(PUMP, blinatumomab_claim(**SET1, documentation_received_before_delivery=False))
    pump = decision["lines"][0]
    assert pump["outcome"] == "denied"
    assert pump["why_not"] == [
        {
            "facts": {"documentation_received_before_delivery": True},
            "route": "J. Blinatumomab (J.blinatumomab): Criteria set 1; item 3; not denied by documentation.aca_6407",
        }
    ]
    assert describe_routes(pump["why_not"]) == (
        "J. Blinatumomab (J.blinatumomab): Criteria set 1; item 3; not denied by documentation.aca_6407: "
        "documentation_received_before_delivery true"
    )


def test_covered_and_other_lines_are_left_as_they_are():
    covered = blinatumomab_claim(**SET1)
    assert why_not(PUMP, covered) == PUMP.decide(covered)
    medicare = claim("E0781", line("J9039"), lob="medicare")
    assert why_not(PUMP, medicare) == PUMP.decide(medicare)


@pytest.mark.parametrize(
    "odd",
    [
        None,
        "a claim",
        [],
        {"id": "no-lines"},
        {"id": "x", "member": {"id": "m"}, "lines": []},
        claim("E0781", facts={"infusion_hours": "long"}),
        claim(line("E0781", date="2026-02-30")),
    ],
)
def test_an_odd_claim_is_left_as_it_is(odd):
    assert why_not(PUMP, odd) == PUMP.decide(odd)


def test_a_decision_of_another_claim_is_left_as_it_is():
    other = PUMP.decide(claim("E0781", "J9039", "A4222"))
    assert why_not(PUMP, claim("E0781"), decision=other) == other


def test_a_library_decides_each_line_by_its_policy():
    library = load_library([ROOT / "policies"])
    mixed = claim("E0781", line("J9039", units=140), line("A4253"), diagnoses=["C91.00", "E11.9"], facts=ITEM3)
    decision = why_not(library, mixed)
    pump, _, strips = decision["lines"]
    assert pump["policy"] == "external-infusion-pump" and [r["facts"] for r in pump["why_not"]] == [
        ROUTE_SET1,
        ROUTE_SET2,
    ]
    assert strips["policy"] == "glucose-monitors" and strips["outcome"] == "pending"
    for route in strips["why_not"]:
        assert library.decide(with_facts(mixed, route["facts"]))["lines"][2]["outcome"] == "covered"


def test_with_facts_answers_for_every_line_and_leaves_the_claim_alone():
    original = claim("E0781", line("J9039", facts={"compounded": True}), facts={"infusion_hours": 4})
    sent = with_facts(original, {"compounded": False, "infusion_hours": 8})
    assert sent["facts"] == {**original["facts"], "compounded": False, "infusion_hours": 8}
    assert sent["lines"][1]["facts"] == {"compounded": False}
    assert original["lines"][1]["facts"] == {"compounded": True} and original["facts"]["infusion_hours"] == 4


# ---------------------------------------------------------------- properties


def _sent(claim_: dict) -> set[str]:
    """Facts the claim sends, on itself or on any line."""
    names = {n for n, v in claim_["facts"].items() if v is not None}
    for ln in claim_["lines"]:
        names |= {n for n, v in (ln.get("facts") or {}).items() if v is not None}
    return names


def _smaller(route: dict, answered: set[str]):
    """The strict subsets of a route that could cover the line if any strict subset does.

    Every one, for a short route. For a longer one it is enough to drop one fact, or any
    set of the answers the route changes: a fact the claim does not answer, given a value,
    only narrows the claims a line is covered for (three-valued logic is monotone), so a
    covering subset can be grown back to the route, fact by unanswered fact, still covering.
    """
    names = sorted(route)
    if len(names) <= 5:
        for size in range(1, len(names)):
            yield from itertools.combinations(names, size)
        return
    for name in names:
        yield tuple(n for n in names if n != name)
    changed = [n for n in names if n in answered]
    for size in range(2, len(changed) + 1):
        for dropped in itertools.combinations(changed, size):
            yield tuple(n for n in names if n not in dropped)


def check_routes(policy, claim_: dict) -> None:
    decision = why_not(policy, claim_)
    if decision.get("outcome") == "error":
        assert decision == policy.decide(claim_)
        return
    assert [ln["seq"] for ln in decision["lines"]] == [ln["seq"] for ln in claim_["lines"]]
    sent = _sent(claim_)
    # A default answers a fact the claim does not send.
    answered = sent | {n for n, fact in policy.model.facts.items() if fact.has_default}
    for index, decided in enumerate(decision["lines"]):
        if decided["outcome"] not in ("denied", "pending"):
            assert "why_not" not in decided
            continue
        for route in decided["why_not"]:
            assert route["route"]
            if "closed" in route:
                assert set(route) == {"route", "closed"} and route["closed"].startswith(("needs", "denied", "referred"))
                continue
            facts = route["facts"]
            assert facts and all(isinstance(v, (bool, int, float, str)) for v in facts.values())
            covered = policy.decide(with_facts(claim_, facts))["lines"][index]
            assert covered["outcome"] == "covered", (route, covered)
            for subset in _smaller(facts, answered):
                less = policy.decide(with_facts(claim_, {n: facts[n] for n in subset}))["lines"][index]
                assert less["outcome"] != "covered", (route, subset)
        if decided["outcome"] == "pending":
            opened = [(r["route"], sorted(r["facts"])) for r in decided["why_not"] if "facts" in r]
            for group in decided["missing_by_route"]:
                assert (group["route"], group["missing"]) in opened
                assert not sent & set(group["missing"])


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(claim_=claims(PUMP.model))
def test_pump_routes_cover_and_are_minimal(claim_):
    check_routes(PUMP, claim_)


@PROPERTY
@given(claim_=indicated_pump_claims(PUMP.model))
def test_pump_routes_of_indicated_drugs_cover_and_are_minimal(claim_):
    check_routes(PUMP, claim_)


@PROPERTY
@given(claim_=glucose_claims(GLUCOSE.model))
def test_glucose_monitor_routes_cover_and_are_minimal(claim_):
    check_routes(GLUCOSE, claim_)


# The other encoded policies, with claims drawn from what each declares: fewer examples,
# as each draws from a larger space of facts.
OTHERS = {
    name: load_policy(ROOT / "policies" / f"{name}.policy")
    for name in ("manual-wheelchair-bases", "wheelchair-seating", "osteogenesis-stimulators")
}


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_routes_cover_and_are_minimal_for_every_encoded_policy(name):
    policy = OTHERS[name]

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(claim_=policy_claims(policy.model))
    def check(claim_):
        check_routes(policy, claim_)

    check()
