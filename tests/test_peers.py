"""The peers benchmark: medpol, Cedar and Rego decide the same policy slice alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from benchmarks.peers.__main__ import PEERS, generate, medpol_decider


def test_the_slice_is_decided_with_every_outcome_and_both_sides_of_its_effective_date():
    claims = generate(200, 3)
    decide = medpol_decider()
    decided = [line for claim in claims for line in decide(claim)]
    assert {line[1] for line in decided} == {"covered", "denied", "refer"}
    rules = {line[2] for line in decided}
    assert {"J.parkinsons_infusion", "E.prostacyclin", "misc.heparin", "misc.criteria_not_met"} <= rules
    days = {line["service_date"] for claim in claims for line in claim["lines"]}
    assert min(days) < "2026-01-25" <= max(days)


@pytest.mark.parametrize("name", sorted(PEERS))
def test_a_peer_agrees_with_medpol_on_every_line(name):
    module, make = PEERS[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the peers extra)")
    claims = generate(300, 8)
    mine, theirs = medpol_decider(), make()
    for claim in claims:
        assert theirs(claim) == mine(claim), claim


def test_the_benchmark_runs_and_prints_its_ratios():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.peers", "--claims", "60", "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree on every line: True" in result.stdout
    for name, (module, _) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            assert f"{name}: skipped, {module} is not installed" in result.stdout
        else:
            assert "x medpol" in result.stdout
