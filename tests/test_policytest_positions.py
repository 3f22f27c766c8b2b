"""Policy tests files: every problem found in one, and every failing case, is pointed at as
`FILE:LINE:COL`, at the key or value it is about (a missing key: the mapping that lacks it)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from medpol.authoring.policytests.load import TestFileError, load_tests
from medpol.cli import test as cli_test
from tests.test_authoring_edges import HEAD as TESTS_HEAD
from tests.test_authoring_edges import POLICY

cli = click.Group("medpol", commands=[cli_test.test_cmd])

# The tiny policy and the head of its tests file, as the other tests of tests files write them.
HEAD = (
    TESTS_HEAD
    + """cases:
  - name: covered
    claim: {lines: [E0781], facts: {a: true}}
    expect: [{seq: 1, outcome: covered}]
"""
)


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "tiny.policy").write_text(POLICY)
    path = tmp_path / "tiny.tests.yaml"
    path.write_text(text)
    return path


def at(text: str, marker: str, nth: int = 1) -> str:
    """`LINE:COL` of the nth occurrence of `marker` in the text, 1-based as the messages count."""
    index = -1
    for _ in range(nth):
        index = text.index(marker, index + 1)
    line_start = text.rfind("\n", 0, index) + 1
    return f"{text.count(chr(10), 0, index) + 1}:{index - line_start + 1}"


def problem(path: Path, number: int) -> str:
    (case,) = [c for c in load_tests(path).cases if c.index == number]
    assert case.problem is not None
    return case.problem


def problem_free(path: Path) -> bool:
    return all(c.problem is None for c in load_tests(path).cases)


# ---------------------------------------------------------------- a case that cannot be read


def test_an_unknown_key_in_a_case_points_at_the_key(tmp_path):
    text = (
        HEAD
        + """  - name: misspelt
    claim: {lines: [E0781], facts: {a: true}}
    expekt: [{seq: 1, outcome: covered}]
"""
    )
    path = write(tmp_path, text)
    assert problem(path, 2) == (
        f'{path}:{at(text, "expekt")}: case #2 "misspelt": unknown key `expekt` '
        "(a case has name, claim, claim_file, as_of, known_at, expect)"
    )
    assert at(text, "expekt") == "12:5"
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    assert f'FAILED {path}:12:5: case #2 "misspelt": unknown key `expekt`' in result.output
    assert result.output.endswith("1 passed, 1 failed\n")


def test_a_bad_outcome_word_points_at_the_word_in_its_expect_entry(tmp_path):
    text = (
        HEAD
        + """  - name: typo
    claim: {lines: [E0781], facts: {a: true}}
    expect:
      - {seq: 1, outcome: covered}
      - seq: 2
        outcome: coverd
"""
    )
    path = write(tmp_path, text)
    assert at(text, "coverd") == "15:18"
    assert problem(path, 2) == (
        f'{path}:15:18: case #2 "typo": expect[1].outcome: `coverd` is not one of '
        "covered, denied, pending, refer, not_applicable, error"
    )


def test_an_expect_entry_without_an_outcome_points_at_the_entry(tmp_path):
    text = HEAD + "  - {name: no outcome, claim: {lines: [E0781]}, expect: [{seq: 1}]}\n"
    path = write(tmp_path, text)
    assert problem(path, 2).startswith(f'{path}:{at(text, "{seq: 1}")}: case #2 "no outcome": expect[0].outcome:')


@pytest.mark.parametrize("key", ["as_of", "known_at"])
def test_a_bad_date_of_a_case_points_at_the_date(tmp_path, key):
    text = (
        HEAD
        + f"""  - name: bad date
    claim: {{lines: [E0781], facts: {{a: true}}}}
    {key}: 2026-02-30
    expect: [{{seq: 1, outcome: covered}}]
"""
    )
    path = write(tmp_path, text)
    assert at(text, "2026-02-30") == f"12:{len(key) + 7}"
    assert problem(path, 2) == (
        f'{path}:{at(text, "2026-02-30")}: case #2 "bad date": `{key}`: `2026-02-30` is not a date (YYYY-MM-DD)'
    )


def test_a_date_and_time_of_a_case_points_at_the_value(tmp_path):
    text = HEAD + "  - {name: a time, claim: {lines: [E0781]}, as_of: 2026-02-03T10:00:00, expect: []}\n"
    path = write(tmp_path, text)
    assert problem(path, 2).startswith(f'{path}:{at(text, "2026-02-03T")}: case #2 "a time": `as_of` must be a date')


def test_a_bad_date_inside_a_claim_is_decided_and_points_at_the_expectation(tmp_path):
    # Dates inside a claim are the contract's to judge: the line is an error, not the case.
    text = (
        HEAD
        + """  - name: bad service date
    claim: {lines: [{hcpcs: E0781, service_date: 2026-02-30}], facts: {a: true}}
    expect:
      - {seq: 1, outcome: covered}
"""
    )
    path = write(tmp_path, text)
    assert problem_free(path)
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    assert (
        f'FAILED {path}:{at(text, "{seq: 1", 2)}: case #2 "bad service date", line 1: expected covered, got error'
        in result.output
    )


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nowhere.jsonl#x", "claim_file `nowhere.jsonl`: cannot read it"),
        ("claims.jsonl#C-9", "claim_file `claims.jsonl#C-9`: no claim with id `C-9`"),
        ("claims.jsonl", "claim_file `claims.jsonl`: name the claim, e.g. `claims.jsonl#claim-id` (2 claims)"),
        ("broken.jsonl#C-1", "claim_file `broken.jsonl`, line 2: not valid JSON"),
        ("'   '", "`claim_file` must be a file name"),
    ],
)
def test_a_bad_claim_file_points_at_its_value(tmp_path, ref, message):
    (tmp_path / "claims.jsonl").write_text('{"id": "C-1"}\n{"id": "C-2"}\n')
    (tmp_path / "broken.jsonl").write_text('{"id": "C-1"}\n{"id": \n')
    text = (
        HEAD
        + f"""  - name: from a file
    claim_file: {ref}
    expect: [{{seq: 1, outcome: covered}}]
"""
    )
    path = write(tmp_path, text)
    assert at(text, ref) == "11:17"
    assert problem(path, 2).startswith(f'{path}:11:17: case #2 "from a file": {message}')


def test_a_claim_file_read_twice_points_at_each_case(tmp_path):
    text = HEAD + (
        "  - {name: one, claim_file: gone.json, expect: [{seq: 1, outcome: covered}]}\n"
        "  - {name: two, claim_file: gone.json, expect: [{seq: 1, outcome: covered}]}\n"
    )
    path = write(tmp_path, text)
    assert problem(path, 2).startswith(f'{path}:{at(text, "gone.json", 1)}: case #2 "one": claim_file `gone.json`')
    assert problem(path, 3).startswith(f'{path}:{at(text, "gone.json", 2)}: case #3 "two": claim_file `gone.json`')


def test_a_missing_key_of_a_case_points_at_the_case(tmp_path):
    text = (
        HEAD
        + """  - name: no expect
    claim: {lines: [E0781]}
"""
    )
    path = write(tmp_path, text)
    assert problem(path, 2) == f'{path}:10:5: case #2 "no expect": `expect` is missing'


def test_a_claim_line_that_is_not_a_mapping_points_at_it(tmp_path):
    text = (
        HEAD
        + "  - {name: bad line, claim: {line: [2026-02-10], lines: [E0781]}, expect: [{seq: 1, outcome: covered}]}\n"
    )
    path = write(tmp_path, text)
    assert problem(path, 2) == (
        f'{path}:{at(text, "[2026-02-10]")}: case #2 "bad line": `claim.line` must be a mapping of line fields'
    )


def test_a_repeated_name_points_at_the_second_name(tmp_path):
    text = HEAD + "  - name: covered\n    claim: {lines: [E0781]}\n    expect: [{seq: 1, outcome: covered}]\n"
    path = write(tmp_path, text)
    assert problem(path, 2) == f'{path}:10:11: case #2 "covered": the name is already used by case #1'


def test_an_expectation_from_an_alias_points_where_the_anchor_is_written(tmp_path):
    text = (
        "x-expect:\n  bad: &bad {seq: 1, outcome: dennied}\n"
        + HEAD
        + "  - {name: aliased, claim: {lines: [E0781]}, expect: [*bad]}\n"
    )
    path = write(tmp_path, text)
    assert problem(path, 2).startswith(f'{path}:2:31: case #2 "aliased": expect[0].outcome: `dennied`')


def test_a_key_a_merge_brings_in_points_where_it_is_written(tmp_path):
    text = (
        "x-case:\n  base: &base {name: merged, claim: {lines: [E0781]}, expect: [{seq: 1, outcome: covered}]}\n"
        + HEAD
        + "  - {<<: *base, extra: 1}\n"
        + "  - {<<: *base, name: merged again, as_of: someday}\n"
    )
    path = write(tmp_path, text)
    assert problem(path, 2).startswith(f'{path}:{at(text, "extra")}: case #2 "merged": unknown key `extra`')
    assert problem(path, 3).startswith(f'{path}:{at(text, "someday")}: case #3 "merged again": `as_of`')


# ---------------------------------------------------------------- a file that cannot be used


def load_error(path: Path) -> str:
    with pytest.raises(TestFileError) as caught:
        load_tests(path)
    return str(caught.value)


def test_an_unknown_top_level_key_points_at_the_key(tmp_path):
    text = HEAD.replace("defaults:", "defualts:")
    path = write(tmp_path, text)
    message = (
        f"{path}:2:1: unknown key `defualts` (a tests file has policy, defaults, cases, and `x-` keys for anchors)"
    )
    assert load_error(path) == message
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert result.output == f"error: {message}\n"


@pytest.mark.parametrize(
    ("text", "where", "key"),
    [
        ("policy: tiny.policy\n", "1:1", "cases"),
        ("# the tests of tiny\n\ncases: [{name: x}]\n", "3:1", "policy"),
    ],
)
def test_a_missing_required_key_points_at_the_mapping_that_lacks_it(tmp_path, text, where, key):
    path = write(tmp_path, text)
    assert load_error(path) == f"{path}:{where}: the required key `{key}` is missing"


def test_a_missing_key_in_a_flow_mapping_points_at_its_brace(tmp_path):
    path = write(tmp_path, "# notes\n  {policy: tiny.policy}\n")
    assert load_error(path) == f"{path}:2:3: the required key `cases` is missing"


FILE_LEVEL = [
    # the text, where the problem is (the text at it, or `LINE:COL`), the message
    ('policy: "tiny\\0.policy"\ncases: [{name: x}]\n', '"tiny', "`policy` must be the policy's file name"),
    ("policy: missing.policy\ncases: [{name: x}]\n", "missing.policy", "the policy `missing.policy` does not exist"),
    ("policy: tiny.policy\ndefaults: [1]\ncases: [{name: x}]\n", "[1]", "`defaults` must be a mapping"),
    ("policy: tiny.policy\ndefaults:\n  line: 3\ncases: [{name: x}]\n", "3:9", "`defaults.line` must be a mapping"),
    ("policy: tiny.policy\ncases: []\n", "[]", "`cases` must be a non-empty list of cases, got a list"),
    # an empty value starts where it would be written: after the key
    ("policy: tiny.policy\ncases:\n", "2:7", "`cases` must be a non-empty list of cases, got nothing"),
    ("# a list\n- policy: tiny.policy\n", "- policy", "expected a mapping with `policy` and `cases`, got a list"),
    ("# a word\n\n  word\n", "3:3", "expected a mapping with `policy` and `cases`, got `word`"),
    ("", "1:1", "expected a mapping with `policy` and `cases`, got nothing"),
]


@pytest.mark.parametrize(("text", "where", "message"), FILE_LEVEL)
def test_a_file_level_problem_points_at_its_value(tmp_path, text, where, message):
    path = write(tmp_path, text)
    if not where[0].isdigit():
        where = at(text, where)
    assert load_error(path).startswith(f"{path}:{where}: {message}")


# ---------------------------------------------------------------- a failing case


FAILING = (
    HEAD
    + """  - name: denied without a
    claim:
      lines: [E0781, E0781]
      facts: {a: false}
    expect:
      - {seq: 1, outcome: denied, category: not_reasonable_and_necessary}
      - {seq: 2, outcome: covered}
  - name: claim error expected
    claim: {lines: [E0781], facts: {a: true}}
    expect: {outcome: error}
"""
)


def test_a_failing_case_points_at_the_expectation_it_breaks(tmp_path):
    path = write(tmp_path, FAILING)
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    out = result.output
    assert at(FAILING, "- {seq: 2") == "16:7"
    assert (
        f'FAILED {path}:16:9: case #2 "denied without a", line 2: '
        "expected covered, got denied (not reasonable and necessary)\n" in out
    )
    assert (
        f'FAILED {path}:{at(FAILING, "{outcome: error}")}: case #3 "claim error expected": '
        "expected a claim error, got line decisions (line 1 covered)\n" in out
    )
    assert "1 passed, 2 failed" in out
    assert out.count("FAILED") == 2  # the passing case is not shown


def test_a_case_under_a_broken_policy_points_at_the_case(tmp_path):
    path = write(tmp_path, HEAD)
    (tmp_path / "tiny.policy").write_text(POLICY.replace("cover pumps when a", "cover pumps when b"))
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    assert f'FAILED {path}:7:5: case #1 "covered": the policy {tmp_path / "tiny.policy"} has 1 error' in result.output


def test_a_warning_about_a_claim_names_the_case_where_it_starts(tmp_path):
    text = HEAD.replace("facts: {a: true}", "facts: {a: true}, factz: {}")
    path = write(tmp_path, text)
    result = run("test", str(path))
    assert result.exit_code == 0, result.output
    assert f'warning: {path}:7:5: case #1 "covered": `factz` is not a field of a claim and was ignored' in (
        result.output
    )
