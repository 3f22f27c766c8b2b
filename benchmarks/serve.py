"""A bounded load on `medpol serve` over loopback, against the same claims decided in-process.

    python -m benchmarks.serve [--requests 4000] [--clients 8] [--batch 200]

Starts `medpol serve policies/` on a free loopback port, then sends a fixed number of
requests, one claim each, from concurrent clients (threads with keep-alive connections),
and stops by itself. Every answer is checked against the decision the library makes
in-process for the same claim, byte for byte. Then the same claims go as batches of
`--batch` claims (JSON Lines). Printed: throughput, p50/p99 latency, how many requests got
their decision, and the ratio of the service's time to the in-process time for the same
claims. The claims are the in-process benchmark's (benchmarks/eval.py).
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from benchmarks.eval import best_of, generate
from medpol.engine.library import load_library

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "medpol.cli", "serve", "policies/", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"medpol serve exited {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("medpol serve did not start within 60 s")


def load(port: int, bodies: list[bytes], clients: int, content_type: str) -> tuple[list, float]:
    """Send every body once, from `clients` threads; (index, status, answer, seconds) per request."""
    work: queue.Queue = queue.Queue()
    for i, body in enumerate(bodies):
        work.put((i, body))
    results: list = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        while True:
            try:
                i, body = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            try:
                connection.request("POST", "/v1/decisions", body=body, headers={"Content-Type": content_type})
                response = connection.getresponse()
                answer = response.read()
                mine.append((i, response.status, answer, time.perf_counter() - t0))
            except (OSError, http.client.HTTPException) as err:
                mine.append((i, None, str(err).encode(), time.perf_counter() - t0))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.close()
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="single-claim requests (and claims)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--batch", type=int, default=200, help="claims per batch request in the batch run")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    claims = generate(args.requests, args.seed)
    bodies = [orjson.dumps(c) for c in claims]
    library = load_library([ROOT / "policies"], warn=lambda message: None)
    expected = [orjson.dumps(d) + b"\n" for d in library.decide_many(claims)]
    in_process = best_of(lambda: [orjson.dumps(d) for d in library.decide_many(claims)], 3)

    port = free_port()
    process = start(port)
    try:
        results, elapsed = load(port, bodies, args.clients, "application/json")
        batches = [
            b"".join(body + b"\n" for body in bodies[i : i + args.batch]) for i in range(0, len(bodies), args.batch)
        ]
        batch_results, batch_elapsed = load(port, batches, min(args.clients, len(batches)), "application/x-ndjson")
    finally:
        process.terminate()
        process.wait(timeout=10)

    answered = sum(1 for i, status, answer, _ in results if status == 200 and answer == expected[i])
    failed = [(i, status) for i, status, answer, _ in results if status != 200 or answer != expected[i]]
    batch_answers = {i: answer for i, status, answer, _ in batch_results if status == 200}
    batch_decided = 0
    for i in range(len(batches)):
        chunk = expected[i * args.batch : (i + 1) * args.batch]
        if batch_answers.get(i) == b"".join(chunk):
            batch_decided += len(chunk)
    latencies = [seconds * 1000 for *_, seconds in results]
    batch_latencies = [seconds * 1000 for *_, seconds in batch_results]
    lines = sum(len(c["lines"]) for c in claims)
    print(f"claims: {len(claims):,}  lines: {lines:,}  clients: {args.clients}  cores: {os.cpu_count()}")
    print(f"in-process (library):  {len(claims) / in_process:,.0f} claims/s ({in_process:.2f} s)")
    print(
        f"service, one claim per request: {len(results) / elapsed:,.0f} requests/s ({elapsed:.2f} s), "
        f"p50 {percentile(latencies, 50):.2f} ms, p99 {percentile(latencies, 99):.2f} ms"
    )
    print(f"  every request got its decision: {answered:,} of {len(bodies):,} (lost or different: {len(failed)})")
    print(f"  ratio (service / in-process time): {elapsed / in_process:.1f}x")
    print(
        f"service, batches of {args.batch}: {len(claims) / batch_elapsed:,.0f} claims/s ({batch_elapsed:.2f} s), "
        f"p50 {percentile(batch_latencies, 50):.1f} ms, p99 {percentile(batch_latencies, 99):.1f} ms per batch"
    )
    print(f"  every claim got its decision: {batch_decided:,} of {len(claims):,}")
    print(f"  ratio (service / in-process time): {batch_elapsed / in_process:.1f}x")
    if failed or batch_decided != len(claims):
        print(f"first requests without their decision: {failed[:5]}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
