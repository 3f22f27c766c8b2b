"""Batches at scale: chunked, parallel, in input order, in JSON Lines or CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from benchmarks.eval import generate
from medpol.api import load_policy

ROOT = Path(__file__).resolve().parent.parent
POLICY = str(ROOT / "policies" / "external-infusion-pump.policy")


@pytest.fixture(scope="module")
def batch_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("batch") / "claims.jsonl"
    claims = generate(300, 5)
    lines = [orjson.dumps(c) for c in claims]
    lines.insert(17, b"{this is not json")
    lines.insert(120, b'{"id": "no-lines", "member": {}}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def eval_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medpol.cli", "eval", POLICY, *args], capture_output=True, check=False)


def test_parallel_output_is_byte_identical_and_in_order(batch_file):
    one = eval_cli(str(batch_file), "--jobs", "1", "--chunk-size", "7")
    two = eval_cli(str(batch_file), "--jobs", "2", "--chunk-size", "7")
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert one.stdout == two.stdout
    decisions = [json.loads(line) for line in one.stdout.splitlines()]
    assert len(decisions) == 302  # every claim, including the malformed ones
    assert decisions[17]["outcome"] == "error" and f"{batch_file.name}:18" in decisions[17]["message"]
    assert decisions[120]["claim"] == "no-lines" and decisions[120]["outcome"] == "error"
    ids = [d["claim"] for d in decisions if d["claim"] not in (None, "no-lines")]
    assert ids == [f"B-{i}" for i in range(300)]


def test_piped_stderr_is_the_one_line_summary(batch_file):
    result = eval_cli(str(batch_file), "--jobs", "1")
    (summary,) = result.stderr.decode().splitlines()  # no progress bar when piped
    assert summary.startswith("medpol eval: 302 claims, ")
    assert summary.endswith(" warnings") or summary.endswith(" warning")
    assert eval_cli(str(batch_file), "--jobs", "1", "--quiet").stderr == b""


def to_csv(claims: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "claim_id",
            "member_id",
            "birth_date",
            "line_of_business",
            "licensed_in_state",
            "diagnoses",
            "seq",
            "hcpcs",
            "modifiers",
            "service_date",
            "units",
            "place_of_service",
            "line_facts",
            "facts",
            "history",
        ]
    )
    for claim in claims:
        for line in claim["lines"]:
            writer.writerow(
                [
                    claim["id"],
                    claim["member"]["id"],
                    claim["member"]["birth_date"],
                    claim["member"]["line_of_business"],
                    "",
                    ";".join(claim["diagnoses"]),
                    line["seq"],
                    line["hcpcs"],
                    ";".join(line.get("modifiers", [])),
                    line["service_date"],
                    line.get("units", ""),
                    "",
                    "",
                    json.dumps(claim.get("facts", {})),
                    json.dumps(claim.get("history", [])),
                ]
            )
    return out.getvalue()


def test_csv_in_decides_as_jsonl_in(tmp_path):
    claims = generate(60, 9)
    jsonl = tmp_path / "claims.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in claims))
    table = tmp_path / "claims.csv"
    table.write_text(to_csv(claims))
    from_jsonl = eval_cli(str(jsonl), "--jobs", "1").stdout
    from_csv = eval_cli(str(table), "--jobs", "1").stdout
    assert from_csv == from_jsonl


def test_csv_out_has_a_row_per_line(tmp_path):
    out = tmp_path / "decisions.csv"
    fixtures = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"
    assert eval_cli(str(fixtures), "--out", str(out)).returncode == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 23
    first = rows[0]
    assert (first["claim"], first["seq"], first["outcome"]) == ("ex-blinatumomab-after-effective-date", "1", "covered")
    assert "J.blinatumomab.cd19_ph_negative" in first["rules"].split(";")
    pending = [r for r in rows if r["outcome"] == "pending"]
    assert {r["missing"] for r in pending} == {"cd19_positive"}


def test_parquet_in_and_out(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    claims = generate(25, 13)
    rows = list(csv.DictReader(io.StringIO(to_csv(claims))))
    table = pa.Table.from_pylist(rows)
    source = tmp_path / "claims.parquet"
    pq.write_table(table, source)
    out = tmp_path / "decisions.parquet"
    assert eval_cli(str(source), "--out", str(out), "--jobs", "2", "--chunk-size", "4").returncode == 0
    decided = pq.read_table(out).to_pylist()
    expected_csv = tmp_path / "decisions.csv"
    jsonl = tmp_path / "claims.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in claims))
    assert eval_cli(str(jsonl), "--out", str(expected_csv)).returncode == 0
    assert decided == list(csv.DictReader(expected_csv.open()))


@pytest.mark.parametrize("name", ["external-infusion-pump", "glucose-monitors"])
def test_a_decided_claim_leaves_no_reference_cycles(name):
    """Batches stay flat in memory: each claim's objects are freed by reference counting alone."""
    import gc

    from medpol.api import load_policy

    policy = load_policy(Path(__file__).resolve().parent.parent / "policies" / f"{name}.policy")
    claims = generate(300, 3)
    if name == "glucose-monitors":
        worked = Path(__file__).resolve().parent / "fixtures" / "contract" / "glucose-monitors" / "worked-example.jsonl"
        claims = [json.loads(worked.read_text())] * 300
    policy.decide(claims[0])
    gc.collect()
    gc.disable()
    try:
        for claim in claims:
            policy.decide(claim)
        assert gc.collect() == 0
        for claim in claims[:30]:
            policy.explain(claim)  # a traced decision, with an engine of its own
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_a_bad_parquet_cell_is_that_claims_error_and_the_batch_goes_on(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    claims = generate(3, 5)
    rows = list(csv.DictReader(io.StringIO(to_csv(claims))))
    rows[0]["units"] = "two"  # the first claim's first line
    source = tmp_path / "claims.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    result = eval_cli(str(source))
    assert result.returncode == 0, result.stderr
    decisions = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [d["claim"] for d in decisions] == [c["id"] for c in claims]
    bad = decisions[0]["lines"][0]
    assert bad["outcome"] == "error" and bad["field"] == "lines[0].units" and "two" in bad["message"]
    assert all(d.get("outcome") != "error" for d in decisions[1:])


CONTRACT = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
@pytest.mark.parametrize("source", ["contract", "generated"])
def test_workers_that_write_their_own_chunks_match_one_job_byte_for_byte(tmp_path, batch_file, fmt, source):
    """With --jobs N workers spool their encoded chunks; the main process only orders them."""
    claims = CONTRACT if source == "contract" else batch_file
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"decisions-{jobs}.{fmt}"
        result = eval_cli(str(claims), "--jobs", jobs, "--chunk-size", "3", "--output-format", fmt, "--out", str(out))
        assert result.returncode == 0, result.stderr
        outputs.append(out.read_bytes())
    piped = eval_cli(str(claims), "--jobs", "3", "--chunk-size", "3", "--output-format", fmt)  # into a pipe
    assert piped.returncode == 0, piped.stderr
    outputs.append(piped.stdout)
    assert outputs[0] and outputs[0] == outputs[1] == outputs[2]


def test_a_spooled_chunk_is_copied_to_its_length_into_a_buffer(tmp_path):
    from medpol.batch.local import _copy_spooled

    # A slot reused for a shorter chunk still holds the tail of its earlier, longer one.
    spooled = tmp_path / "7"
    spooled.write_bytes(b'{"claim": "a"}\n' * 1000 + b"earlier chunk's tail\n")
    out = io.BytesIO(b"")
    out.write(b"head\n")
    _copy_spooled(str(spooled), 15 * 1000, out)
    assert out.getvalue() == b"head\n" + b'{"claim": "a"}\n' * 1000
    # A slot shorter than the chunk said to be in it is an error, never a short output.
    with pytest.raises(OSError, match="shorter"):
        _copy_spooled(str(spooled), 10**6, io.BytesIO())


def test_a_spooled_chunk_is_copied_to_its_length_into_a_file(tmp_path):
    from medpol.batch.local import _copy_spooled

    spooled = tmp_path / "3"
    spooled.write_bytes(b"x" * 3_000_000 + b"tail")
    with (tmp_path / "out").open("wb") as out:
        out.write(b"head\n")
        _copy_spooled(str(spooled), 3_000_000, out)
    assert (tmp_path / "out").read_bytes() == b"head\n" + b"x" * 3_000_000


def test_workers_reuse_a_few_spool_slots_for_many_chunks(tmp_path, batch_file, monkeypatch):
    """Slots are reused in turn: a run of many chunks writes a handful of spool files, and
    every chunk still lands whole and in order."""
    from medpol.batch import local

    slots: set[str] = set()
    copied = local._copy_spooled

    def seen(path, size, out):
        slots.add(os.path.basename(path))
        copied(path, size, out)

    monkeypatch.setattr(local, "_copy_spooled", seen)
    policy = load_policy(POLICY)
    items = [line for line in batch_file.read_bytes().splitlines() if line.strip()]
    chunks = [(i + 1, [item]) for i, item in enumerate(items)]  # a chunk a claim
    one, many = io.BytesIO(), io.BytesIO()
    local.decide_stream(policy, iter(chunks), one, jobs=1)
    local.decide_stream(policy, iter(chunks), many, jobs=3)
    assert one.getvalue() == many.getvalue()
    assert slots and len(slots) <= local.AHEAD_PER_WORKER * 2 + 3 + 1 < len(items)


class _SlowHere:
    """An engine that decides as the policy's does, slowly in the process that made it
    (the main process of a batch) and at full speed in the workers forked from it."""

    def __init__(self, engine):
        self.engine = engine
        self.main = os.getpid()
        self.here = 0  # claims decided in the main process; a worker's count stays its own

    def decide(self, claim, as_of):
        if os.getpid() == self.main:
            self.here += 1
            time.sleep(0.1)
        return self.engine.decide(claim, as_of)


def test_the_main_process_decides_only_while_the_workers_are_busy():
    """A main process that is slower than its worker leaves it most of the chunks (a fixed
    one in every `jobs` would leave it half), and the output is still that of one job."""
    from medpol.api import load_policy
    from medpol.batch import local

    policy = load_policy(POLICY)
    chunks = [(n, [orjson.dumps(claim)]) for n, claim in enumerate(generate(24, 9), 1)]
    one = io.BytesIO()
    # Also compiles, before the workers are forked, what these claims need.
    local.decide_stream(policy, iter(chunks), one, jobs=1)
    slow = SimpleNamespace(engine=_SlowHere(policy.engine), id=policy.id, revision=policy.revision)
    two, seen = io.BytesIO(), []
    totals = local.decide_stream(slow, iter(chunks), two, jobs=2, on_chunk=seen.append)
    assert two.getvalue() == one.getvalue()
    assert totals["claims"] == sum(counts["claims"] for counts in seen) == len(chunks) == len(seen)
    assert slow.engine.here < len(chunks) / 2


class _SlowInWorkers:
    """An engine that decides slowly in the workers, logging (claim, start, end) to `log`,
    and at full speed in the main process."""

    def __init__(self, engine, log: Path):
        self.engine = engine
        self.main = os.getpid()
        self.log = str(log)

    def decide(self, claim, as_of):
        if os.getpid() == self.main:
            return self.engine.decide(claim, as_of)
        start = time.monotonic()
        time.sleep(0.3)
        decision = self.engine.decide(claim, as_of)
        with open(self.log, "a") as log:
            log.write(f"{claim['id']} {start} {time.monotonic()}\n")
        return decision


def test_once_every_chunk_is_read_the_main_process_takes_back_chunks_no_worker_started(tmp_path):
    """A worker is given chunks ahead; at the end of the input, the ones it has not started
    are decided by the main process, which would otherwise sit idle while the worker works
    through them one by one. The output is still that of one job."""
    from medpol.api import load_policy
    from medpol.batch import local

    policy = load_policy(POLICY)
    chunks = [(n, [orjson.dumps(claim)]) for n, claim in enumerate(generate(12, 9), 1)]
    one = io.BytesIO()
    local.decide_stream(policy, iter(chunks), one, jobs=1)
    read_all: list[float] = []

    def reading():
        yield from chunks
        read_all.append(time.monotonic())

    log = tmp_path / "workers.log"
    slow = SimpleNamespace(engine=_SlowInWorkers(policy.engine, log), id=policy.id, revision=policy.revision)
    decide_here = slow.engine.engine.decide
    here: list[tuple[str, float]] = []

    def decide(claim, as_of):
        here.append((claim["id"], time.monotonic()))
        return decide_here(claim, as_of)

    slow.engine.engine = SimpleNamespace(decide=decide)
    two = io.BytesIO()
    local.decide_stream(slow, reading(), two, jobs=2)
    assert two.getvalue() == one.getvalue()
    done_by_workers = [line.split()[0] for line in log.read_text().splitlines()]
    assert done_by_workers  # the worker had chunks of its own
    taken_back = [claim for claim, at in here if at > read_all[0]]
    assert taken_back  # once the input ran out, the main process decided the worker's chunks
    assert not set(taken_back) & set(done_by_workers)  # a chunk taken back is skipped by its worker


class _FailsInWorkers:
    def __init__(self, engine):
        self.engine = engine
        self.main = os.getpid()

    def decide(self, claim, as_of):
        if os.getpid() != self.main:
            raise RuntimeError(f"a worker failed on {claim['id']}")
        return self.engine.decide(claim, as_of)


def test_a_workers_error_is_raised_in_the_main_process(monkeypatch):
    import multiprocessing.pool

    from medpol.api import load_policy
    from medpol.batch import local

    # The other workers end their chunks and exit; none is killed (which could hang the run).
    terminated = []
    monkeypatch.setattr(multiprocessing.pool.Pool, "terminate", lambda pool: terminated.append(pool))
    policy = load_policy(POLICY)
    chunks = [(n, [orjson.dumps(claim)]) for n, claim in enumerate(generate(12, 9), 1)]
    failing = SimpleNamespace(engine=_FailsInWorkers(policy.engine), id=policy.id, revision=policy.revision)
    with pytest.raises(RuntimeError, match="a worker failed on "):
        local.decide_stream(failing, iter(chunks), io.BytesIO(), jobs=3)
    assert terminated == []


def test_a_finished_run_lets_its_workers_finish_and_none_decides_a_chunk_taken_back(tmp_path, monkeypatch):
    """Workers are closed and joined, never killed, once every chunk is written (a worker
    killed while handing back a result leaves the pool's result queue locked, and the
    pool's shutdown then waits for ever); a chunk the main process took back is skipped by
    the worker it was given to, so each chunk is decided once."""
    import multiprocessing.pool

    from medpol.api import load_policy
    from medpol.batch import local

    terminated = []
    monkeypatch.setattr(multiprocessing.pool.Pool, "terminate", lambda pool: terminated.append(pool))
    policy = load_policy(POLICY)
    chunks = [(n, [orjson.dumps(claim)]) for n, claim in enumerate(generate(12, 9), 1)]
    one = io.BytesIO()
    local.decide_stream(policy, iter(chunks), one, jobs=1)
    log = tmp_path / "workers.log"
    slow = SimpleNamespace(engine=_SlowInWorkers(policy.engine, log), id=policy.id, revision=policy.revision)
    here: list[str] = []
    decide_here = slow.engine.engine.decide

    def counted(claim, as_of):
        here.append(claim["id"])
        return decide_here(claim, as_of)

    slow.engine.engine = SimpleNamespace(decide=counted)
    two = io.BytesIO()
    local.decide_stream(slow, iter(chunks), two, jobs=3)
    assert two.getvalue() == one.getvalue()
    assert terminated == []
    by_workers = [line.split()[0] for line in log.read_text().splitlines()]  # complete: the workers have exited
    assert by_workers and here  # both decided chunks
    assert sorted(by_workers + here) == sorted(orjson.loads(raw)["id"] for _, [raw] in chunks)


def _csv_decisions(data: bytes) -> list[dict]:
    from medpol.batch import local

    policy = load_policy(POLICY)
    out = io.BytesIO()
    local.decide_stream(policy, local.csv_chunks(io.BytesIO(data), 10), out, jobs=1)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_csv_with_a_byte_order_mark_reads_its_first_column():
    claims = generate(3, 4)
    plain = _csv_decisions(to_csv(claims).encode())
    assert _csv_decisions(b"\xef\xbb\xbf" + to_csv(claims).encode()) == plain
    assert [d["claim"] for d in plain] == [c["id"] for c in claims]


def test_a_csv_row_with_bytes_that_are_not_utf8_is_that_lines_error_and_the_batch_goes_on():
    claims = generate(400, 4)  # the bad row lies far past the decoder's first block
    text = to_csv(claims).encode()
    rows = text.split(b"\n")
    bad = len(rows) - 3
    rows[bad] = rows[bad].replace(b"commercial", b"commer\xffcial", 1).replace(b"medicare", b"medi\xffcare", 1)
    decisions = _csv_decisions(b"\n".join(rows))
    assert len(decisions) == len(claims)
    errors = [line for d in decisions for line in d["lines"] if line["outcome"] == "error"]
    assert errors and all("not UTF-8" in line["message"] for line in errors)
    assert f"row {bad + 1}:" in errors[-1]["message"]


def test_a_long_csv_cell_is_read_whole():
    claims = generate(2, 4)
    claims[0]["facts"]["note"] = "x" * 200_000  # past csv's own limit of 131,072 characters
    (first, second) = _csv_decisions(to_csv(claims).encode())
    assert first["claim"] == claims[0]["id"] and second["claim"] == claims[1]["id"]
    assert any("facts.note" in w for w in first["warnings"])  # read, and named as a fact no policy declares


def test_a_csv_column_medpol_does_not_know_is_warned_of_not_dropped():
    claims = generate(2, 4)
    text = to_csv(claims).replace(",units,", ",unit,", 1)
    decisions = _csv_decisions(text.encode())
    named = [w for d in decisions for w in d.get("warnings", ()) if "unit`" in w]
    assert named and all(w.startswith("`lines[") and ".unit` is not a field" in w for w in named)


@pytest.mark.parametrize("units", ["nan", "inf", "-inf", "1e400"])
def test_csv_units_that_are_not_a_finite_number_are_that_lines_error(units):
    claims = generate(1, 4)
    rows = list(csv.DictReader(io.StringIO(to_csv(claims))))
    rows[0]["units"] = units
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (decision,) = _csv_decisions(table.getvalue().encode())
    line = decision["lines"][0]
    assert (line["outcome"], line["field"]) == ("error", "lines[0].units")
    assert f"{units}' is not a number" in line["message"]


def test_a_byte_order_mark_before_the_first_json_line_is_not_part_of_its_claim():
    from medpol.batch import local

    policy = load_policy(POLICY)
    claims = [orjson.dumps(c) for c in generate(3, 4)]

    def decisions(data: bytes) -> bytes:
        out = io.BytesIO()
        local.decide_stream(policy, local.jsonl_chunks(io.BytesIO(data), 2), out, jobs=1, typed=True)
        return out.getvalue()

    plain = decisions(b"\n".join(claims))
    assert decisions("\ufeff".encode() + b"\n".join(claims)) == plain
    assert b'"error"' not in plain


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
@pytest.mark.parametrize(
    "command",
    [("eval", POLICY), ("eval", POLICY, "--explain"), ("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--format", "json")],
    ids=["eval", "eval --explain", "diff --claims"],
)
def test_a_byte_order_mark_is_dropped_by_every_command_that_reads_claims(tmp_path, suffix, command):
    from click.testing import CliRunner

    from medpol.cli.main import main

    claims = [orjson.dumps(c) for c in generate(3, 4)]
    data = b"\n".join(claims) if suffix == ".jsonl" else b"[" + b",\n".join(claims) + b"]"
    outputs = []
    for mark in (b"", "\ufeff".encode()):
        path = tmp_path / f"claims{len(mark)}{suffix}"
        path.write_bytes(mark + data)
        name, *args = command
        args = [*args, "--claims", str(path)] if name == "diff" else [*args[:1], str(path), *args[1:]]
        result = CliRunner().invoke(main, [name, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout.replace(str(path), "CLAIMS"))
    assert outputs[1] == outputs[0]
    assert "not valid JSON" not in outputs[0] and '"error"' not in outputs[0]
