"""benchmarks.eval splits medpol's time into the contract's reading and writing, and deciding."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.eval import POLICY, answers_known, generate
from medpol.api import load_policy
from medpol.engine.claims import ClaimError

ROOT = Path(__file__).resolve().parent.parent


def test_reading_and_writing_alone_reads_every_claim_as_medpol_does():
    policy = load_policy(POLICY)
    claims = generate(20, 3)
    answers_known(policy, claims)()  # the claims as generated read cleanly
    # A claim medpol could not read stops the loop: it measures reading, not skipping.
    broken = [dict(claims[0], member={"id": "M-1"})]
    run = answers_known(policy, broken)  # its table holds the claim's `error` decision
    with pytest.raises(ClaimError, match="member.birth_date"):
        run()


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
