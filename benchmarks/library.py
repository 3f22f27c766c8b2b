"""Decide the same claims under one policy and under a library of many, in the same run.

    python -m benchmarks.library [--claims 20000] [--policies 50] [--repeat 3]

A claims system sends every claim to the whole library, so a claim should cost about the
same under a library of 50 policies as under the one policy that governs its lines: the
library finds the policies a claim's codes name through an index built once, and asks
only those. The library here is the repository's policies plus generated ones, each
governing codes of its own (twenty L-codes, facts, criteria and five rules), up to
`--policies`. The claims are the in-process benchmark's infusion pump claims, so one
policy governs their lines. The figure to watch is the ratio, not the absolute rate.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.eval import POLICY, best_of, generate
from medpol.api import load_policy
from medpol.engine.library import load_library

ROOT = Path(__file__).resolve().parent.parent

TEMPLATE = """\
medpol 1

policy generated-{n:02d} "Generated policy {n}"
  revision 1 dated 2025-01-01 effective 2025-01-01

facts
  device_{n}_prescribed: bool
    "Was device {n} prescribed by the treating practitioner?"
  device_{n}_hours: number hours
    "How many hours a day is device {n} used?"

codes devices "Devices"
{codes}

codes accessories "Accessories" = {accessories}

criteria basic_{n} "Basic criteria"
  device_{n}_prescribed
  device_{n}_hours >= 4 hours

precedence
  deny as not covered
  deny as not reasonable and necessary
  limit
  cover

section ONE "Coverage"
  rule devices_covered
    cover devices when basic_{n}
  rule accessories_covered
    cover accessories when devices is covered
  rule devices_limit
    limit devices to 1 units within 30 days
  rule unprescribed
    deny devices, accessories as not reasonable and necessary unless device_{n}_prescribed
  rule powered
    deny L{first:04d} as not covered
"""


def generated_policy(n: int) -> str:
    first = 1000 + n * 20
    codes = "\n".join(f'  L{first + i:04d} "device {n} model {i}"' for i in range(15))
    accessories = ", ".join(f"L{first + i:04d}" for i in range(15, 20))
    return TEMPLATE.format(n=n, codes=codes, accessories=accessories, first=first)


def build_library(folder: Path, size: int) -> int:
    """The repository's policies (with their source texts) and generated ones, `size` in all."""
    real = sorted((ROOT / "policies").glob("*.policy"))
    for path in (ROOT / "policies").iterdir():
        if path.suffix in (".policy", ".txt"):
            shutil.copy(path, folder / path.name)
    for n in range(max(0, size - len(real))):
        (folder / f"generated-{n:02d}.policy").write_text(generated_policy(n), encoding="utf-8")
    return len(list(folder.glob("*.policy")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        size = build_library(folder, args.policies)
        t0 = time.perf_counter()
        library = load_library([folder])
        built = time.perf_counter() - t0
    single = load_policy(POLICY)
    claims = generate(args.claims, args.seed)
    gc.collect()
    gc.freeze()

    def best(fn) -> float:
        return best_of(fn, args.repeat)

    alone = best(lambda: list(single.decide_many(claims)))
    whole = best(lambda: list(library.decide_many(claims)))
    # The same outcomes, line by line: the library asks the one policy that governs them.
    for claim in claims[:2000]:
        a, b = single.decide(claim), library.decide(claim)
        assert [x["outcome"] for x in a["lines"]] == [y["outcome"] for y in b["lines"]], claim["id"]
    print(f"claims: {args.claims:,}  library: {size} policies, {len(library.index):,} codes, built in {built:.1f} s")
    print(f"one policy ({single.id}): {args.claims / alone:,.0f} claims/s ({alone:.2f} s)")
    print(f"library of {size}:{' ' * max(1, 17 - len(str(size)))}{args.claims / whole:,.0f} claims/s ({whole:.2f} s)")
    print(f"ratio (library / one policy time): {whole / alone:.2f}x")


if __name__ == "__main__":
    main()
