"""Reading claims: the typed one-pass decoder against parsing and reading by hand, in the same run.

    python -m benchmarks.decode [--claims 20000] [--rounds 5]

Per claim, the best of --rounds: JSON parsing alone (orjson.loads, the floor), parsing then
the detailed reader (medpol.engine.claims.read_claim), the typed decoder (medpol.engine.contract.decode_claim),
and whole decisions of a chunk of JSON lines (medpol.batch.local.decide_items) with and without it.
"""

from __future__ import annotations

import argparse
import gc
import time

import orjson

from benchmarks.eval import POLICY, generate
from medpol.api import batch_collection, load_policy
from medpol.batch import local as batch
from medpol.engine.claims import read_claim
from medpol.engine.contract import decode_claim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    raws = [orjson.dumps(c) + b"\n" for c in generate(args.claims, 7)]
    policy = load_policy(POLICY)
    engine = policy.engine

    def parse():
        for raw in raws:
            orjson.loads(raw)

    def by_hand():
        for raw in raws:
            read_claim(orjson.loads(raw))

    def typed():
        for raw in raws:
            decode_claim(raw)

    def decide(typed: bool):
        def run():
            with batch_collection():  # as medpol eval decides its chunks
                batch.decide_items(engine, policy.id, policy.revision, 1, raws, "b", None, typed)

        return run

    runs = {
        "orjson.loads (floor)": parse,
        "orjson.loads + read_claim": by_hand,
        "decode_claim (msgspec)": typed,
        "decide_items, detailed reader": decide(False),
        "decide_items, typed decoder": decide(True),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.rounds):
        for name, run in runs.items():  # interleaved, so each round sees the same machine
            gc.collect()
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], (time.perf_counter() - t0) / len(raws) * 1e6)
    for name, us in best.items():
        print(f"{name:<32} {us:8.2f} µs a claim")
    print(
        f"reading a claim: {best['orjson.loads + read_claim'] / best['decode_claim (msgspec)']:.1f}x faster typed; "
        f"deciding: {best['decide_items, detailed reader'] / best['decide_items, typed decoder']:.2f}x"
    )


if __name__ == "__main__":
    main()
