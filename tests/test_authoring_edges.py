"""The authoring commands (`medpol test`, `medpol fmt`) given input they must refuse in words:
a tests file with YAML that a tests file does not accept, names no file can have, bytes that are
not UTF-8, misspelt claim fields, a coverage bar that is not a number, a file fmt cannot write."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from medpol.cli import test as cli_test
from medpol.cli.fmt import fmt_cmd

# Imported through the module: a name starting with `test` would be collected by pytest.
cli = click.Group("medpol", commands=[cli_test.test_cmd, fmt_cmd])

POLICY = """medpol 1

policy tiny "Tiny"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  a: bool

codes pumps "Pumps"
  E0781 "AMBULATORY PUMP"

section s "S"
  rule s.cover
    "Cover."
    cover pumps when a

  rule s.otherwise
    "Otherwise."
    otherwise deny as not reasonable and necessary
"""

HEAD = """policy: tiny.policy
defaults:
  member: {id: M-1, birth_date: 1970-03-02, line_of_business: commercial}
  diagnoses: []
  line: {service_date: 2026-02-10}
"""

EXPECT = "[{seq: 1, outcome: covered}]"
CASE = f"{{name: covered, claim: {{lines: [E0781], facts: {{a: true}}}}, expect: {EXPECT}}}"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def write_tests(tmp_path: Path, text: str | bytes) -> Path:
    (tmp_path / "tiny.policy").write_text(POLICY)
    path = tmp_path / "tiny.tests.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def test_the_file_the_tests_below_start_from_passes(tmp_path):
    result = run("test", str(write_tests(tmp_path, HEAD + f"cases:\n  - {CASE}\n")))
    assert result.exit_code == 0, result.output
    assert result.output.endswith("1 passed, 0 failed\n")
    assert "warning" not in result.output


# ---------------------------------------------------------------- YAML a tests file refuses


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("policy: tiny.policy\npolicy: other.policy\ncases: [x]\n", "2:1", "the key `policy` is given twice"),
        (
            HEAD + "cases:\n  - {name: a, name: b, claim: {lines: [E0781]}, expect: [{seq: 1, outcome: covered}]}\n",
            "7:15",
            "the key `name` is given twice in this mapping (first on line 7)",
        ),
        (
            HEAD + "cases:\n  - name: a\n    claim: {lines: [E0781], facts: {a: true, a: false}}\n"
            "    expect: [{seq: 1, outcome: covered}]\n",
            "8:46",
            "the key `a` is given twice",
        ),
    ],
)
def test_a_key_given_twice_is_refused_where_it_is_given_again(tmp_path, text, where, message):
    path = write_tests(tmp_path, text)
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.output == f"error: {path}:{where}: {message}" + result.output.split(message, 1)[1]
    assert result.output.count("\n") == 1


def test_a_key_a_merge_brings_in_may_still_be_overridden(tmp_path):
    text = HEAD.replace("defaults:", "x-sets:\n  off: &off {a: false}\ndefaults:") + (
        "cases:\n  - {name: over, claim: {lines: [E0781], facts: {<<: *off, a: true}}, "
        "expect: [{seq: 1, outcome: covered}]}\n"
    )
    result = run("test", str(write_tests(tmp_path, text)))
    assert result.exit_code == 0, result.output


def _laughs(levels: int) -> str:
    lines = ["x-laughs:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_aliases_that_expand_past_the_limit_are_refused_at_once(tmp_path):
    # Nine levels: a billion values, if a case's claim is copied in full.
    case = "{name: laughs, claim: {lines: [E0781], facts: {a: true, junk: *l8}}, expect: [{seq: 1, outcome: covered}]}"
    path = write_tests(tmp_path, HEAD + _laughs(9) + f"cases:\n  - {case}\n")
    started = time.monotonic()
    result = run("test", str(path))
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert re.fullmatch(
        rf"error: {re.escape(str(path))}:\d+:\d+: the aliases stand for more than 100,000 values in all\n",
        result.output,
    )


def test_aliases_within_the_limit_are_read():
    import yaml

    from medpol.authoring.policytests.load import _Loader

    data = yaml.load(_laughs(4), Loader=_Loader)  # 10,000 values, all told
    assert len(data["x-laughs"]["l3"]) == 10


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path):
    case = "{name: me, claim: &me {lines: [E0781], facts: {a: true, me: *me}}, expect: [{seq: 1, outcome: covered}]}"
    path = write_tests(tmp_path, HEAD + f"cases:\n  - {case}\n")
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.output == f"error: {path}:7:65: the alias `*me` is inside the value it names\n"


@pytest.mark.parametrize("flow", [True, False])
def test_nesting_past_the_limit_is_refused_not_a_recursion_error(tmp_path, flow):
    if flow:
        deep = "[" * 1000 + "]" * 1000
        case = (
            f"{{name: deep, claim: {{lines: [E0781], facts: {{a: {deep}}}}}, expect: [{{seq: 1, outcome: covered}}]}}"
        )
        text = HEAD + f"cases:\n  - {case}\n"
    else:
        text = HEAD + "cases:\n  - name: deep\n    claim:\n" + "".join("  " * (i + 3) + "k:\n" for i in range(100))
    path = write_tests(tmp_path, text)
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert re.fullmatch(rf"error: {re.escape(str(path))}:\d+:\d+: nested more than 64 levels deep\n", result.output)


def test_aliases_that_nest_past_the_limit_once_expanded_are_refused(tmp_path):
    # Each anchor nests the one before 30 levels deeper: few values, but a claim 600 levels deep.
    chain = ["x-deep:", "  d0: &d0 1"]
    chain += [f"  d{i}: &d{i} {'[' * 30}*d{i - 1}{']' * 30}" for i in range(1, 20)]
    case = f"{{name: deep, claim: {{lines: [E0781], facts: {{a: true, z: *d19}}}}, expect: {EXPECT}}}"
    path = write_tests(tmp_path, HEAD + "\n".join(chain) + f"\ncases:\n  - {case}\n")
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert result.output == f"error: {path}:10:41: nested more than 64 levels deep once the alias `*d2` is expanded\n"


def test_nesting_within_the_limit_is_read(tmp_path):
    deep = "[" * 55 + "]" * 55
    case = f"{{name: deep, claim: {{lines: [E0781], facts: {{a: true, z: {deep}}}}}, expect: {EXPECT}}}"
    result = run("test", str(write_tests(tmp_path, HEAD + f"cases:\n  - {case}\n")))
    assert_no_traceback(result)
    assert result.output.endswith("1 passed, 0 failed\n"), result.output


# ---------------------------------------------------------------- file names and bytes


def test_a_policy_name_with_a_nul_character_is_refused_in_words(tmp_path):
    path = write_tests(tmp_path, f'policy: "tiny\\0.policy"\ncases:\n  - {CASE}\n')
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert f"error: {path}:1:9: `policy` must be the policy's file name" in result.output


def test_a_claim_file_with_a_nul_character_fails_its_case_alone(tmp_path):
    bad = '{name: nul, claim_file: "claims\\0.jsonl#C-1", expect: [{seq: 1, outcome: covered}]}'
    path = write_tests(tmp_path, HEAD + f"cases:\n  - {CASE}\n  - {bad}\n")
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    assert_no_traceback(result)
    column = len("  - ") + bad.index('"claims') + 1
    assert f'FAILED {path}:8:{column}: case #2 "nul": `claim_file` must be a file name' in result.output
    assert result.output.endswith("1 passed, 1 failed\n")


def test_bytes_that_are_not_utf8_are_pointed_at(tmp_path):
    text = HEAD + "cases:\n  - {name: caf\u00e9 \xe9t\xe9, claim: {lines: [E0781]}}\n"
    path = write_tests(tmp_path, text.encode("utf-8").replace("\xe9t".encode(), b"\xe9t"))
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {path}:7:17: not UTF-8 text: byte 0xe9 (save the file as UTF-8)\n"


# ---------------------------------------------------------------- what a case gives that the policy ignores


def test_a_misspelt_claim_field_or_fact_is_a_warning(tmp_path):
    case = (
        "{name: typos, claim: {lines: [{hcpcs: E0781, unitz: 2}], factz: {a: true}, facts: {a: true, b: true}}, "
        "expect: [{seq: 1, outcome: covered}]}"
    )
    path = write_tests(tmp_path, HEAD + f"cases:\n  - {case}\n")
    result = run("test", str(path))
    assert result.exit_code == 0, result.output  # the case passes; the warnings say what was ignored
    assert f'warning: {path}:7:5: case #1 "typos": `factz` is not a field of a claim and was ignored' in result.output
    assert "`lines[0].unitz` is not a field of a claim and was ignored" in result.output
    assert "`facts.b` is not a fact of this policy and was ignored" in result.output


@pytest.mark.parametrize("units", [".nan", ".inf", "-1"])
def test_units_that_no_line_is_paid_in_are_refused(tmp_path, units):
    expect = f"[{{seq: 1, outcome: covered, allowed_units: {units}}}]"
    case = f"{{name: units, claim: {{lines: [E0781], facts: {{a: true}}}}, expect: {expect}}}"
    result = run("test", str(write_tests(tmp_path, HEAD + f"cases:\n  - {case}\n")))
    assert result.exit_code == 1, result.output
    assert 'case #1 "units": expect[0].allowed_units: expected a number of units' in result.output


# ---------------------------------------------------------------- --min-coverage


@pytest.mark.parametrize("value", ["nan", "NaN", "-1", "101", "abc", "inf"])
def test_min_coverage_that_is_not_a_percentage_is_a_usage_error(tmp_path, value):
    result = run("test", str(write_tests(tmp_path, HEAD + f"cases:\n  - {CASE}\n")), "--min-coverage", value)
    assert result.exit_code == 2, result.output
    assert "--min-coverage" in result.output
    assert "passed" not in result.output


# ---------------------------------------------------------------- medpol fmt


def test_fmt_on_a_file_it_cannot_write_says_so_and_goes_on(tmp_path, monkeypatch):
    messy = tmp_path / "messy.policy"
    messy.write_text(POLICY.replace("  a: bool", "  a:   bool"))
    other = tmp_path / "other.policy"
    other.write_text(POLICY.replace("  a: bool", "  a:  bool"))
    real_write = Path.write_bytes

    def refuse(self, data):
        if self.name == "messy.policy":  # as a read-only file (chmod does not stop root)
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", refuse)
    result = CliRunner().invoke(cli, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert f"{messy}: cannot write: Permission denied" in result.stderr
    assert f"reformatted {other}" in result.stderr
    assert result.stderr.splitlines()[-1] == "1 file reformatted, 0 already formatted, 1 error"
    assert other.read_text() == POLICY
