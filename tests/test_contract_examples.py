"""The contract's example claims decide exactly as the contract expects, in the API and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medpol.api import load_policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"
FIXTURES = ROOT / "tests" / "fixtures" / "contract"
CLAIMS = [json.loads(line) for line in (FIXTURES / "claims.jsonl").read_text().splitlines() if line.strip()]
EXPECTED = [json.loads(line) for line in (FIXTURES / "expected.jsonl").read_text().splitlines() if line.strip()]
CONTRACT_KEYS = ("seq", "outcome", "category", "missing", "refer_to")


@pytest.fixture(scope="module")
def policy():
    return load_policy(POLICY)


def contract_view(decision: dict) -> dict:
    lines = [{k: line[k] for k in CONTRACT_KEYS if k in line} for line in decision["lines"]]
    return {"claim": decision["claim"], "lines": lines}


@pytest.mark.parametrize("claim,expected", list(zip(CLAIMS, EXPECTED, strict=True)), ids=[c["id"] for c in CLAIMS])
def test_example_decides_as_the_contract_expects(policy, claim, expected):
    assert contract_view(policy.decide(claim)) == expected


@pytest.mark.parametrize("claim", CLAIMS, ids=[c["id"] for c in CLAIMS])
def test_covered_and_denied_lines_cite_the_policy(policy, claim):
    decision = policy.decide(claim)
    assert decision["policy"] == "external-infusion-pump"
    assert decision["revision"] == "22"
    for line in decision["lines"]:
        if line["outcome"] in ("covered", "denied"):
            assert line["reasons"], line
            for reason in line["reasons"]:
                assert reason["rule"] and reason["text"] and reason["source"]


def test_cli_reproduces_every_expected_decision_in_order():
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "eval", str(POLICY), str(FIXTURES / "claims.jsonl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    decisions = [json.loads(line) for line in result.stdout.splitlines()]
    assert [contract_view(d) for d in decisions] == EXPECTED


def test_blinatumomab_cites_the_effective_clause(policy):
    decision = policy.decide(CLAIMS[0])
    rules = [r["rule"] for r in decision["lines"][0]["reasons"]]
    assert "J.blinatumomab" in rules
    assert "J.blinatumomab.cd19_ph_negative" in rules
    clause = next(r for r in decision["lines"][0]["reasons"] if r["rule"] == "J.blinatumomab.cd19_ph_negative")
    assert clause["text"].startswith("Effective 1-25-26 Blinatumomab is added")
    assert clause["source"] == "J. Blinatumomab, item 3"


GLUCOSE = ROOT / "policies" / "glucose-monitors.policy"
WORKED = FIXTURES / "glucose-monitors" / "worked-example.jsonl"


def test_glucose_monitor_worked_example_through_the_cli():
    """Contract section 6: 4 units of A4253 pay 2, and a second line 20 days later is denied."""
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "eval", str(GLUCOSE), str(WORKED)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (decision,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert decision["policy"] == "glucose-monitors"
    first, second = decision["lines"]
    assert {k: first[k] for k in ("seq", "hcpcs", "outcome", "allowed_units", "denied_units", "denied_category")} == {
        "seq": 1,
        "hcpcs": "A4253",
        "outcome": "covered",
        "allowed_units": 2,
        "denied_units": 2,
        "denied_category": "not_reasonable_and_necessary",
    }
    assert first["reasons"][0]["text"].startswith("Lancets (code A4259), blood glucose test reagent strips")
    (denial,) = first["denied_reasons"]
    assert (
        "criteria (a)-(c) are not met, the amount in excess will be denied as not reasonable and necessary"
        in (denial["text"])
    )
    assert (second["outcome"], second["category"]) == ("denied", "not_reasonable_and_necessary")
    assert second["denied_units"] == 2 and second["allowed_units"] == 0
