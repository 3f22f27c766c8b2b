"""`medpol check` reports every syntax error of a file in one run, each at its place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medpol.api import check_text

GOOD = """\
policy demo "Demo"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  trained: bool
  insulin_treated: bool

codes monitors "monitors"
  E0607 "home blood glucose monitor"
  A4253 "test strips, per 50"

section s "S"
  rule s.monitor
    cover E0607 when trained
  rule s.strips
    limit A4253 to 2 units within 3 months, excess denied when not insulin_treated
  rule s.strip_cover
    cover A4253 when trained
"""

# Three mistakes in three places: a stray word in a fact, a broken table row, a comparison
# left unfinished.
THREE = (
    GOOD.replace("  trained: bool\n", "  trained: bool bogus\n")
    .replace('  A4253 "test strips, per 50"\n', '  A4253 "test strips, per 50"\n  ??? broken\n')
    .replace("cover E0607 when trained", "cover E0607 when trained >=")
)


def _syntax(diagnostics):
    return [d for d in diagnostics if d.severity == "error"]


def test_a_good_file_has_no_error():
    assert _syntax(check_text(GOOD, "demo.policy")) == []


def test_three_syntax_errors_are_three_diagnostics_at_their_places():
    found = _syntax(check_text(THREE, "demo.policy"))
    assert [(d.line, d.code) for d in found] == [
        (5, "unexpected-token"),
        (11, "unexpected-character"),
        (15, "incomplete-line"),
    ]
    assert found[0].column == THREE.splitlines()[4].index("bogus") + 1
    assert found[1].column == THREE.splitlines()[10].index("?") + 1


def test_the_cli_prints_each_with_a_caret_and_counts_them(tmp_path: Path):
    policy = tmp_path / "demo.policy"
    policy.write_text(THREE, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "check", str(policy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    for line in (5, 11, 15):
        assert f"demo.policy:{line}:" in out
    assert out.count("^") >= 3
    assert "3 errors" in out


def test_one_syntax_error_is_still_one_diagnostic():
    text = GOOD.replace("cover E0607 when trained", "cover E0607 when")
    found = _syntax(check_text(text, "demo.policy"))
    assert len(found) == 1 and found[0].line == 14


def test_an_error_in_every_rule_is_reported_in_each():
    text = GOOD.replace("when trained", "when (trained").replace("within 3 months", "within months")
    found = _syntax(check_text(text, "demo.policy"))
    # An unclosed parenthesis joins the lines after it, so it is found where the next rule starts.
    assert [(d.line, d.column) for d in found] == [(15, 3), (16, 35), (18, 30)]
