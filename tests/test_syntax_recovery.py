"""Syntax errors are all reported in one run: each at its own line and column, with a caret,
and none that only follows from another.

The policies here are the one `medpol new` writes, broken in known places.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medpol.api import check_file, check_text
from medpol.authoring.scaffold import policy_text
from medpol.dsl.diagnostics import Diagnostic, PolicyError
from medpol.dsl.parser import parse

GOOD = policy_text("demo-pump", "Demo Pump", datetime.date(2026, 1, 5))


def _break(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert text.count(old) == 1, f"`{old}` is not in the policy once"
        text = text.replace(old, new)
    return text


def _at(text: str, line_text: str, word: str) -> tuple[int, int]:
    """The line and column of `word` on the line that reads `line_text` (stripped)."""
    lines = text.split("\n")
    number = [line.strip() for line in lines].index(line_text) + 1
    return number, lines[number - 1].index(word) + 1


def _end_of(text: str, line_text: str) -> tuple[int, int]:
    """The line, and the column just past the last character, of the line that reads `line_text`."""
    lines = text.split("\n")
    number = [line.strip() for line in lines].index(line_text) + 1
    return number, len(lines[number - 1].rstrip()) + 1


def _syntax_errors(text: str, path: str = "demo.policy") -> list[Diagnostic]:
    with pytest.raises(PolicyError) as raised:
        parse(text, path)
    return raised.value.diagnostics


# Three mistakes in three places: a misspelled type in a fact, a condition left unfinished in
# a rule, a stray word after a code table's entry.
FACT = "criteria_met: boool"
CONDITION = "cover covered_items when criteria_met and"
TABLE = 'E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS" stray'
THREE = _break(
    GOOD,
    ("criteria_met: bool\n", FACT + "\n"),
    ("cover covered_items when criteria_met\n", CONDITION + "\n"),
    ('E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"\n', TABLE + "\n"),
)
THREE_AT = [_at(THREE, FACT, "boool"), _at(THREE, TABLE, "stray"), _end_of(THREE, CONDITION)]


def test_the_policy_broken_here_is_valid_as_scaffolded() -> None:
    parse(GOOD)
    assert [d for d in check_text(GOOD, "demo.policy") if d.severity == "error"] == []


def test_three_syntax_errors_are_three_diagnostics_in_one_parse() -> None:
    found = _syntax_errors(THREE)
    assert [(d.line, d.column) for d in found] == THREE_AT
    assert [d.code for d in found] == ["unexpected-token", "unexpected-token", "incomplete-line"]
    assert all(d.severity == "error" for d in found)


def test_each_of_the_three_is_what_that_mistake_alone_reports() -> None:
    # Recovery neither moves an error nor rewords it: each diagnostic is the one a file with
    # only that mistake gets.
    alone = [
        _break(GOOD, ("criteria_met: bool\n", FACT + "\n")),
        _break(GOOD, ('E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"\n', TABLE + "\n")),
        _break(GOOD, ("cover covered_items when criteria_met\n", CONDITION + "\n")),
    ]
    singles = [_syntax_errors(text) for text in alone]
    assert all(len(single) == 1 for single in singles)
    assert _syntax_errors(THREE) == [single[0] for single in singles]


def test_check_text_and_check_file_report_the_three(tmp_path: Path) -> None:
    found = check_text(THREE, "demo.policy")
    assert [(d.line, d.column, d.severity) for d in found] == [(line, col, "error") for line, col in THREE_AT]
    policy = tmp_path / "demo.policy"
    policy.write_text(THREE, encoding="utf-8")
    diagnostics, text = check_file(str(policy))
    assert text == THREE
    assert [(d.line, d.column) for d in diagnostics] == THREE_AT


def _rendered(output: str, path: str) -> list[tuple[int, int, str, str]]:
    """Each diagnostic `medpol check` printed: line, column, source line and caret line."""
    lines = output.splitlines()
    found = []
    for index, line in enumerate(lines):
        match = re.match(re.escape(path) + r":(\d+):(\d+): error\[", line)
        if match:
            found.append((int(match[1]), int(match[2]), lines[index + 1], lines[index + 2]))
    return found


def test_medpol_check_prints_the_three_each_with_its_caret(tmp_path: Path) -> None:
    policy = tmp_path / "demo.policy"
    policy.write_text(THREE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "check", str(policy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    printed = _rendered(result.stderr, str(policy))
    assert [(line, column) for line, column, _, _ in printed] == THREE_AT
    source = THREE.split("\n")
    for line, column, quoted, caret in printed:
        gutter = f"{line} | "
        assert quoted == gutter + source[line - 1]
        assert caret.index("^") == len(gutter) + column - 1
    assert result.stderr.rstrip().endswith("checked 1 policy: 3 errors, 0 warnings")


def test_one_syntax_error_is_still_one_diagnostic(tmp_path: Path) -> None:
    text = _break(GOOD, ("cover covered_items when criteria_met\n", CONDITION + "\n"))
    found = _syntax_errors(text)
    assert [(d.line, d.column, d.code) for d in found] == [(*_end_of(text, CONDITION), "incomplete-line")]
    policy = tmp_path / "demo.policy"
    policy.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "check", str(policy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert len(_rendered(result.stderr, str(policy))) == 1
    assert "1 error," in result.stderr


def test_errors_of_indentation_are_reported_with_the_others() -> None:
    passage = '    "Does the member meet the coverage criteria?"\n'
    text = _break(
        GOOD,
        (passage, passage + "\tmember_age: int\n"),
        ('E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"\n', TABLE + "\n"),
        ("    otherwise deny", "   otherwise deny"),
    )
    found = _syntax_errors(text)
    tabbed = _at(text, "member_age: int", "m")[0]
    misindented = _at(text, "otherwise deny as not reasonable and necessary", "otherwise")[0]
    assert [(d.line, d.column, d.code) for d in found] == [
        (tabbed, 1, "tab-indent"),
        (*_at(text, TABLE, "stray"), "unexpected-token"),
        (misindented, 1, "bad-indent"),
    ]


def test_a_broken_header_does_not_hide_later_errors() -> None:
    text = _break(
        GOOD,
        ('policy demo-pump "Demo Pump"\n', 'policy demo-pump "Demo Pump\n'),
        ('E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"\n', TABLE + "\n"),
    )
    found = _syntax_errors(text)
    assert [(d.line, d.code) for d in found] == [
        (_at(text, 'policy demo-pump "Demo Pump', '"')[0], "unterminated-string"),
        (_at(text, TABLE, "stray")[0], "unexpected-token"),
    ]


def test_an_emptied_block_is_not_reported_as_another_error() -> None:
    # Skipping the only fact leaves `facts` without one, and the only condition line leaves
    # `when` without a condition: neither is a mistake of the author's.
    text = _break(
        GOOD,
        ("criteria_met: bool\n", FACT + "\n"),
        (
            "cover covered_items when criteria_met\n",
            "cover covered_items when\n      criteria_met and\n",
        ),
    )
    found = _syntax_errors(text)
    assert [(d.line, d.column) for d in found] == [
        _at(text, FACT, "boool"),
        _end_of(text, "criteria_met and"),
    ]


def test_a_missing_block_heading_is_one_error_not_one_per_entry() -> None:
    facts = "".join(f"  fact_{n}: bool\n" for n in range(5))
    text = _break(GOOD, ("facts\n  criteria_met: bool\n", facts + "  criteria_met: bool\n"))
    found = _syntax_errors(text)
    assert len(found) == 1
    assert found[0].line == _at(text, "fact_0: bool", "fact_0")[0]


def test_an_unclosed_parenthesis_is_one_error() -> None:
    text = _break(
        GOOD,
        ("cover covered_items when criteria_met\n", "cover covered_items when (criteria_met\n"),
        ('E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"\n', TABLE + "\n"),
    )
    found = _syntax_errors(text)
    assert len(found) == 2
    assert (found[0].line, found[0].column) == _at(text, TABLE, "stray")
    # With the parenthesis open the next lines run on, so it is found where the next rule starts.
    assert found[1].line == _at(text, "rule coverage.criteria_not_met", "rule")[0]


def test_at_most_fifty_errors_are_reported() -> None:
    tables = "".join(f'\ncodes extra_{n} "Extra {n}"\n  E1399 "ITEM" stray\n' for n in range(60))
    found = _syntax_errors(GOOD + tables)
    assert len(found) == 50
    assert all(d.code == "unexpected-token" and "stray" in d.message for d in found)
