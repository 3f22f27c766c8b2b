"""benchmarks.opcodes counts instructions, which a noisy machine does not change."""

from __future__ import annotations

import collections
import gc
import subprocess
import sys
from pathlib import Path

from benchmarks.eval import POLICY, generate
from benchmarks.opcodes import count, part
from medpol.api import load_policy

ROOT = Path(__file__).resolve().parent.parent


def test_the_same_work_counts_the_same():
    policy = load_policy(POLICY)
    claims = generate(30, 2)
    # Once to warm what the engine keeps from claim to claim (kinds compiled, dates read).
    collections.deque(policy.decide_many(claims), maxlen=0)

    def decide_all(claims=claims):
        collections.deque(policy.decide_many(claims), maxlen=0)

    first = count(decide_all)
    second = count(decide_all)
    assert first == second
    parts = {part(filename) for _, filename, _ in first}
    assert {"reading the claim", "the engine's own work", "generated code"} <= parts
    # Twice the claims, twice the instructions.
    double = count(lambda: decide_all(claims + claims))
    for key, k in first.items():
        if key[0] in ("read_claim", "_decide", "decide_line"):  # once a claim, or a line
            assert double[key] == 2 * k
    assert 1.95 < sum(double.values()) / sum(first.values()) < 2.05


def test_the_command_prints_the_ratio():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.opcodes", "--claims", "20", "--top", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "instructions a claim = " in result.stdout
    assert "reading the claim" in result.stdout


def test_a_collection_running_meanwhile_is_not_counted():
    # Libraries hang Python callbacks on the collector (hypothesis does): were they counted,
    # the same work would count differently whenever a collection happened to run.
    def on_collection(phase, info):
        pass

    threshold = gc.get_threshold()
    gc.callbacks.append(on_collection)
    gc.set_threshold(10)
    try:
        counts = count(lambda: [[] for _ in range(5000)])
    finally:
        gc.callbacks.remove(on_collection)
        gc.set_threshold(*threshold)
    assert not [key for key in counts if key[0] == "on_collection"]
    assert gc.isenabled()
