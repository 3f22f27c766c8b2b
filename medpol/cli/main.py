"""The `medpol` command line: check, compile and evaluate policies.

Exit codes: 0 when the work was done (whatever the claims' outcomes), 1 when a
policy has errors or a command's output fails as it is written (a full disk), 2 for
usage errors (a bad option, a file that cannot be read).
"""

from __future__ import annotations

import codecs
import contextlib
import datetime
import errno
import importlib
import importlib.util
import io
import itertools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import click
import orjson

from medpol.dsl.diagnostics import PolicyError


class _Date(click.ParamType):
    """A calendar date, YYYY-MM-DD; a day that does not exist is told as such."""

    name = "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime.date):
            return value
        from medpol.engine.claims import date_problem, read_date

        # The reading a claim's dates get: datetime's own would take 20260302 and 2026-W10-1.
        day = read_date(value)
        if day is not None:
            return day
        self.fail(date_problem(value), param, ctx)


DATE = _Date()


def _date(value) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    return value


def _stop(message: str) -> NoReturn:
    """A usage problem in one line, exit status 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _claims_problem(source: str) -> str | None:
    """Why a claims file cannot be decided, before anything is written: missing,
    unreadable, empty, or not text (Parquet aside)."""
    if source == "-":
        return None
    path = Path(source)
    if not path.exists():
        return f"cannot read `{source}`: no such file"
    if path.is_dir():
        return f"cannot read `{source}`: it is a folder"
    try:
        with path.open("rb") as stream:
            head = stream.read(65536)
    except OSError as err:
        return f"cannot read `{source}`: {err.strerror}"
    if path.suffix == ".parquet":
        return None if head else f"`{source}` is empty: there are no claims to decide"
    body = _unmarked(head).strip()
    if not body:
        return f"`{source}` is empty: there are no claims to decide"
    if path.suffix == ".json" and body[:1] == b"[" and body[-1:] == b"]" and not body[1:-1].strip():
        return f"`{source}` holds an empty array: there are no claims to decide"
    if b"\0" in head:
        return f"`{source}` is not a claims file: it holds binary data"
    # Text in another encoding is refused as a whole; a few lines with bytes that are not
    # UTF-8 are each that claim's error (as they would be past the sample), the rest decided.
    lines = head.split(b"\n")[:-1] or [head]  # whole lines: the sample may end in a character
    if sum(1 for line in lines if not _utf8(line)) * 2 > len(lines):
        return f"`{source}` is not a claims file: it is not UTF-8 text"
    return None


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _out_problem(out_path: str | None) -> str | None:
    if not out_path:
        return None
    target = Path(out_path)
    if target.is_dir():
        return f"cannot write `{out_path}`: it is a folder"
    if not target.parent.is_dir():
        return f"cannot write `{out_path}`: the folder `{target.parent}` does not exist"
    return None


def _policy_files(paths: tuple[str, ...]) -> list[Path]:
    from medpol.paths import files_under

    return files_under(paths, "*.policy")


def _print_problems(err: PolicyError) -> None:
    click.echo(err.render(), err=True)


def _load(path: str, known_at: datetime.date | None = None, doing: str = "no claims were decided"):
    from medpol.api import load_policy

    if "@" not in path and not Path(path).is_file():
        raise click.UsageError(f"`{path}` is not a policy file")
    with _loading(path, doing):
        return load_policy(path, known_at)


@contextlib.contextmanager
def _loading(name: str, doing: str):
    """Policies that do not load: a reference to no version exits 2, errors in a policy 1."""
    from medpol.history.revisions import RefError

    try:
        yield
    except RefError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    except PolicyError as err:
        _print_problems(err)
        errors = sum(1 for d in err.diagnostics if d.severity == "error")
        click.echo(f"{name}: {errors} error{'s' if errors != 1 else ''}; {doing}", err=True)
        sys.exit(1)


def _load_library(paths: list[str], known_at: datetime.date | None):
    from medpol.engine.library import load_library

    for path in paths:
        if not Path(path).exists():
            raise click.UsageError(f"`{path}` is not a policy file or folder")
    if not _policy_files(tuple(paths)):
        raise click.UsageError(f"no .policy files in {', '.join(paths)}")
    with _loading(", ".join(paths), "no claims were decided"):
        return load_library(paths, known_at, warn=lambda message: click.echo(message, err=True))


class _Commands(click.Group):
    """medpol's commands. Those kept in modules of their own are imported when they are
    asked for (or listed by --help), so `medpol eval` does not wait for the test runner's,
    the formatter's or the server's imports."""

    LAZY = {
        "fhir": ("medpol.cli.serve", "fhir_group"),
        "fmt": ("medpol.cli.fmt", "fmt_cmd"),
        "lsp": ("medpol.cli.lsp", "lsp_cmd"),
        "new": ("medpol.cli.test", "new_cmd"),
        "serve": ("medpol.cli.serve", "serve_cmd"),
        "test": ("medpol.cli.test", "test_cmd"),
    }

    def main(self, *args, **kwargs):
        # Output that fails as it is written (a full disk), a command's file or standard
        # output, ends the run with one line and exit 1; click ends a run quietly when the
        # reader has gone (`| head`).
        try:
            return super().main(*args, **kwargs)
        except _CannotWrite as err:
            failed = err
        except OSError as err:
            if err.errno == errno.EPIPE or not _stdout_failed(err):
                raise
            failed = _CannotWrite(_STDOUT, err)
        with contextlib.suppress(OSError):
            click.echo(f"error: {failed}", err=True)
        sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY:
            module, attribute = self.LAZY[name]
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="medpol")
def main() -> None:
    """Medical coverage policies as code: check policies, decide claims."""


@main.command("check")
@click.argument("paths", nargs=-1, required=True)
def check_cmd(paths: tuple[str, ...]) -> None:
    """Parse, resolve and check policy files (or folders of them); report every problem.

    References between policies (`refer ... to policy ID`, `meets NAME of ID`) are
    resolved against the library: the policies in each file's folder.
    """
    from medpol.engine.library import check_files

    files = _policy_files(paths)
    if not files:
        raise click.UsageError("no .policy files found")
    errors = warnings = 0
    # Each policy file, then each folder's library settings (library.toml), with their text.
    for _path, diagnostics, text in check_files(files, [p for p in paths if Path(p).is_dir()]):
        for d in diagnostics:
            click.echo(d.render(text), err=True)
        errors += sum(1 for d in diagnostics if d.severity == "error")
        warnings += sum(1 for d in diagnostics if d.severity != "error")
    summary = (
        f"checked {len(files)} polic{'ies' if len(files) != 1 else 'y'}: {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}"
    )
    click.echo(summary, err=True)
    sys.exit(1 if errors else 0)


@main.command("compile")
@click.argument("policy")
@click.option(
    "--show-python", is_flag=True, help="Print the generated Python: the predicates, then each code's decision."
)
@click.option(
    "--code", metavar="HCPCS", help="With --show-python, print only this code's decisions and the predicates they call."
)
def compile_cmd(policy: str, show_python: bool, code: str | None) -> None:
    """Compile a policy; with --show-python, print the generated code for review."""
    if code is not None and not show_python:
        raise click.UsageError("--code chooses what --show-python prints: give both")
    compiled = _load(policy, doing="nothing was compiled")
    if show_python and code is not None:
        decisions = compiled.code_source(code)
        if not decisions:
            raise click.UsageError(f"{compiled.id} decides no line of {code}")
        click.echo(decisions, nl=False)
    elif show_python:
        click.echo(compiled.python_source, nl=False)
        click.echo(
            "\n\n# The compiled decision of each code's lines, in the order of the codes (a base's decision"
            "\n# for each item it serves: --show-python --code BASE).\n"
        )
        click.echo(compiled.decisions_source(), nl=False)
    else:
        rules = len(compiled.model.rules)
        click.echo(f"{policy}: {compiled.id} revision {compiled.revision}: {rules} rules compiled", err=True)


def _read_claims(source: str) -> Iterator[object]:
    """Yield each claim, or an `_Unreadable` for a line that is not JSON; never drop one."""
    if source == "-":
        document, lines = _stdin(sys.stdin.buffer)
        yield from _document_claims(document, "<stdin>") if document is not None else _jsonl(lines, "<stdin>")
        return
    path = Path(source)
    try:
        if path.suffix == ".json":
            yield from _document_claims(path.read_bytes(), source)
            return
        with path.open("rb") as stream:
            yield from _jsonl(stream, source)
    except OSError as err:
        raise click.UsageError(f"cannot read `{source}`: {err.strerror}") from None


def _json_document(data: bytes, chunk_size: int) -> Iterator[tuple[int, list]]:
    """The chunks of a `.json` claims file: the claims of a JSON array, one to an element;
    else one claim, possibly spread over many lines, decided (or reported) as one item."""
    from medpol.batch import local as batch

    data = _unmarked(data)
    if data.lstrip()[:1] == b"[":
        try:
            claims = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # decided as one item, which reports the JSON error
        else:
            return batch.chunked(iter(claims), chunk_size)
    return iter([(1, [data])])


def _stdin_chunks(stream, chunk_size: int) -> Iterator[tuple[int, list]]:
    from medpol.batch import local as batch

    document, lines = _stdin(stream)
    return _json_document(document, chunk_size) if document is not None else batch.jsonl_chunks(lines, chunk_size)


def _stdin(stream) -> tuple[bytes | None, Iterator[bytes]]:
    """Claims on standard input: one JSON document written over many lines (a claim or an
    array of claims, as pretty-printed), whole; or else its JSON Lines. Told by the first
    line alone."""
    first = stream.readline()
    if _opens_a_document(first.strip()):
        return first + stream.read(), iter(())
    return None, itertools.chain([first], stream)


def _unmarked(data: bytes) -> bytes:
    """`data` without the byte-order mark some editors write at a file's start."""
    return data[3:] if data.startswith(codecs.BOM_UTF8) else data


def _opens_a_document(line: bytes) -> bool:
    """A first line no JSON Lines claim could be: `{` alone, or the start of an array."""
    line = _unmarked(line)
    if line == b"{":
        return True
    if not line.startswith(b"["):
        return False
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return True
    return False


def _document_claims(data: bytes, name: str) -> Iterator[object]:
    try:
        document = orjson.loads(_unmarked(data))
    except orjson.JSONDecodeError as err:
        yield _Unreadable(f"{name}: not valid JSON: {err}")
        return
    # A JSON array holds claims, one to an element; anything else is one claim.
    yield from document if isinstance(document, list) else [document]


class _Unreadable:
    def __init__(self, message: str):
        self.message = message


def _jsonl(stream, name: str) -> Iterator[object]:
    for number, raw in enumerate(stream, 1):
        if number == 1:
            raw = _unmarked(raw)
        if not raw.strip():
            continue
        try:
            yield orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            yield _Unreadable(f"{name}:{number}: not valid JSON: {err}")


_STDOUT = "standard output"


class _CannotWrite(Exception):
    """The output failed as it was written (a full disk, a device error): one line, exit 1
    (`_Commands.main`)."""

    def __init__(self, name: str, err: OSError):
        # pyarrow's errors hold the errno under a longer text of their own.
        reason = os.strerror(err.errno) if err.errno else err.strerror or str(err)
        super().__init__(f"cannot write {name}: {reason}")


@contextlib.contextmanager
def _writing(name: str):
    """For output that fails at once (--explain's, the Parquet writer's first bytes)."""
    try:
        yield
    except OSError as err:
        if name == _STDOUT:
            _drop_stdout()
        if err.errno == errno.EPIPE:
            raise  # the reader has gone (`| head`): click ends the run quietly
        raise _CannotWrite(name, err) from err


# What a write to a stream fails with; an error naming no file, out of a command whose files
# are each opened and reported where they are, is its standard output's.
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def _stdout_failed(err: OSError) -> bool:
    """Whether `err` is a write to standard output that failed: it still holds bytes it cannot
    write, or the error is a stream's and names no file. Standard output is then pointed at
    /dev/null, so that Python's own flush on the way out does not fail again."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    except ValueError:  # closed: nothing more can fail on it
        return False
    else:
        if err.filename is not None or err.errno not in _WRITE_ERRORS:
            return False
    _drop_stdout()
    return True


def _write_out(out_path: str, data: bytes) -> None:
    """A command's whole output written to the file --out names: a file that cannot be opened
    is a usage problem (exit 2), as for `eval`; a write that fails is _CannotWrite (exit 1)."""
    try:
        out = open(out_path, "wb")  # noqa: SIM115 - closed below, where its write failing is told apart
    except OSError as err:
        _stop(f"cannot write `{out_path}`: {err.strerror}")
    try:
        with out:
            out.write(data)
    except OSError as err:
        raise _CannotWrite(f"`{out_path}`", err) from err


def _drop_stdout() -> None:
    """Point standard output at /dev/null once a write to it has failed: what its buffer
    still holds would fail again when flushed (by multiprocessing as it starts workers, by
    Python on the way out), with a traceback of its own."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass  # not a file (a test's capture): nothing else flushes it


class _Output:
    """Where a batch run's decisions go: a file, standard output or a Parquet writer.

    A failed write is kept rather than raised into the run: the batch module would stop its
    workers at once, and a worker stopped as it hands back a chunk leaves the pool locked
    and the run hung. No more claims are read (`until_failed`), nothing more is written, the
    chunks in flight end as usual, and `close` raises the failure."""

    def __init__(self, stream, name: str, owned: bool):
        self.stream = stream
        self.name = name
        self.owned = owned
        self.failed: OSError | None = None

    def until_failed(self, chunks: Iterator) -> Iterator:
        for chunk in chunks:
            yield chunk
            if self.failed is not None:
                return

    def write(self, data) -> None:
        if self.failed is None:
            try:
                self.stream.write(data)
                if not self.owned:
                    # Left in the buffer, the bytes would be flushed by whoever flushes
                    # standard output next (multiprocessing, as it starts the workers), and
                    # a failure there would escape this class.
                    self.stream.flush()
            except OSError as err:
                self._fail(err)

    def flush(self) -> None:
        if self.failed is None:
            try:
                self.stream.flush()
            except OSError as err:
                self._fail(err)

    def fileno(self) -> int:
        if self.failed is not None:
            # Not for sendfile, which would write past the failure.
            raise io.UnsupportedOperation("the output has failed")
        return self.stream.fileno()

    def _fail(self, err: OSError) -> None:
        self.failed = err
        if not self.owned:
            _drop_stdout()

    def close(self) -> None:
        """Close a file of our own, flush standard output; then raise a failure, if any."""
        try:
            if self.owned:
                self.stream.close()
            else:
                self.stream.flush()
        except OSError as err:
            if self.failed is None:
                self._fail(err)
        if self.failed is not None:
            if self.failed.errno == errno.EPIPE:
                raise self.failed  # the reader has gone (`| head`): click ends the run quietly
            raise _CannotWrite(self.name, self.failed) from self.failed

    def abandon(self) -> None:
        """Let go of the output as another error ends the run: a failure here would hide it."""
        with contextlib.suppress(OSError, _CannotWrite):
            self.close()


@main.command("eval")
@click.argument("paths", nargs=-1, required=True, metavar="POLICY... CLAIMS")
@click.option("--as-of", type=DATE, default=None, help="Decide every line as if served on this date (YYYY-MM-DD).")
@click.option(
    "--known-at",
    type=DATE,
    default=None,
    help="Decide under the revision that was published on this date (YYYY-MM-DD), from git.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write decisions to this file instead of stdout (.csv writes CSV).",
)
@click.option("--explain", is_flag=True, help="Print each decision as a tree of the criteria that held or failed.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default: the number of cores). Output is the same for any number.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Claims per chunk: memory is bounded by chunks in flight, not by the file.",
)
@click.option(
    "--output-format",
    type=click.Choice(["jsonl", "csv", "parquet", "fhir"]),
    default=None,
    help="Decisions as JSON Lines, CSV, Parquet, or FHIR ClaimResponses as JSON Lines "
    "(default: from --out's extension, else jsonl).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@click.option("--strict", is_flag=True, help="A fact name no policy declares is an error, not a warning.")
@click.option(
    "--why-not",
    is_flag=True,
    help="For each denied or pending line, the least facts that would cover it, one set per route.",
)
def eval_cmd(
    paths: tuple[str, ...],
    as_of,
    known_at,
    out_path: str | None,
    explain: bool,
    jobs: int | None,
    chunk_size: int,
    output_format: str | None,
    quiet: bool,
    strict: bool,
    why_not: bool,
) -> None:
    """Decide CLAIMS (.json, .jsonl, .csv, .parquet, or - for stdin) under POLICY; one decision per claim, in order.

    POLICY is a file or a reference to a version of it: `path@r21`, `path@2025-12-20`,
    `path@<commit or tag>`. A folder of policies, or several files, is a library: each
    line is decided by every policy that governs its code, and names the policy and
    revision that decided it. Two clocks are kept apart: each line's date of service (or
    --as-of) picks the rules in effect inside a revision; --known-at picks the revision
    (of each policy of a library).
    """
    if len(paths) < 2:
        raise click.UsageError("give the policy (or a folder of policies) and the claims: medpol eval POLICY... CLAIMS")
    if explain and output_format is not None:
        # --explain writes its trees, and its decisions to --out as JSON Lines: an option
        # that would be ignored is refused rather than dropped.
        raise click.UsageError("--output-format is for decisions; --explain writes text (and JSON Lines to --out)")
    *policies, claims = paths
    problem = _claims_problem(claims) or _out_problem(out_path)
    if problem:
        _stop(problem)
    if len(policies) == 1 and not Path(policies[0]).is_dir():
        compiled = _load(policies[0], _date(known_at))
    else:
        compiled = _load_library(policies, _date(known_at))
    compiled.strict = strict
    day = _date(as_of)
    if sys.stdout is None and (explain or not out_path):
        _stop(f"cannot write {_STDOUT}: it is closed")
    if explain:
        _explain(compiled, claims, day, out_path, why_not)
        return
    from medpol.batch import local as batch
    from medpol.engine.whynot import WithWhyNot
    from medpol.service.fhir import FhirClaims

    fmt = output_format or (
        "csv"
        if out_path and out_path.endswith(".csv")
        else "parquet"
        if out_path and out_path.endswith(".parquet")
        else "jsonl"
    )
    if "parquet" in (fmt, Path(claims).suffix[1:]) and not _has_pyarrow():
        raise click.UsageError("Parquet needs pyarrow: pip install 'medpol[parquet]'")
    if fmt == "fhir" and _lacks("fhir.resources"):
        _stop("FHIR needs the fhir extra (fhir.resources not installed): pip install 'medpol[fhir]'")
    jobs = jobs or batch.cores()
    show = not quiet and sys.stderr.isatty() and sys.stdout is not None and sys.stdout.isatty()
    if fmt == "parquet" and not out_path:
        raise click.UsageError("Parquet decisions need a file: --out decisions.parquet")
    name = f"`{out_path}`" if out_path else _STDOUT
    try:
        out = open(out_path, "wb") if out_path else sys.stdout.buffer  # noqa: SIM115 - closed below
    except OSError as err:
        _stop(f"cannot write `{out_path}`: {err.strerror}")
    if fmt == "parquet":
        # Opened above so that a path that cannot be opened is a usage error, as for the
        # other formats; the Parquet writer opens it again and writes to it at once.
        out.close()
        with _writing(name):
            out = batch.ParquetSink(out_path)
    out = _Output(out, name, owned=bool(out_path))
    try:
        with _input(claims) as stream:
            if claims.endswith(".json"):
                chunks = _json_document(stream.read() or b" ", chunk_size)
            elif claims.endswith(".csv"):
                chunks = batch.csv_chunks(stream, chunk_size)
            elif claims.endswith(".parquet"):
                chunks = batch.parquet_chunks(claims, chunk_size)
            elif claims == "-":
                chunks = _stdin_chunks(stream, chunk_size)
            else:
                chunks = batch.jsonl_chunks(stream, chunk_size)
            with _progress(show) as on_chunk:
                totals = batch.decide_stream(
                    # A FHIR Claim, or facts as a QuestionnaireResponse, is read as the claim it maps to.
                    FhirClaims(WithWhyNot(compiled) if why_not else compiled, to_fhir=fmt == "fhir"),
                    out.until_failed(chunks),
                    out,
                    as_of=day,
                    jobs=jobs,
                    fmt=fmt,
                    name=claims if claims != "-" else "<stdin>",
                    on_chunk=on_chunk,
                    # Claims decoded in one pass are handed on already read: not to the FHIR
                    # encoder or --why-not, which look at the JSON object itself.
                    typed=fmt != "fhir" and not why_not,
                )
    except BaseException:
        out.abandon()
        raise
    out.close()
    if not quiet:
        _summary(totals)


def _lacks(module: str) -> bool:
    """Whether an optional module (an extra's) cannot be imported here."""
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


class _input:
    def __init__(self, source: str):
        self.source = source
        self.stream = None

    def __enter__(self):
        try:
            self.stream = sys.stdin.buffer if self.source == "-" else open(self.source, "rb")  # noqa: SIM115
        except OSError as err:
            raise click.UsageError(f"cannot read `{self.source}`: {err.strerror}") from None
        return self.stream

    def __exit__(self, *exc):
        if self.source != "-" and self.stream is not None:
            self.stream.close()


class _progress:
    """A rich progress line on the terminal: claims decided and the rate."""

    def __init__(self, show: bool):
        self.show = show
        self.bar = None
        self.started = None

    def __enter__(self):
        if not self.show:
            return None
        import time

        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.started = time.perf_counter()
        self.bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True, console=_console()
        )
        self.bar.start()
        task = self.bar.add_task("deciding", total=None)
        decided = {"claims": 0}

        def on_chunk(counts) -> None:
            decided["claims"] += counts["claims"]
            rate = decided["claims"] / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(task, description=f"decided {decided['claims']:,} claims ({rate:,.0f}/s)")

        return on_chunk

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def _summary(totals) -> None:
    """One line on stderr: claims, lines by outcome, errors and warnings; then each distinct
    warning (the first few), so a misspelt fact is seen without reading the decisions."""
    outcomes = ", ".join(
        f"{totals[o]:,} {o}" for o in ("covered", "denied", "pending", "refer", "not_applicable") if totals[o]
    )
    errors, warned = totals["error"], totals["warnings"]
    click.echo(
        f"medpol eval: {_count(totals['claims'], 'claim')}, {_count(totals['lines'], 'line')}"
        + (f" ({outcomes})" if outcomes else "")
        + f"; {errors:,} error{'s' if errors != 1 else ''}, {warned:,} warning{'s' if warned != 1 else ''}",
        err=True,
    )
    seen = sorted(
        ((n, key[1]) for key, n in totals.items() if isinstance(key, tuple) and key[0] == "warning"),
        key=lambda t: -t[0],
    )
    for n, text in seen[:12]:
        click.echo(f"warning: {text}" + (f" ({n:,} claims)" if n > 1 else ""), err=True)


def _explain(compiled, claims: str, day, out_path: str | None, why_not: bool = False) -> None:
    from medpol.engine.errors import error_decision
    from medpol.engine.explain import render
    from medpol.engine.whynot import why_not as routes
    from medpol.service.fhir import FhirClaims, FhirError, FhirUnavailable

    engine = compiled if hasattr(compiled, "policies") else compiled.interpreted()
    fhir = FhirClaims(compiled)
    try:
        out = open(out_path, "wb") if out_path else None  # noqa: SIM115 - closed below
    except OSError as err:
        _stop(f"cannot write `{out_path}`: {err.strerror}")
    name = f"`{out_path}`"
    try:
        for claim in _read_claims(claims):
            if not isinstance(claim, _Unreadable):
                try:
                    claim = fhir.read(claim)
                except (FhirError, FhirUnavailable) as err:
                    claim = _Unreadable(str(err))
            if isinstance(claim, _Unreadable):
                decision = error_decision(None, claim.message, under=(compiled.id, compiled.revision))
            else:
                decision = engine.explain(claim, day) if engine is compiled else engine.decide(claim, day)
                if why_not:
                    decision = routes(compiled, claim, decision, day)
            tree = render(decision, compiled, day)
            with _writing(_STDOUT):
                click.echo(tree)
                click.echo("")
            if out is not None:
                with _writing(name):
                    out.write(orjson.dumps(_without_trace(decision)) + b"\n")
    except BaseException:
        if out is not None:
            with contextlib.suppress(OSError):
                out.close()
        raise
    if out is not None:
        with _writing(name):
            out.close()


@main.command("history", context_settings={"ignore_unknown_options": False})
@click.argument("args", nargs=-1, required=True)
@click.option("--into", default=None, help="With `history import FOLDER`: the policy file to build history for.")
def history_cmd(args: tuple[str, ...], into: str | None) -> None:
    """List the revisions of POLICY from git, newest first; or `history import FOLDER --into POLICY`.

    A revision is recognised by the revision header of the file at each commit that
    changed it; several commits with one revision number are one revision. Given a folder,
    lists every policy the library holds or held, by policy id, each with its revisions.
    """
    from medpol.history.revisions import RefError, history, import_history, library_history

    try:
        if args[0] == "import":
            if len(args) != 2 or not into:
                raise click.UsageError("usage: medpol history import FOLDER --into POLICY")
            revisions = import_history(args[1], into)
            click.echo(f"imported {len(revisions)} revisions into {into}", err=True)
            return
        if len(args) != 1:
            raise click.UsageError("usage: medpol history POLICY (a policy file or a folder of policies)")
        if Path(args[0]).is_dir():
            policies = library_history(args[0])
            if not policies:
                raise click.UsageError(f"no .policy files in `{args[0]}`, as it stands or in its history")
            _print_library_history(policies)
            return
        revisions = history(args[0])
        if not revisions and not Path(args[0]).exists():
            raise RefError(f"`{args[0]}` does not exist, as it stands or in its history")
    except RefError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    rows = [("revision", "dated", "effective", "commit", "author", "description")]
    for rev in revisions:
        rows.append(
            (
                rev.number,
                str(rev.dated or ""),
                str(rev.effective or ""),
                rev.short or "(working tree)",
                _clip(rev.author or "", 40),
                _clip(rev.description, 70),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5])


def _print_library_history(policies) -> None:
    """One row per revision, the policy id on each (for grep), a blank line between policies."""
    header = ("policy", "revision", "dated", "effective", "commit", "description")
    groups = []
    for found in policies:
        rows = []
        if found.removed is not None:
            where = ", ".join(found.paths)
            rows.append((found.policy, "removed", "", "", found.removed.short or "(working tree)", f"{where} removed"))
        for rev in found.revisions:
            rows.append(
                (
                    found.policy,
                    rev.number,
                    str(rev.dated or ""),
                    str(rev.effective or ""),
                    rev.short or "(working tree)",
                    _clip(rev.description, 60),
                )
            )
        if not rows:
            rows.append((found.policy, "", "", "", "", "no revision committed with a revision header"))
        groups.append(rows)
    widths = [max(len(row[i]) for row in [header, *(r for g in groups for r in g)]) for i in range(5)]

    def line(row) -> str:
        return ("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]).rstrip()

    click.echo(line(header))
    for i, rows in enumerate(groups):
        if i:
            click.echo("")
        for row in rows:
            click.echo(line(row))


def _clip(text: str, width: int) -> str:
    """A description for one cell of a table in the terminal: control characters a policy's
    text may hold (an escape sequence would restyle the terminal) shown as escapes."""
    text = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
    return text if len(text) <= width else text[: width - 3] + "..."


@main.command("diff")
@click.argument("ref_a")
@click.argument("ref_b")
@click.option("--claims", "claims_path", default=None, help="Decide these claims (.json/.jsonl) under both versions.")
@click.option("--as-of", type=DATE, default=None, help="With --claims: decide every line as if served on this date.")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False, writable=True), default=None)
def diff_cmd(ref_a: str, ref_b: str, claims_path: str | None, as_of, fmt: str, out_path: str | None) -> None:
    """What changes from REF_A to REF_B, from the compiled policies: rules, codes, facts, dates.

    With --claims, also which claims and lines flip, grouped by the rule that caused it.

    Given two versions of a folder (`policies/@<commit or tag>`, `policies/@<date>`, or
    `policies/` for the working tree), compares the libraries: the policies added, removed
    and changed, each change summed up from its own diff; with --claims, the lines that
    flip, grouped by the policy that decides them.
    """
    problem = (_claims_problem(claims_path) if claims_path is not None else None) or _out_problem(out_path)
    if problem:
        _stop(problem)
    folders = (_names_folder(ref_a), _names_folder(ref_b))
    if any(folders):
        if not all(folders):
            raise click.UsageError(
                "compare a folder with a folder (`policies/@REF`), or a policy file with a policy file"
            )
        text = _library_diff(ref_a, ref_b, claims_path, _date(as_of), fmt)
    else:
        text = _policy_diff(ref_a, ref_b, claims_path, _date(as_of), fmt)
    if out_path:
        _write_out(out_path, text.encode("utf-8"))
    else:
        click.echo(text, nl=False)


def _names_folder(ref: str) -> bool:
    """Whether a diff argument names a folder (a library), as it stands or at a version."""
    from medpol.history.revisions import split_ref

    path = split_ref(ref)[0]  # a folder may have `@` in its name
    return Path(path or ".").is_dir() or path.endswith(("/", "\\"))


def _policy_diff(ref_a: str, ref_b: str, claims_path: str | None, as_of, fmt: str) -> str:
    from medpol.compiler.diff import diff_policies
    from medpol.history.impact import impact
    from medpol.history.report import render_html, render_markdown, to_json

    old, new = _load(ref_a, doing="no diff was made"), _load(ref_b, doing="no diff was made")
    diff = diff_policies(old.model, new.model)
    found = None
    if claims_path is not None:
        unreadable: list[str] = []
        found = impact(old, new, _readable_claims(claims_path, unreadable), as_of, unreadable)
        _warn_unreadable(unreadable)
    titles = {"title_a": _title(ref_a, old), "title_b": _title(ref_b, new)}
    if fmt == "json":
        return orjson.dumps(to_json(diff, found, **titles), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "html":
        return render_html(diff, found, **titles)
    return render_markdown(diff, found, **titles)


def _library_diff(ref_a: str, ref_b: str, claims_path: str | None, as_of, fmt: str) -> str:
    from medpol.compiler.diff import diff_libraries
    from medpol.history.impact import library_impact
    from medpol.history.report import Side, library_to_json, render_library_html, render_library_markdown

    old, new = _library_version(ref_a), _library_version(ref_b)
    if not old.library.policies and not new.library.policies:
        raise click.UsageError(f"no .policy files in `{new.folder}` at {old.title} or at {new.title}")
    diff = diff_libraries(
        {pid: p.model for pid, p in old.library.policies.items()},
        {pid: p.model for pid, p in new.library.policies.items()},
    )
    found = None
    if claims_path is not None:
        unreadable: list[str] = []
        found = library_impact(old.library, new.library, _readable_claims(claims_path, unreadable), as_of, unreadable)
        _warn_unreadable(unreadable)
    sides = {
        "library": new.library.name,
        "a": Side(old.title, old.spec, old.left_out),
        "b": Side(new.title, new.spec, new.left_out),
    }
    if fmt == "json":
        return orjson.dumps(library_to_json(diff, found, **sides), option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "html":
        return render_library_html(diff, found, **sides)
    return render_library_markdown(diff, found, **sides)


def _library_version(ref: str):
    from medpol.history.revisions import load_library_version

    with _loading(ref, "no diff was made"):
        return load_library_version(ref)


def _readable_claims(source: str, unreadable: list[str]) -> Iterator[object]:
    """The claims that can be read; each line that cannot is added to `unreadable`, to be reported."""
    for claim in _read_claims(source):
        if isinstance(claim, _Unreadable):
            unreadable.append(claim.message)
        else:
            yield claim


def _warn_unreadable(unreadable: list[str]) -> None:
    if unreadable:
        n = len(unreadable)
        click.echo(
            f"warning: {n} claim line{'s' if n != 1 else ''} could not be read and {'was' if n == 1 else 'were'} "
            f"decided under neither version; the report lists {'it' if n == 1 else 'them'}",
            err=True,
        )


def _title(ref: str, compiled) -> str:
    return f"revision {compiled.revision}" + (" (working tree)" if "@" not in ref else "")


@main.group("docs")
def docs_group() -> None:
    """Publish the policies as a static site (mkdocs with mkdocs-material)."""


@docs_group.command("build")
@click.option("--policies", "policies_dir", default="policies", show_default=True, help="The folder of policies.")
@click.option("--out", default="site/build", show_default=True, help="Where the pages and HTML go.")
@click.option(
    "--as-of",
    type=DATE,
    default=None,
    help="Publish as of this date (YYYY-MM-DD): a revision taking effect later is a draft. Default: today.",
)
@click.option(
    "--claims",
    "claims_path",
    default=None,
    help="A claims sample (.json/.jsonl): each diff page shows the claim lines whose outcome flips.",
)
def docs_build(policies_dir: str, out: str, as_of, claims_path: str | None) -> None:
    """Render every policy, revision and diff page, then build the site in strict mode.

    Every .policy file under the folder is published, as the library holds it; a policy
    whose revision is not yet in effect, or whose file has uncommitted changes, is listed
    as a draft. With --claims, every diff page decides the sample under both revisions.
    """
    from medpol.publish.site import ClaimSample, SiteError, build

    problem = _claims_problem(claims_path) if claims_path is not None else None
    if problem:
        _stop(problem)
    _policies_folder(policies_dir)
    sample = None
    if claims_path is not None:
        # Read once: every diff page decides the same sample.
        unreadable: list[str] = []
        claims = tuple(_readable_claims(claims_path, unreadable))
        _warn_unreadable(unreadable)
        sample = ClaimSample(claims, tuple(unreadable))
    try:
        html = build(Path(policies_dir), Path(out), today=_date(as_of), claims=sample)
    except PolicyError as err:
        _print_problems(err)
        errors = sum(1 for d in err.diagnostics if d.severity == "error")
        click.echo(f"{policies_dir}: {errors} error{'s' if errors != 1 else ''}; the site was not built", err=True)
        sys.exit(1)
    except SiteError as err:
        click.echo(f"error: mkdocs: {err}", err=True)
        sys.exit(1)
    click.echo(f"built the site in {html}", err=True)


@docs_group.command("serve")
@click.option("--policies", "policies_dir", default="policies", show_default=True)
@click.option("--out", default="site/build", show_default=True)
@click.option("--port", default=8000, show_default=True)
def docs_serve(policies_dir: str, out: str, port: int) -> None:
    """Build the site, serve it on localhost, and rebuild when a policy changes."""
    from medpol.publish.site import SiteError, serve

    _policies_folder(policies_dir)
    try:
        serve(Path(policies_dir), Path(out), port)
    except PolicyError as err:
        _print_problems(err)
        sys.exit(1)
    except SiteError as err:
        click.echo(f"error: mkdocs: {err}", err=True)
        sys.exit(1)
    except OSError as err:
        click.echo(f"error: cannot serve on port {port}: {err.strerror}", err=True)
        sys.exit(2)


def _policies_folder(policies_dir: str) -> None:
    """A folder with a .policy file somewhere under it, as the library reads it."""
    if not Path(policies_dir).is_dir() or not any(Path(policies_dir).rglob("*.policy")):
        raise click.UsageError(f"`{policies_dir}` is not a folder of .policy files")


def _without_trace(decision: dict) -> dict:
    lines = [{k: v for k, v in line.items() if k != "trace"} for line in decision.get("lines", ())]
    return {**decision, "lines": lines}


if __name__ == "__main__":
    main()
