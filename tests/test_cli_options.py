"""The command line's options and output: a date option is a YYYY-MM-DD date or a usage error,
and decisions that cannot be written are told in one line, never a traceback."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from medpol.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
POLICY = str(ROOT / "policies" / "external-infusion-pump.policy")
CLAIMS = str(ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl")
FULL = "/dev/full"
NO_SPACE = "No space left on device"

needs_dev_full = pytest.mark.skipif(not Path(FULL).exists(), reason="no /dev/full on this system")


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def run_process(*args: str, buffered: bool = True, **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    # Buffered, as for most users: what stays in the buffer after a failed write must not
    # fail again, with a traceback, as Python flushes it on the way out.
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "medpol.cli", *args],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        check=False,
        timeout=120,  # a run that stops its workers badly hangs rather than fails
        **kwargs,
    )


@pytest.fixture(scope="module")
def many_claims(tmp_path_factory) -> str:
    """Enough claims for many chunks, and for the output to outgrow a pipe's buffer."""
    path = tmp_path_factory.mktemp("many") / "claims.jsonl"
    path.write_bytes(Path(CLAIMS).read_bytes() * 400)
    return str(path)


NOT_DATES = [
    "2020-1-1",
    "20200101",
    " 2020-01-01",
    "2020-01-01 ",
    "2020-01-01T00:00",
    "2020-01-01 junk",
    "",
    "2026-W06-2",
    "2026-W062",
    "+2020-01-01",
    "2020-01-0\u0661",
]

DATE_OPTIONS = {
    "eval --as-of": ("eval", POLICY, CLAIMS, "--as-of"),
    "eval --known-at": ("eval", POLICY, CLAIMS, "--known-at"),
    "diff --as-of": ("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--claims", CLAIMS, "--as-of"),
    "docs build --as-of": ("docs", "build", "--policies", str(ROOT / "policies"), "--as-of"),
}


@pytest.mark.parametrize("value", NOT_DATES)
@pytest.mark.parametrize("option", DATE_OPTIONS)
def test_a_date_option_that_is_not_a_yyyy_mm_dd_date_is_a_usage_error(option, value):
    *args, flag = DATE_OPTIONS[option]
    result = run(*args, flag, value)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output
    assert "is not a date (expected YYYY-MM-DD)" in result.output
    assert "Traceback" not in result.output


def test_an_empty_date_is_named_as_such():
    result = run("eval", POLICY, CLAIMS, "--as-of", "")
    assert "an empty value is not a date (expected YYYY-MM-DD)" in result.output


def test_a_yyyy_mm_dd_date_is_taken_and_no_date_keeps_its_meaning():
    def outcomes(*args: str) -> list[str]:
        result = run("eval", "-q", POLICY, CLAIMS, *args)
        assert result.exit_code == 0, result.output
        return [[line["outcome"] for line in json.loads(d)["lines"]] for d in result.stdout.splitlines()]

    plain = outcomes()  # each line's own date of service, under the revision in the working tree
    assert outcomes("--as-of", "2026-01-20") != plain
    assert outcomes("--known-at", "2026-01-01") == plain
    assert outcomes("--known-at", "2025-12-12") != plain


@needs_dev_full
@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "fhir"])
def test_a_full_disk_under_out_is_one_line_and_exit_1(fmt, jobs):
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        pytest.skip("the parquet extra is not installed")
    if fmt == "fhir" and importlib.util.find_spec("fhir.resources") is None:
        pytest.skip("the fhir extra is not installed")
    result = run("eval", "-q", POLICY, CLAIMS, "--out", FULL, "--output-format", fmt, "--jobs", jobs)
    assert result.exit_code == 1, result.output
    assert result.output == f"error: cannot write `{FULL}`: {NO_SPACE}\n"


@needs_dev_full
def test_a_full_disk_under_explain_out_is_one_line_and_exit_1():
    result = run("eval", "-q", POLICY, CLAIMS, "--explain", "--out", FULL)
    assert result.exit_code == 1
    assert result.stderr == f"error: cannot write `{FULL}`: {NO_SPACE}\n"


@pytest.mark.skipif(not os.access("/proc/version", os.W_OK), reason="/proc/version cannot be opened for writing")
def test_a_device_error_under_out_is_one_line_and_exit_1():
    result = run("eval", "-q", POLICY, CLAIMS, "--out", "/proc/version")
    assert result.exit_code == 1
    assert result.output == "error: cannot write `/proc/version`: Input/output error\n"


@needs_dev_full
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize(
    "args",
    [("--jobs", "1"), ("--jobs", "2"), ("--jobs", "2", "--output-format", "csv"), ("--explain",)],
    ids=lambda args: " ".join(args),
)
def test_a_full_disk_under_standard_output_is_one_line_and_exit_1(args, buffered):
    with open(FULL, "wb") as full:
        result = run_process("eval", POLICY, CLAIMS, *args, stdout=full, buffered=buffered)
    assert result.returncode == 1
    assert result.stderr.decode() == f"error: cannot write standard output: {NO_SPACE}\n"


@needs_dev_full
@pytest.mark.parametrize("to_stdout", [True, False], ids=["standard output", "--out"])
def test_a_full_disk_with_chunks_in_flight_ends_the_run(many_claims, to_stdout):
    args = ("eval", "-q", POLICY, many_claims, "--jobs", "2", "--chunk-size", "20")
    with open(FULL, "wb") as full:
        if to_stdout:
            result = run_process(*args, stdout=full)
        else:
            result = run_process(*args, "--out", FULL, stdout=subprocess.DEVNULL)
    assert result.returncode == 1
    name = "standard output" if to_stdout else f"`{FULL}`"
    assert result.stderr.decode() == f"error: cannot write {name}: {NO_SPACE}\n"


# Every command that writes to standard output, as an author or a claims engineer runs it.
WRITERS = {
    "--help": ("--help",),
    "--version": ("--version",),
    "eval --help": ("eval", "--help"),
    "compile --show-python": ("compile", POLICY, "--show-python"),
    "diff": ("diff", f"{POLICY}@r21", f"{POLICY}@r22"),
    "diff --format html": ("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--format", "html"),
    "diff of libraries": ("diff", str(ROOT / "policies"), str(ROOT / "policies")),
    "history": ("history", POLICY),
    "test": ("test", str(ROOT / "policies" / "external-infusion-pump.tests.yaml")),
    "fhir questionnaire": ("fhir", "questionnaire", POLICY),
    "fhir claim": ("fhir", "claim", POLICY, CLAIMS),
}


@needs_dev_full
@pytest.mark.parametrize("command", WRITERS)
def test_any_command_writing_to_a_full_disk_is_one_line_and_exit_1(command):
    if command.startswith("fhir") and importlib.util.find_spec("fhir.resources") is None:
        pytest.skip("the fhir extra is not installed")
    with open(FULL, "wb") as full:
        result = run_process(*WRITERS[command], stdout=full)
    assert result.stderr.decode() == f"error: cannot write standard output: {NO_SPACE}\n"
    assert result.returncode == 1


@needs_dev_full
@pytest.mark.parametrize(
    "args",
    [("diff", f"{POLICY}@r21", f"{POLICY}@r22"), ("fhir", "questionnaire", POLICY)],
    ids=["diff", "fhir questionnaire"],
)
def test_a_full_disk_under_a_reports_out_is_one_line_and_exit_1_as_for_eval(args):
    if args[0] == "fhir" and importlib.util.find_spec("fhir.resources") is None:
        pytest.skip("the fhir extra is not installed")
    result = run(*args, "--out", FULL)
    assert result.exit_code == 1
    assert result.output == f"error: cannot write `{FULL}`: {NO_SPACE}\n"


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="no /proc on this system")
def test_a_report_out_that_cannot_be_opened_stays_a_usage_error():
    # /proc takes no new files, whoever asks: the file cannot be opened, nothing is written.
    result = run("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--out", "/proc/medpol-diff.md")
    assert result.exit_code == 2
    assert result.output == "error: cannot write `/proc/medpol-diff.md`: No such file or directory\n"


def test_a_closed_standard_output_is_a_usage_error():
    result = run_process("eval", "-q", POLICY, CLAIMS, preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert result.stderr.decode() == "error: cannot write standard output: it is closed\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_reader_that_stops_early_ends_the_run_quietly(many_claims, jobs, tmp_path):
    errors = tmp_path / "stderr"
    with errors.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "medpol.cli", "eval", POLICY, many_claims, "--jobs", jobs],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        assert process.stdout.readline().startswith(b"{")
        process.stdout.close()
        process.wait(timeout=120)
    assert errors.read_bytes() == b""
