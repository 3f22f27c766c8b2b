"""Decide generated claims in-process and compare with a loop that only touches every line.

    python -m benchmarks.eval [--claims 100000] [--seed 7]

Both are measured in the same run, taking turns on each few hundred claims, so the ratio
holds on a machine whose speed drifts. The baseline
reads each line's code, date and units and writes an output record per line: the least
any evaluator must do. The figure to watch is the ratio, not the absolute rate.

A third measure splits medpol's time in two: the same claims read as medpol reads them
(every field checked, the facts against the policy's declarations) and each line's
decision written from a table made beforehand. What it takes is the claims contract's
own reading and writing; what medpol takes beyond it is deciding.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import gc
import random
import time
from pathlib import Path

from medpol.api import load_policy
from medpol.engine.claims import read_claim

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"
PIECE = 250  # claims a turn, when the measures take turns

THERAPIES = [
    # (pump, drug, diagnosis, facts)
    ("E0781", "J9039", "C91.00", {"all_setting": "cd19_ph_negative", "cd19_positive": True, "ph_negative": True}),
    ("E0781", "J9039", "C91.00", {"all_setting": "relapsed_refractory", "cycle_number": 3}),
    ("E0791", "J0895", "E83.111", {}),
    ("E0779", "J2270", "C34.90", {"intractable_cancer_pain": True}),
    (
        "K0455",
        "J1325",
        "I27.0",
        {
            "ph_secondary_to_venous_or_respiratory": False,
            "ph_type": "primary",
            "ph_progressed_despite_treatment": True,
            "mpap_rest_mmhg": 30,
            "ph_significant_symptoms": True,
            "ccb_tried_or_ruled_out": True,
        },
    ),
    ("E0781", "J1457", "E83.52", {"symptomatic_cancer_hypercalcemia": True}),
    (
        "E0780",
        "J1559",
        "D80.3",
        {"scig_labeled_subcutaneous": True, "administered_in_home": True, "home_administration_necessary": True},
    ),
    ("E0781", "J7340", "G20.A1", {"neurologist_prescribes_and_manages": True}),
]
CRITERIA = {
    "home_parenteral_necessary": True,
    "pump_necessary_for_safety": True,
    "infusion_hours": 24,
    "prolonged_infusion_efficacy_proven": True,
    "regimen_advantage_proven": True,
    "face_to_face_date": "2025-12-15",
    "written_order_date": "2026-01-05",
    "documentation_received_before_delivery": True,
}


def generate(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    start = datetime.date(2026, 1, 1)
    claims = []
    for i in range(n):
        pump, drug, dx, facts = rng.choice(THERAPIES)
        day = (start + datetime.timedelta(days=rng.randrange(120))).isoformat()
        all_facts = dict(CRITERIA)
        all_facts.update(facts)
        if rng.random() < 0.1:
            all_facts.pop(rng.choice(sorted(all_facts)))
        lines = [
            {"seq": 1, "hcpcs": pump, "modifiers": ["RR"], "service_date": day, "units": 1},
            {"seq": 2, "hcpcs": drug, "service_date": day, "units": rng.choice([1, 35, 140])},
            {"seq": 3, "hcpcs": rng.choice(["A4222", "K0552", "A4221", "E0776", "A4224"]), "service_date": day},
        ]
        claims.append(
            {
                "id": f"B-{i}",
                "member": {
                    "id": f"M-{i % 5000}",
                    "birth_date": "1960-04-01",
                    "line_of_business": "medicare" if rng.random() < 0.05 else "commercial",
                },
                "diagnoses": [dx],
                "lines": lines,
                "facts": all_facts,
            }
        )
    return claims


def baseline(claims: list[dict]) -> int:
    """Touch every line: read its code, date and units, and write a record for it.

    Each record is let go once written, as a writer streaming its output would: records
    kept in a list would grow the heap and make the collector's passes, not the loop,
    what the floor measures (and swing from round to round).
    """
    fromisoformat = datetime.date.fromisoformat
    written = 0
    for claim in claims:
        lines = []
        for line in claim["lines"]:
            fromisoformat(line["service_date"])
            lines.append(
                {"seq": line["seq"], "hcpcs": line["hcpcs"], "outcome": "covered", "units": line.get("units", 1)}
            )
        record = {"claim": claim["id"], "lines": lines}
        written += len(record["lines"])
    return written


def known_decisions(policy, claims: list[dict]) -> list[list[dict]]:
    """Each claim's line decisions, made beforehand for `answers_known` to write."""
    decide = policy.engine.decide
    return [decide(claim)["lines"] for claim in claims]


def answers_known(policy):
    """A loop that reads each claim and its facts as medpol does and writes each line's
    decision, taken from a table made beforehand: everything but deciding.

    Each line's record is a fresh copy of its known decision (a writer holds one per line
    as medpol does); the lists and texts inside are shared, as medpol shares the ones its
    rules cite.
    """
    read_facts = policy.engine.facts.read_claim_facts
    policy_id, revision = policy.id, policy.revision

    def run(claims: list[dict], table: list[list[dict]]) -> None:
        for raw, known in zip(claims, table, strict=True):
            claim = read_claim(raw)
            read_facts(claim.facts)
            decision = {"claim": claim.id, "policy": policy_id, "revision": revision, "lines": list(map(dict, known))}
            del decision

    return run


def decide_all(policy, claims: list[dict]) -> None:
    """Decide every claim, letting each decision go as the baseline lets its records go."""
    collections.deque(policy.decide_many(claims), maxlen=0)


def taking_turns(measures: list, pieces: list, rounds: int) -> list[list[float]]:
    """Seconds each measure took over all the pieces, round by round.

    Within a round the measures take turns piece by piece (a few hundred claims each), so
    that each sees the machine in the state the others saw it in a moment before: its speed
    drifts over seconds, and a measure timed in one stretch and divided by one timed in
    another swings with the drift.
    """
    clock = time.perf_counter
    spent = []
    for _ in range(rounds):
        totals = [0.0] * len(measures)
        for piece in pieces:
            for i, measure in enumerate(measures):
                t0 = clock()
                measure(piece)
                totals[i] += clock() - t0
        spent.append(totals)
    return spent


def timings(fn, repeat: int) -> list[float]:
    """Seconds of each of `repeat` runs."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def best_of(fn, repeat: int) -> float:
    """The fastest of `repeat` runs, in seconds: the least disturbed by the machine's noise."""
    return min(timings(fn, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each (at least 5); the best is reported")
    args = parser.parse_args()

    policy = load_policy(POLICY)
    claims = generate(args.claims, args.seed)
    # The generated claims live for the whole run; keep the collector from rescanning
    # them on every collection, as a streaming reader would never hold them at all.
    gc.collect()
    gc.freeze()
    lines = sum(len(c["lines"]) for c in claims)

    # The three measures take turns on each piece of the claims (see taking_turns). The floor
    # runs three times a piece, so that its share of each turn is long enough to average out.
    table = known_decisions(policy, claims)
    pieces = [(claims[lo : lo + PIECE], table[lo : lo + PIECE]) for lo in range(0, len(claims), PIECE)]
    reading_and_writing = answers_known(policy)

    def floor(piece) -> None:
        for _ in range(3):
            baseline(piece[0])

    spent = taking_turns(
        [floor, lambda piece: decide_all(policy, piece[0]), lambda piece: reading_and_writing(*piece)],
        pieces,
        max(args.repeat, 5),
    )
    floors = [f / 3 for f, _, _ in spent]
    runs = [r for _, r, _ in spent]
    knowns = [k for _, _, k in spent]
    ratios = sorted(run / floor for run, floor in zip(runs, floors, strict=True))
    known_ratios = sorted(known / floor for known, floor in zip(knowns, floors, strict=True))
    deciding = sorted(1 - known / run for known, run in zip(knowns, runs, strict=True))
    base, evaluated = min(floors), min(runs)
    decide = policy.engine.decide
    outcomes: dict[str, int] = {}
    for d in (decide(c) for c in claims):
        for line in d["lines"]:
            outcomes[line["outcome"]] = outcomes.get(line["outcome"], 0) + 1
    print(f"claims: {args.claims:,}  lines: {lines:,}  outcomes: {dict(sorted(outcomes.items()))}")
    spread = (max(floors) - base) / base
    print(
        f"touch-every-line baseline: {args.claims / base:,.0f} claims/s ({base:.3f} s; "
        f"{len(floors)} rounds within {spread:.0%} of the fastest)"
    )
    print(f"medpol decisions:          {args.claims / evaluated:,.0f} claims/s ({evaluated:.2f} s)")
    median = ratios[len(ratios) // 2]
    print(
        f"ratio (medpol / baseline time), round by round: {median:.1f}x median "
        f"({ratios[0]:.1f}x-{ratios[-1]:.1f}x over {len(ratios)} rounds)"
    )
    print(
        f"reading and writing alone, every decision known beforehand: {args.claims / min(knowns):,.0f} claims/s; "
        f"{known_ratios[len(known_ratios) // 2]:.1f}x the baseline by median "
        f"({known_ratios[0]:.1f}x-{known_ratios[-1]:.1f}x)"
    )
    print(
        f"deciding, medpol's time beyond reading and writing: {deciding[len(deciding) // 2]:.0%} of it by median "
        f"({deciding[0]:.0%}-{deciding[-1]:.0%})"
    )


if __name__ == "__main__":
    main()
