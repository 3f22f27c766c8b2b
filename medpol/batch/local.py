"""Decide large batches: stream claims in chunks, on every core, in input order.

Memory is bounded by the chunk size and the number of chunks in flight, never by the
file: chunks are read lazily and handed to worker processes that each hold the compiled
policy. A worker decides, encodes and writes its chunk to a spool file (one of a few
slots, reused in turn); the main process orders them, copying each spooled chunk to the
output (in the kernel, with os.sendfile, where it can) as soon as it is the next one, so
the output is byte-identical whatever the number of jobs. While the next one is not ready, the main
process decides the chunk after the last one read itself, rather than wait.
"""

from __future__ import annotations

import codecs
import collections
import csv
import gc
import io
import itertools
import math
import multiprocessing
import operator
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator

import orjson

from medpol.engine.contract import decode_claim
from medpol.engine.errors import error_decision

# A worker's engine and settings, set once per process by _init_worker.
_WORKER: dict = {}


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ------------------------------------------------------------------ reading


def jsonl_chunks(stream, chunk_size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(number of the chunk's first line, raw lines) for each chunk of a JSON Lines stream."""
    first = 1
    while True:
        # The file object splits the lines and islice counts them, both in C: no Python
        # step runs for each line.
        chunk = list(itertools.islice(stream, chunk_size))
        if not chunk:
            return
        if first == 1 and chunk[0][:3] == codecs.BOM_UTF8:
            chunk[0] = chunk[0][3:]  # a byte-order mark some editors write is not part of the first claim
        yield first, chunk
        first += len(chunk)


def csv_claims(stream) -> Iterator[object]:
    """Claims from CSV rows, one row per claim line, consecutive rows of a claim id grouped.

    Columns: claim_id, member_id, birth_date, line_of_business, licensed_in_state, diagnoses,
    seq, hcpcs, modifiers, service_date, units, place_of_service, line_facts, facts, history.

    Claim-level columns are read from a claim's first row; `diagnoses` and `modifiers` are
    separated by `;`; `facts`, `line_facts` and `history` hold JSON.
    """
    # utf-8-sig: a byte-order mark some spreadsheets write is not part of the first column's
    # name. Bytes that are not UTF-8 are kept as escapes, so that only their row is in error.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    # A cell may hold a claim's whole facts or history as JSON, past csv's default limit.
    csv.field_size_limit(_CSV_CELL_LIMIT)
    reader = csv.DictReader(text, restkey=PAST_THE_HEADER)
    claim: dict | None = None
    for row_number, row in enumerate(reader, 2):
        claim_id = row.get("claim_id") or ""
        if claim is None or claim["id"] != claim_id:
            if claim is not None:
                yield claim
            claim = _claim_from_row(row, row_number)
        claim["lines"].append(_line_or_problem(row, row_number))
    if claim is not None:
        yield claim


CSV_COLUMNS = frozenset(
    (
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
    )
)
# Where csv puts the cells of a row past its header's columns: a line field of that name,
# which the claim reader warns of as a field it ignored.
PAST_THE_HEADER = "cells past the header"
_CSV_CELL_LIMIT = 2**31 - 1


def _line_or_problem(row: dict, row_number: int) -> dict:
    """A claim line from a row; a cell that cannot be read stays in the line, for the claim
    reader to name in that line's `error` decision, so the batch goes on."""
    try:
        _check_text(row)
        return _line_from_row(row)
    except ValueError as err:
        return {
            "seq": _int_or_text(row.get("seq")),
            "hcpcs": row.get("hcpcs"),
            "service_date": row.get("service_date"),
            "units": f"row {row_number}: {err}",
        }


def _check_text(row: dict) -> None:
    """Raise ValueError if a cell of the row held bytes that are not UTF-8."""
    for value in row.values():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("bytes not UTF-8") from None


def _int_or_text(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _json_cell(value: str | None, default):
    if value is None or value.strip() == "":
        return default
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value  # kept as given: the claim reader names the field that is not an object


def _claim_from_row(row: dict, row_number: int) -> dict:
    member = {
        "id": row.get("member_id") or "",
        "birth_date": row.get("birth_date") or "",
        "line_of_business": row.get("line_of_business") or "",
    }
    claim = {
        "id": row.get("claim_id") or "",
        "member": member,
        "diagnoses": [d.strip() for d in (row.get("diagnoses") or "").split(";") if d.strip()],
        "lines": [],
        "facts": _json_cell(row.get("facts"), {}),
        "history": _json_cell(row.get("history"), []),
    }
    licensed = (row.get("licensed_in_state") or "").strip().lower()
    if licensed:
        claim["supplier"] = {"licensed_in_state": {"true": True, "false": False}.get(licensed, licensed)}
    return claim


def _line_from_row(row: dict) -> dict:
    line: dict = {
        "seq": _int_or_text(row.get("seq")),
        "hcpcs": row.get("hcpcs") or "",
        "service_date": row.get("service_date") or "",
    }
    units = (row.get("units") or "").strip()
    if units:
        try:
            number = float(units)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):  # float() also reads nan, inf and 1e400
            raise ValueError(f"`{units[:20]}` is not a number")
        line["units"] = int(number) if number.is_integer() else number
    modifiers = [m.strip() for m in (row.get("modifiers") or "").split(";") if m.strip()]
    if modifiers:
        line["modifiers"] = modifiers
    if row.get("place_of_service"):
        line["place_of_service"] = row["place_of_service"]
    facts = _json_cell(row.get("line_facts"), None)
    if facts is not None:
        line["facts"] = facts
    # A column medpol does not know (a misspelt `unit`) is kept on the line, where the claim
    # reader warns that it was ignored, rather than dropped without a word.
    for column, value in row.items():
        if column not in CSV_COLUMNS:
            line[column if column is not None else PAST_THE_HEADER] = value
    return line


def parquet_claims(path: str) -> Iterator[object]:
    """Claims from a Parquet file with the CSV columns (pyarrow, the `parquet` extra)."""
    import pyarrow.parquet as pq

    claim: dict | None = None
    row_number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            row_number += 1
            row = {k: ("" if v is None else (v if isinstance(v, str) else _cell(v))) for k, v in row.items()}
            if claim is None or claim["id"] != row.get("claim_id"):
                if claim is not None:
                    yield claim
                claim = _claim_from_row(row, row_number)
            claim["lines"].append(_line_or_problem(row, row_number))
    if claim is not None:
        yield claim


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)


def parquet_chunks(path: str, chunk_size: int) -> Iterator[tuple[int, list[object]]]:
    return chunked(parquet_claims(path), chunk_size)


class ParquetSink:
    """Decision rows (the CSV columns) written to Parquet a chunk at a time."""

    def __init__(self, path: str):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.schema = pa.schema([(name, pa.string()) for name in DECISION_COLUMNS])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, rows) -> None:
        if rows:
            columns = list(zip(*rows, strict=True))
            self.writer.write_table(
                self.pa.table(
                    {
                        name: self.pa.array(col, type=self.pa.string())
                        for name, col in zip(DECISION_COLUMNS, columns, strict=True)
                    },
                    schema=self.schema,
                )
            )

    def close(self) -> None:
        self.writer.close()


def csv_chunks(stream, chunk_size: int) -> Iterator[tuple[int, list[object]]]:
    return chunked(csv_claims(stream), chunk_size)


def chunked(claims: Iterator[object], chunk_size: int) -> Iterator[tuple[int, list[object]]]:
    """Claims already read, in chunks (they carry no line numbers: 0 stands for none)."""
    chunk: list[object] = []
    for claim in claims:
        chunk.append(claim)
        if len(chunk) >= chunk_size:
            yield 0, chunk
            chunk = []
    if chunk:
        yield 0, chunk


# ------------------------------------------------------------------ writing

DECISION_COLUMNS = (
    "claim",
    "policy",
    "revision",
    "seq",
    "hcpcs",
    "outcome",
    "category",
    "refer_to",
    "missing",
    "rules",
    "message",
)


def to_csv_rows(decision: dict) -> list[list[str]]:
    head = [decision.get("claim") or "", decision.get("policy") or "", decision.get("revision") or ""]
    if decision.get("outcome") == "error":
        return [head + ["", "", "error", "", "", "", "", decision.get("message", "")]]
    rows = []
    for line in decision["lines"]:
        # A library's line names the policy that decided it.
        rows.append(
            [head[0], line.get("policy") or head[1], line.get("revision") or head[2]]
            + [
                str(line.get("seq", "")),
                line.get("hcpcs") or "",
                line["outcome"],
                line.get("category", ""),
                line.get("refer_to", ""),
                ";".join(line.get("missing", ())),
                ";".join(r["rule"] for r in line.get("reasons", ())),
                line.get("message", ""),
            ]
        )
    return rows


def encode(decisions: list[dict], fmt: str = "jsonl"):
    """Decisions as `medpol eval` writes them: JSON Lines (bytes), CSV (bytes), Parquet rows,
    or FHIR ClaimResponse resources as JSON Lines."""
    if fmt == "parquet":
        return [row for decision in decisions for row in to_csv_rows(decision)]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for decision in decisions:
            writer.writerows(to_csv_rows(decision))
        return buffer.getvalue().encode("utf-8")
    if fmt == "fhir":
        from medpol.service.fhir import claim_response

        return b"".join(orjson.dumps(claim_response(d, d.pop("_fhir", None))) + b"\n" for d in decisions)
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE  # each line ends as orjson writes it, not by a copy
    return b"".join([dumps(d, option=newline) for d in decisions])


# ------------------------------------------------------------------ deciding


def decide_chunk(
    engine,
    policy_id: str,
    revision: str | None,
    first: int,
    items: list,
    name: str,
    as_of,
    fmt: str,
    typed: bool = False,
) -> tuple[bytes, collections.Counter]:
    """Decide one chunk: raw JSON lines (or claims already read); never drops or reorders one."""
    decisions, counts = decide_items(engine, policy_id, revision, first, items, name, as_of, typed)
    return encode(decisions, fmt), counts


def decide_items(
    engine, policy_id: str | None, revision: str | None, first: int, items: list, name: str, as_of, typed=False
) -> tuple[list[dict], collections.Counter]:
    """The decisions of raw JSON lines (or claims already read), in order, and their counts:
    a line that is not JSON gets an `error` decision naming it (`name:number`).

    With `typed`, a JSON line is first decoded as a claim in one pass (medpol.engine.contract);
    one the decoder does not accept is parsed and read in detail, as without it. Only for
    an engine that decides a claim already read as it decides the JSON object.
    """
    decide = engine.decide
    decode = decode_claim if typed else None
    counts: collections.Counter = collections.Counter()
    decisions = []
    outcomes: list[str] = []  # of every line, counted in one call at the end
    for offset, item in enumerate(items):
        if isinstance(item, _TEXT):
            claim = decode(item) if decode is not None else None
            if claim is not None:
                item = claim
            elif not item.strip():
                continue  # a blank line holds no claim
            else:
                try:
                    item = orjson.loads(item)
                except orjson.JSONDecodeError as err:
                    # A library's decision names no policy: its lines would each name their own.
                    under = (policy_id, revision) if policy_id is not None else None
                    message = f"{name}:{first + offset}: not valid JSON: {err}"
                    decisions.append(error_decision(None, message, under=under))
                    counts["error"] += 1
                    continue
        decision = decide(item, as_of)
        decisions.append(decision)
        if "outcome" in decision and decision["outcome"] == "error":
            counts["error"] += 1
        if "warnings" in decision:
            for warning in decision["warnings"]:
                counts["warnings"] += 1
                # Each distinct warning is told once at the end; a batch with many distinct
                # ones (a field misspelt differently on each claim) keeps the first dozen.
                key = ("warning", warning)
                if key in counts or sum(1 for k in counts if isinstance(k, tuple)) < 12:
                    counts[key] += 1
        outcomes.extend(map(_OUTCOME, decision["lines"]))
    counts["claims"] += len(decisions)
    counts["lines"] += len(outcomes)
    counts.update(outcomes)
    return decisions, counts


_OUTCOME = operator.itemgetter("outcome")
# A raw line, not yet parsed: lines are read as bytes. A str is a JSON string already parsed
# (an element of a claims array, a request body), which the claim reader refuses as a claim.
_TEXT = bytes


# The state of a worker's chunk, shared by the main process and the workers, one per spool
# slot: given to a worker, started by it, or taken back by the main process.
GIVEN, STARTED, TAKEN_BACK = 0, 1, 2


def _init_worker(policy, as_of, fmt, name, typed, state) -> None:
    _WORKER.update(engine=policy.engine, policy_id=policy.id, revision=policy.revision)
    _WORKER.update(as_of=as_of, fmt=fmt, name=name, typed=typed, state=state)


def _work(
    task: tuple[int, list], spool: str | None, slot: int
) -> tuple[bytes | tuple[str, int], collections.Counter] | None:
    """Decide and encode one chunk in a worker; write it to `spool` when given (the name of
    a slot no chunk in flight uses) and return the slot and the chunk's length rather than
    the bytes. None for a chunk the main process has taken back (it decides it itself)."""
    w = _WORKER
    state = w["state"]
    with state.get_lock():
        if state[slot] == TAKEN_BACK:
            return None
        state[slot] = STARTED
    first, items = task
    engine, as_of, fmt = w["engine"], w["as_of"], w["fmt"]
    data, counts = decide_chunk(engine, w["policy_id"], w["revision"], first, items, w["name"], as_of, fmt, w["typed"])
    if spool is None:
        return data, counts
    # Written over the slot's earlier chunk, not truncated: pages the spool already holds are
    # reused, where a fresh file would have the kernel find, zero and later free a page for
    # every 4 KiB of every chunk (three times the cost of the copy itself in memory-backed
    # /dev/shm). Past the chunk's length the slot holds its earlier chunk's tail, never read.
    with open(os.open(spool, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
        out.write(data)
    return (spool, len(data)), counts


def decide_stream(
    policy,
    chunks: Iterator[tuple[int, list]],
    out,
    *,
    as_of=None,
    jobs: int = 1,
    fmt: str = "jsonl",
    name: str = "<stdin>",
    on_chunk=None,
    typed: bool = False,
) -> collections.Counter:
    """Decide every chunk and write the decisions in input order; return the counts.

    `typed`: decode JSON claims in one pass (see decide_items)."""
    from medpol.api import batch_collection

    with batch_collection():
        return _decide_stream(policy, chunks, out, as_of, jobs, fmt, name, on_chunk, typed)


# Chunks a worker has queued or in hand: with two, it starts the next one as soon as it
# hands one back, without waiting for the main process to give it more.
AHEAD_PER_WORKER = 2


def _decide_stream(policy, chunks, out, as_of, jobs, fmt, name, on_chunk, typed) -> collections.Counter:
    totals: collections.Counter = collections.Counter()
    if fmt == "csv":
        out.write(_encode_header())

    def here(task) -> tuple[object, collections.Counter]:
        first, items = task
        return decide_chunk(policy.engine, policy.id, policy.revision, first, items, name, as_of, fmt, typed)

    def write(data, counts) -> None:
        if isinstance(data, tuple):
            _copy_spooled(*data, out)
        else:
            out.write(data)
        totals.update(counts)
        if on_chunk:
            on_chunk(counts)

    if jobs <= 1:
        for task in chunks:
            write(*here(task))
        return totals
    # Workers are forked with the compiled policy already in memory: nothing to rebuild.
    ctx = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    # Objects inherited at fork stay shared only while nothing writes to them; a collection
    # pass in a worker would touch (and so copy) every one of them.
    gc.collect()
    gc.freeze()
    # Parquet rows go back to the main process, which holds the one Parquet writer; every
    # other format is bytes, which a worker writes to a spool file of its own.
    spool = None if fmt == "parquet" else tempfile.mkdtemp(prefix="medpol-eval-", dir=_spool_dir())
    workers = jobs - 1
    ahead = AHEAD_PER_WORKER * workers
    # The chunks read and not yet written, in input order, are at most `limit`: memory (and
    # the spool) stays flat whatever the file's size.
    limit = ahead + jobs + 1
    # A chunk is either started by the worker it was given to or taken back by the main
    # process, never both: the two decide which under one lock.
    state = pool = None
    try:
        state = ctx.Array("b", limit)
        pool = ctx.Pool(workers, initializer=_init_worker, initargs=(policy, as_of, fmt, name, typed, state))
        # Each entry is (True, (data, counts), None) for a chunk the main process has
        # decided, or (False, AsyncResult, (task, slot)) for a worker's, whose result is the
        # same pair.
        queue: collections.deque = collections.deque()
        numbered = enumerate(chunks)
        read_all = False

        def take():
            nonlocal read_all
            if read_all or len(queue) >= limit:
                return None
            step = next(numbered, None)
            read_all = step is None
            return step

        while True:
            # Keep the workers fed first: a worker that runs out waits for the main
            # process, which may be in the middle of a chunk of its own.
            while sum(1 for done, job, _ in queue if not done and not job.ready()) < ahead:
                step = take()
                if step is None:
                    break
                number, task = step
                # Chunks read and not yet written are fewer than `limit` and numbered in a
                # row, so the chunk `limit` before this one has been copied out: its slot
                # is free.
                slot = number % limit
                path = None if spool is None else os.path.join(spool, str(slot))
                state[slot] = GIVEN
                queue.append((False, pool.apply_async(_work, (task, path, slot)), (task, slot)))
            if not queue:
                break
            done, job, _ = queue[0]
            if done or job.ready():
                queue.popleft()
                # A worker's error is raised here, as the chunk it failed on comes up.
                write(*(job if done else job.get()))
                continue
            # The oldest chunk is a worker's and not ready: rather than wait for it, the
            # main process decides the next one itself (on a machine with as many cores
            # as jobs, a process that only read and wrote would leave a core idle). So
            # its share follows from the time reading and writing leave it, and neither
            # it nor a worker waits on the other for a share fixed in advance.
            step = take()
            if step is not None:
                queue.append((True, here(step[1]), None))
                continue
            # Nothing left to read: a worker's chunk that no worker has started is taken
            # back and decided here, the last first; otherwise the main process would sit
            # idle while a worker works through the chunks it was given ahead.
            if read_all:
                i = _take_back(queue, state)
                if i is not None:
                    queue[i] = (True, here(queue[i][2][0]), None)
                    continue
            # As many chunks in hand as memory allows, or every one left in hand: wait.
            job.wait()
    except Exception:
        # A worker failed, or writing did: the chunks no worker has started are let go, and
        # the workers finish the ones in hand, for the reason below.
        if pool is not None:
            _let_go(pool, state)
        raise
    except BaseException:
        # Interrupted: stop at once.
        if pool is not None:
            pool.terminate()
        raise
    else:
        # Every chunk is written, so every chunk a worker started is done, and the ones
        # taken back are skipped. The workers are let finish rather than killed: a worker
        # killed while it hands back a result would leave the pool's result queue locked, and
        # the pool's own shutdown would wait on that lock for ever.
        _let_go(pool, state)
    finally:
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
    return totals


def _let_go(pool, state) -> None:
    """Close the pool once its workers end the chunks they have started; the rest they skip."""
    with state.get_lock():
        for slot in range(len(state)):
            if state[slot] == GIVEN:
                state[slot] = TAKEN_BACK
    pool.close()
    pool.join()


def _take_back(queue: collections.deque, state) -> int | None:
    """The index in `queue` of the last worker's chunk no worker has started, now taken
    back from its worker; None if every one is started or done."""
    with state.get_lock():
        for i in range(len(queue) - 1, -1, -1):
            done, job, held = queue[i]
            if not done and state[held[1]] == GIVEN and not job.ready():
                state[held[1]] = TAKEN_BACK
                return i
    return None


def _spool_dir() -> str | None:
    """Where workers write their chunks: memory-backed /dev/shm when there is one."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _copy_spooled(path: str, size: int, out) -> None:
    """Append the first `size` bytes of a worker's spool slot to `out`: in the kernel when
    `out` is a regular file, else through a buffer."""
    with open(path, "rb") as src:
        try:
            fd = out.fileno()
            to_file = stat.S_ISREG(os.fstat(fd).st_mode)
        except (AttributeError, OSError, ValueError):
            to_file = False
        sent = 0
        # Only into a file: into a pipe, sendfile lends the pipe the spool's own pages, which
        # the slot's next chunk would overwrite before the reader had them.
        if to_file and size:
            out.flush()
            try:
                while sent < size:
                    step = os.sendfile(fd, src.fileno(), sent, size - sent)
                    if step == 0:
                        break
                    sent += step
            except OSError:
                pass  # a file sendfile cannot write to: the rest goes through a buffer
        src.seek(sent)
        while sent < size:
            piece = src.read(min(size - sent, 1 << 20))
            if not piece:
                raise OSError(f"the spooled chunk {path} is shorter than the {size} bytes written to it")
            out.write(piece)
            sent += len(piece)


def _encode_header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(DECISION_COLUMNS)
    return buffer.getvalue().encode("utf-8")
