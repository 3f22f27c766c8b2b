"""A denied line names the criteria that failed, in the policy's words: their ids, passages,
the fact values that failed them, and the date a criterion not yet in effect takes effect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medpol.api import load_policy

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = [json.loads(line) for line in (ROOT / "tests/fixtures/contract/claims.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pump():
    return load_policy(ROOT / "policies" / "external-infusion-pump.policy")


def by_id(line: dict) -> dict:
    return {entry["id"]: entry for entry in line["failed"]}


def test_blinatumomab_before_item_3_took_effect_names_item_3_and_its_date(pump):
    claim = next(c for c in CLAIMS if c["id"] == "ex-blinatumomab-before-effective-date")
    pump_line, drug, _ = pump.decide(claim)["lines"]
    assert (drug["hcpcs"], drug["outcome"]) == ("J9039", "denied")
    failed = by_id(drug)
    item3 = failed["J.blinatumomab.cd19_ph_negative"]
    assert item3["effective"] == "2026-01-25"
    assert item3["text"].startswith("Effective 1-25-26 Blinatumomab is added")
    assert item3["source"] == "J. Blinatumomab, item 3"
    # Items 1 and 2 failed on the ALL setting the claim gives.
    assert failed["J.blinatumomab.relapsed"]["facts"] == {"all_setting": "cd19_ph_negative"}
    assert failed["J.blinatumomab.mrd_remission"]["facts"] == {"all_setting": "cd19_ph_negative"}
    # The drug follows its pump: it cites the pump line and the pump's failed criteria.
    assert drug["base"] == {"seq": 1, "hcpcs": "E0781"}
    assert drug["failed"] == pump_line["failed"]
    # On or after 2026-01-25 the same claim is covered, and carries no `failed`.
    later = pump.decide(claim, as_of=__import__("datetime").date(2026, 1, 25))["lines"][1]
    assert later["outcome"] == "covered" and "failed" not in later


def test_every_failing_item_of_an_all_of_is_named_not_only_the_first(pump):
    claim = next(c for c in CLAIMS if c["id"] == "ex-blinatumomab-after-effective-date")
    claim = json.loads(json.dumps(claim))
    claim["facts"].update(cd19_positive=False, ph_negative=False)
    drug = pump.decide(claim)["lines"][1]
    assert drug["outcome"] == "denied"
    item3 = by_id(drug)["J.blinatumomab.cd19_ph_negative"]
    assert item3["facts"] == {"cd19_positive": False, "ph_negative": False}
    assert "effective" not in item3


def test_a_denial_that_held_names_its_rule_and_the_facts_that_made_it_hold(pump):
    claim = next(c for c in CLAIMS if c["id"] == "ex-blinatumomab-after-effective-date")
    claim = json.loads(json.dumps(claim))
    claim["supplier"] = {"licensed_in_state": False}
    line = pump.decide(claim)["lines"][0]
    assert line["outcome"] == "denied"
    (entry,) = line["failed"]
    assert entry["id"] == line["reasons"][0]["rule"] == "misc.licensed_dispensing_entity"
    assert entry["facts"] == {"supplier_licensed_in_state": False}


def test_a_supply_with_no_pump_billed_or_owned_names_the_relation(pump):
    claim = next(c for c in CLAIMS if c["id"] == "ex-blinatumomab-after-effective-date")
    claim = json.loads(json.dumps(claim))
    claim["lines"] = [line for line in claim["lines"] if line["hcpcs"] == "A4222"]
    claim["facts"].pop("owned_pump", None)  # `default none`: the member owns no pump
    line = pump.decide(claim)["lines"][0]
    assert line["outcome"] == "denied"
    (entry,) = line["failed"]
    assert entry["id"] == "misc.follow_pump"
    assert entry["facts"] == {"owned_pump": None}


def test_compiled_and_explained_decisions_name_the_same_failed_criteria(pump):
    for claim in CLAIMS:
        compiled = pump.decide(claim)
        explained = pump.explain(claim)
        if compiled.get("outcome") == "error":
            continue
        for a, b in zip(compiled["lines"], explained["lines"], strict=True):
            assert a.get("failed") == b.get("failed"), (claim["id"], a["seq"])
        assert all("failed" in line for line in compiled["lines"] if line["outcome"] == "denied"), claim["id"]
