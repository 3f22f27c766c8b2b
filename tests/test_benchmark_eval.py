"""benchmarks.eval splits medpol's time into the contract's reading and writing, and deciding."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.eval import POLICY, answers_known, generate, known_decisions, taking_turns
from medpol.api import load_policy
from medpol.engine.claims import ClaimError

ROOT = Path(__file__).resolve().parent.parent


def test_reading_and_writing_alone_reads_every_claim_as_medpol_does():
    policy = load_policy(POLICY)
    claims = generate(20, 3)
    run = answers_known(policy)
    run(claims, known_decisions(policy, claims))  # the claims as generated read cleanly
    # A claim medpol could not read stops the loop: it measures reading, not skipping.
    broken = [dict(claims[0], member={"id": "M-1"})]
    table = known_decisions(policy, broken)  # the claim's `error` decision
    with pytest.raises(ClaimError, match="member.birth_date"):
        run(broken, table)


def test_measures_take_turns_piece_by_piece_and_each_is_timed_apart():
    order = []

    def measure(name, slow):
        def run(piece):
            order.append((name, piece))
            if slow:
                time.sleep(0.01)

        return run

    spent = taking_turns([measure("floor", False), measure("medpol", True)], ["a", "b"], rounds=2)
    assert order == [("floor", "a"), ("medpol", "a"), ("floor", "b"), ("medpol", "b")] * 2
    assert len(spent) == 2
    for floor, medpol in spent:
        assert medpol >= 0.02 > floor  # each measure's own time, summed over the pieces


def test_the_command_prints_the_split():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.eval", "--claims", "200", "--repeat", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ratio (medpol / baseline time)" in out
    assert "every decision known beforehand" in out
    assert "deciding, medpol's time beyond reading and writing:" in out
