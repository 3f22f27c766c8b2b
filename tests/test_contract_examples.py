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
