"""Peers: the same six-rule slice of the infusion pump policy in medpol, Cedar and Rego.

    python -m benchmarks.peers [--claims 2000] [--seed 3]

The slice (slice.policy) is written by hand in Cedar (slice.cedar, run by cedarpy) and in
OPA's Rego (slice.rego, run by regopy): a referral, two denials, three coverage rules with
codes, diagnoses, a numeric fact threshold and an effective date, and the policy's
otherwise. Every generated claim is decided by each, the three must agree on every line
(outcome, deciding rule, denial category, referral target), and each one's time per
claim is printed with its ratio to medpol's. The peers are an optional extra:
pip install 'medpol[peers]'; one that is not installed is skipped, with a message saying so.
"""

from __future__ import annotations

import argparse
import datetime
import random
import re
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
POLICY = HERE / "slice.policy"
CEDAR = HERE / "slice.cedar"
REGO = HERE / "slice.rego"

CODES = ["J0895", "J1325", "J3285", "J1644", "J7356", "E1399"]
DIAGNOSES = ["E83.11", "E83.111", "I27.0", "I27.2", "I27.1", "G20", "G20.A1", "I26.99", "I80.1", "C34.90", "E83.52"]


def generate(n: int, seed: int) -> list[dict]:
    """Claims in the contract's shape, every fact of the slice given (so none is pending)."""
    rng = random.Random(seed)
    start = datetime.date(2026, 1, 1)
    claims = []
    for i in range(n):
        day = start + datetime.timedelta(days=rng.randrange(90))  # either side of 2026-01-25
        lines = [
            {"seq": seq, "hcpcs": rng.choice(CODES), "service_date": day.isoformat(), "units": 1}
            for seq in range(1, rng.randint(1, 4) + 1)
        ]
        claims.append(
            {
                "id": f"P-{i}",
                "member": {
                    "id": f"M-{i % 500}",
                    "birth_date": "1958-03-02",
                    "line_of_business": "medicare" if rng.random() < 0.1 else "commercial",
                },
                "diagnoses": rng.sample(DIAGNOSES, rng.randint(1, 3)),
                "lines": lines,
                "facts": {
                    "mpap_rest_mmhg": rng.randint(18, 34),
                    "ccb_tried_or_ruled_out": rng.random() < 0.8,
                    "pd_motor_symptoms_uncontrolled_without_infusion": rng.random() < 0.8,
                },
            }
        )
    return claims


def _line(seq, outcome, rule, category=None, refer_to=None) -> tuple:
    return (seq, outcome, rule, category, refer_to)


# ------------------------------------------------------------------ medpol


def medpol_decider():
    from medpol.api import load_policy

    policy = load_policy(POLICY)

    def decide(claim: dict) -> list[tuple]:
        decision = policy.decide(claim)
        return [
            _line(
                line["seq"],
                line["outcome"],
                line["reasons"][0]["rule"] if line.get("reasons") else None,
                line.get("category"),
                line.get("refer_to"),
            )
            for line in decision["lines"]
        ]

    return decide


# ------------------------------------------------------------------ shared shaping


def _day(date: str) -> int:
    return int(date.replace("-", ""))


def _diagnoses(claim: dict) -> list[str]:
    return [code.strip().upper().replace(".", "") for code in claim["diagnoses"]]


# ------------------------------------------------------------------ Cedar


def cedar_decider():
    import cedarpy

    text = CEDAR.read_text()
    # Cedar names the policies of a set policy0, policy1, ... in the order they are written.
    annotated = re.findall(r'@id\("([^"]+)"\)\s*@kind\("([^"]+)"\)', text)
    names = {f"policy{i}": (rule, kind) for i, (rule, kind) in enumerate(annotated)}
    policies = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str("[]")
    refer_to = "LCD L33794"

    def decide(claim: dict) -> list[tuple]:
        prefixes = sorted({code[:n] for code in _diagnoses(claim) for n in range(3, len(code) + 1)})
        lob = claim["member"]["line_of_business"]
        principal = f'Member::"{claim["member"]["id"]}"'
        requests = [
            {
                "principal": principal,
                "action": 'Action::"decide"',
                "resource": f'Line::"{line["seq"]}"',
                "context": {
                    "line_of_business": lob,
                    "hcpcs": line["hcpcs"],
                    "service_day": _day(line["service_date"]),
                    "diagnoses": prefixes,
                    "facts": claim["facts"],
                },
            }
            for line in claim["lines"]
        ]
        out = []
        for line, result in zip(claim["lines"], cedarpy.is_authorized_batch(requests, policies, entities), strict=True):
            held = {kind: rule for rule, kind in sorted(names[p] for p in result.diagnostics.reasons)}
            if "refer" in held:
                out.append(_line(line["seq"], "refer", held["refer"], refer_to=refer_to))
            elif "deny" in held:
                out.append(_line(line["seq"], "denied", held["deny"], "not_reasonable_and_necessary"))
            elif "cover" in held:
                out.append(_line(line["seq"], "covered", held["cover"]))
            else:
                out.append(_line(line["seq"], "denied", "misc.criteria_not_met", "not_reasonable_and_necessary"))
        return out

    return decide


# ------------------------------------------------------------------ Rego


def rego_decider():
    import orjson
    import regopy

    rego = regopy.Interpreter()
    rego.add_module("slice", REGO.read_text())
    # A bundle is compiled once; a plain query would compile the module again every time.
    bundle = rego.build("data.slice.decisions", ["slice/decisions"])

    def decide(claim: dict) -> list[tuple]:
        shaped = {
            "line_of_business": claim["member"]["line_of_business"],
            "diagnoses": _diagnoses(claim),
            "facts": claim["facts"],
            "lines": [
                {"seq": line["seq"], "hcpcs": line["hcpcs"], "service_day": _day(line["service_date"])}
                for line in claim["lines"]
            ],
        }
        rego.set_input(regopy.Input(shaped))
        (found,) = orjson.loads(str(rego.query_bundle(bundle)))["expressions"]
        return [_line(d["seq"], d["outcome"], d["rule"], d.get("category"), d.get("refer_to")) for d in found]

    return decide


PEERS = {
    "Cedar (cedarpy)": ("cedarpy", cedar_decider),
    "Rego (regopy)": ("regopy", rego_decider),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best round of each is quoted")
    args = parser.parse_args()

    import importlib.util

    claims = generate(args.claims, args.seed)
    deciders = {"medpol": medpol_decider()}
    for name, (module, make) in PEERS.items():
        if importlib.util.find_spec(module) is None:
            print(f"{name}: skipped, {module} is not installed (pip install 'medpol[peers]')")
            continue
        deciders[name] = make()

    # Agreement first: every line of every claim, as medpol decides it.
    expected = [deciders["medpol"](claim) for claim in claims]
    disagree = 0
    for name, decide in deciders.items():
        for claim, want in zip(claims, expected, strict=True):
            got = decide(claim)
            if got != want:
                disagree += 1
                if disagree <= 5:
                    print(f"{name} disagrees on {claim['id']}:\n  medpol {want}\n  {name} {got}")
    lines = sum(len(c["lines"]) for c in claims)
    outcomes = sorted({line[1] for claim in expected for line in claim})
    print(
        f"claims: {len(claims):,} ({lines:,} lines: {', '.join(outcomes)}); "
        f"{len(deciders)} deciders agree on every line: {disagree == 0}"
    )

    times: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, decide in deciders.items():
            t0 = time.perf_counter()
            for claim in claims:
                decide(claim)
            per_claim = (time.perf_counter() - t0) / len(claims)
            times[name] = min(times.get(name, per_claim), per_claim)
    base = times["medpol"]
    for name, per_claim in times.items():
        ratio = "" if name == "medpol" else f"  = {per_claim / base:,.1f}x medpol"
        print(f"{name:<16} {per_claim * 1e6:10,.1f} µs a claim{ratio}")
    return 0 if disagree == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
