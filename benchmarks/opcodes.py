"""Python instructions executed per claim: medpol against the touch-every-line loop.

    python -m benchmarks.opcodes [--claims 400] [--seed 8] [--top 15]

Time on these machines drifts by up to 2x within a minute; the number of bytecode
instructions the interpreter executes does not. This counts them (sys.settrace with
per-instruction events) while deciding the same generated claims as benchmarks.eval,
and while running its baseline over them, and prints the ratio and where medpol's
instructions go, by part of the pipeline and by function. It is a proxy: work done in C
(building a dict, parsing a date, a Struct) counts as the one instruction that called it.
Use it to compare two versions of the engine; quote benchmarks.eval for speed.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
from pathlib import Path

from benchmarks.eval import POLICY, baseline, generate
from medpol.api import load_policy

# The part of the pipeline each source file belongs to; generated code is named after its policy.
PARTS = {
    "claims.py": "reading the claim",
    "contract.py": "reading the claim",
    "facts.py": "reading the claim",
    "decide.py": "the engine's own work",
    "api.py": "the engine's own work",
    "interpret.py": "naming failed criteria",
    "failed.py": "naming failed criteria",
    "runtime.py": "runtime helpers",
    "resolve.py": "runtime helpers",
    "logic.py": "runtime helpers",
}


def count(fn) -> collections.Counter:
    """Instructions executed by `fn()`, by (function, file, first line)."""
    counts: collections.Counter = collections.Counter()

    def local(frame, event, arg):
        if event == "opcode":
            code = frame.f_code
            counts[(code.co_name, code.co_filename, code.co_firstlineno)] += 1
        return local

    def start(frame, event, arg):
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        return local

    # The collector is paused while counting: a collection's own work is done in C and not
    # counted, but the Python callbacks other libraries hang on it would be, whenever one ran.
    collecting = gc.isenabled()
    gc.disable()
    sys.settrace(start)
    try:
        fn()
    finally:
        sys.settrace(None)
        if collecting:
            gc.enable()
    return counts


def part(filename: str) -> str:
    name = Path(filename).name
    if filename.startswith("<medpol generated"):
        return "generated code"
    return PARTS.get(name, "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=400)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    args = parser.parse_args()

    policy = load_policy(POLICY)
    # Warm up on other claims: every kind of line's compiled decision is made once, on first use.
    collections.deque(policy.decide_many(generate(3000, args.seed + 1)), maxlen=0)
    claims = generate(args.claims, args.seed)

    floor = count(lambda: baseline(claims))
    medpol = count(lambda: collections.deque(policy.decide_many(claims), maxlen=0))
    n = len(claims)
    per_floor = sum(floor.values()) / n
    per_claim = sum(medpol.values()) / n
    print(f"claims: {n:,}")
    print(f"touch-every-line baseline: {per_floor:8,.0f} instructions a claim")
    print(f"medpol decisions:          {per_claim:8,.0f} instructions a claim = {per_claim / per_floor:.1f}x")
    parts: collections.Counter = collections.Counter()
    for (_, filename, _), k in medpol.items():
        parts[part(filename)] += k
    for name, k in parts.most_common():
        print(f"  {name:<24} {k / n:7,.0f}  {k / sum(medpol.values()):4.0%}")
    print(f"the {args.top} functions that execute the most:")
    for (name, filename, line), k in medpol.most_common(args.top):
        if part(filename) == "generated code":
            where = "generated from " + Path(filename.split(" ")[2]).name  # <medpol generated PATH DIGEST>
        else:
            where = f"{Path(filename).name}:{line}"
        print(f"  {k / n:7,.1f}  {name} ({where})")


if __name__ == "__main__":
    main()
