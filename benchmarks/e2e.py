"""End-to-end: `medpol eval` on a generated claims file against a floor, in the same run.

    python -m benchmarks.e2e [--claims 200000] [--memory 100000,1000000]

The floor parses every claim and writes a JSON record of the same size as medpol's
decision for it: the least any evaluator reading and writing these files must do.
Each command runs as its own process; the figures are wall-clock seconds, the best of
--repeat rounds, and each process's peak memory (max RSS). Each round runs the floor,
both medpol commands and, as the ceiling for `--jobs 2`, two `--jobs 1` processes on the
two halves of the file side by side, back to back; the ratios are each round's, by
median. Ratios are what to quote.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"


def write_claims(path: Path, n: int, seed: int = 11) -> None:
    # Imported here: the floor runs this module too, and must not pay for importing medpol.
    from benchmarks.eval import generate

    # Generated in slices so that even a million claims never sit in memory at once.
    with path.open("wb") as out:
        done = 0
        while done < n:
            step = min(20_000, n - done)
            for claim in generate(step, seed + done):
                claim["id"] = f"B-{done}"
                done += 1
                out.write(orjson.dumps(claim) + b"\n")


def floor(claims: Path, sizes: Path, out: Path) -> None:
    """Parse each claim and write a record as long as its decision (sizes: one length a line)."""
    with claims.open("rb") as src, sizes.open("rb") as lengths, out.open("wb") as dst:
        for raw, length in zip(src, lengths, strict=True):
            claim = orjson.loads(raw)
            record = {
                "claim": claim["id"],
                "lines": [{"seq": line["seq"], "hcpcs": line["hcpcs"]} for line in claim["lines"]],
            }
            body = orjson.dumps(record)
            pad = int(length) - len(body) - 12
            if pad > 0:
                record["pad"] = "x" * pad
                body = orjson.dumps(record)
            dst.write(body + b"\n")


def run(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one command run as a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before)


def together(cmds: list[list[str]]) -> float:
    """Wall seconds of commands started at once, until the last one ends."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for cmd in cmds]
    for proc in procs:
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return time.perf_counter() - t0


def halves(path: Path, first: Path, second: Path) -> None:
    """Split a claims file into its first and second half of lines."""
    lines = path.read_bytes().splitlines(keepends=True)
    first.write_bytes(b"".join(lines[: len(lines) // 2]))
    second.write_bytes(b"".join(lines[len(lines) // 2 :]))


def peak_of(cmd: list[str]) -> int:
    """Peak RSS of a fresh process tree, read with /usr/bin/time when available."""
    if not Path("/usr/bin/time").exists():
        return -1
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    return int(result.stderr.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory", default="", help="claim counts to compare peak memory at, e.g. 100000,1000000")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        claims = tmp / "claims.jsonl"
        write_claims(claims, args.claims)
        decisions = tmp / "decisions.jsonl"

        def medpol(source: Path, out: Path, jobs: int) -> list[str]:
            return [
                sys.executable,
                "-m",
                "medpol.cli",
                "eval",
                str(POLICY),
                str(source),
                "--quiet",
                "--out",
                str(out),
                "--jobs",
                str(jobs),
            ]

        subprocess.run(medpol(claims, decisions, 1), check=True)
        sizes = tmp / "sizes.txt"
        with decisions.open("rb") as src, sizes.open("w") as dst:
            for raw in src:
                dst.write(f"{len(raw) - 1}\n")
        floor_cmd = [sys.executable, "-m", "benchmarks.e2e", "--floor", str(claims), str(sizes), str(tmp / "f.jsonl")]

        # What this machine gives two processes at once, whatever they run: two `--jobs 1`
        # on the two halves of the file, side by side, share nothing and wait for nothing,
        # so `--jobs 2` can come no closer to 2x than they do.
        first, second = tmp / "first.jsonl", tmp / "second.jsonl"
        halves(claims, first, second)
        side_by_side = [medpol(first, tmp / "h1.jsonl", 1), medpol(second, tmp / "h2.jsonl", 1)]

        # Rounds run the floor, --jobs 1, --jobs 2 and the two halves back to back, so each
        # round's ratios compare runs made in the same state of the machine (whose speed drifts).
        rounds = []
        for _ in range(args.repeat):
            t_floor = run(floor_cmd)[0]
            t_one = run(medpol(claims, tmp / "o1.jsonl", 1))[0]
            t_two = run(medpol(claims, tmp / "o2.jsonl", 2))[0]
            t_halves = together(side_by_side)
            rounds.append((t_floor, t_one, t_two, t_halves))
        t_floor, t_one, t_two, t_halves = (min(times) for times in zip(*rounds, strict=True))
        to_floor = sorted(one / floor for floor, one, _, _ in rounds)
        to_one = sorted(one / two for _, one, two, _ in rounds)
        ceiling = sorted(one / both for _, one, _, both in rounds)
        same = (tmp / "o1.jsonl").read_bytes() == (tmp / "o2.jsonl").read_bytes()
        print(
            f"claims: {args.claims:,} ({claims.stat().st_size / 1e6:.0f} MB in, "
            f"{decisions.stat().st_size / 1e6:.0f} MB out), cores: {os.cpu_count()}, rounds: {len(rounds)}"
        )
        print(f"floor (parse + write same-size records): {t_floor:6.2f} s  {args.claims / t_floor:>9,.0f} claims/s")
        print(
            f"medpol eval --jobs 1:                    {t_one:6.2f} s  {args.claims / t_one:>9,.0f} claims/s"
            f"  = {statistics.median(to_floor):.2f}x the floor, round by round "
            f"({to_floor[0]:.2f}x-{to_floor[-1]:.2f}x)"
        )
        print(
            f"medpol eval --jobs 2:                    {t_two:6.2f} s  {args.claims / t_two:>9,.0f} claims/s"
            f"  = {statistics.median(to_one):.2f}x faster than --jobs 1, round by round "
            f"({to_one[0]:.2f}x-{to_one[-1]:.2f}x); output identical: {same}"
        )
        print(
            f"two --jobs 1 on halves, side by side:   {t_halves:6.2f} s  {args.claims / t_halves:>9,.0f} claims/s"
            f"  = {statistics.median(ceiling):.2f}x faster than --jobs 1, round by round "
            f"({ceiling[0]:.2f}x-{ceiling[-1]:.2f}x): the most --jobs 2 could get here"
        )

        for count in [int(c) for c in args.memory.split(",") if c]:
            path = tmp / f"m{count}.jsonl"
            write_claims(path, count)
            peak1 = peak_of(medpol(path, tmp / "m.out", 1))
            print(f"peak memory, {count:>9,} claims, --jobs 1: {peak1 / 1024:7.1f} MiB")
            path.unlink()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--floor":
        floor(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
    else:
        main()
