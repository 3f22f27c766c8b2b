"""Fuzz `check_text` with damaged copies of the real policies: it must report, never raise.

Hypothesis applies a few random edits to each policy in `policies/` (delete a
span, duplicate, swap or re-indent a line, insert a keyword, punctuation, a quote, a tab or a
non-ASCII character, truncate the file) and checks that every result is a list of
diagnostics with real positions that render.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpol.api import check_text
from medpol.dsl.diagnostics import Diagnostic

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "policies" / "external-infusion-pump.policy"
TEXT = POLICY.read_text(encoding="utf-8")
GLUCOSE = REPO / "policies" / "glucose-monitors.policy"
GLUCOSE_TEXT = GLUCOSE.read_text(encoding="utf-8")

# Words, punctuation and characters that a damaged policy plausibly contains.
TOKENS = [
    # keywords of the language
    "medpol",
    "policy",
    "source",
    "revision",
    "dated",
    "effective",
    "until",
    "prepared",
    "approved",
    "reviewed",
    "description",
    "facts",
    "codes",
    "diagnoses",
    "drugs",
    "criteria",
    "section",
    "rule",
    "item",
    "require",
    "precedence",
    "change",
    "history",
    "cover",
    "deny",
    "refer",
    "limit",
    "otherwise",
    "administer",
    "follow",
    "the",
    "pump",
    "else",
    "show",
    "as",
    "to",
    "when",
    "unless",
    "all",
    "any",
    "none",
    "at",
    "least",
    "of",
    "and",
    "or",
    "not",
    "is",
    "in",
    "diagnosis",
    "billed",
    "with",
    "other",
    "than",
    "except",
    "has",
    "modifier",
    "within",
    "before",
    "lines",
    "units",
    "vials",
    "days",
    "per",
    "calendar",
    "month",
    "line",
    "default",
    "bool",
    "int",
    "number",
    "date",
    "code",
    "one",
    "true",
    "false",
    "vial",
    "reasonable",
    "necessary",
    "incorrect",
    "coding",
    "covered",
    "hours",
    "mmHg",
    "mg/dl",
    "percent",
    "each",
    "excess",
    "denied",
    "earlier",
    "after",
    "quarter",
    "year",
    "months",
    "service_date",
    "+",
    "*",
    "/",
    "or none",
    # literals
    "0",
    "3",
    "99999999999999999999",
    "1.5",
    "2026-01-25",
    "2026-02-30",
    "0000-00-00",
    "E0776",
    "E078",
    "C99.99",
    "Z",
    "A1.",
    '""',
    '"..."',
    "age",
    "drugs",
    # punctuation
    ":",
    ",",
    "(",
    ")",
    "((",
    "))",
    "=",
    "-",
    ">=",
    "<",
    "==",
    "!=",
    "#",
    ".",
    "..",
    "\\",
    "\\\n",
    # quotes
    '"',
    "'",
    "\u201c",
    "\u201d",
    "\u2019",
    # whitespace
    "\t",
    "\n",
    "\r\n",
    "\r",
    "  ",
    "\n\n",
    "\u00a0",
    "\u2028",
    "\ufeff",
    "\x00",
    "\x0c",
    # other unicode
    "\u00e9",
    "\u2013",
    "\u2026",
    "\U0001f489",
    "\u0301",
]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


@st.composite
def _delete_span(draw, text: str) -> str:
    start = draw(st.integers(0, len(text)))
    length = draw(st.integers(1, 120))
    return text[:start] + text[start + length :]


@st.composite
def _duplicate_line(draw, text: str) -> str:
    lines = _lines(text)
    if not lines:
        return text
    i = draw(st.integers(0, len(lines) - 1))
    line = lines[i] if lines[i].endswith("\n") else lines[i] + "\n"
    return "".join(lines[: i + 1] + [line] + lines[i + 1 :])


@st.composite
def _swap_lines(draw, text: str) -> str:
    lines = _lines(text)
    if len(lines) < 2:
        return text
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    lines = [line if line.endswith("\n") else line + "\n" for line in lines]
    lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


@st.composite
def _insert_token(draw, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    token = draw(st.sampled_from(TOKENS))
    space = draw(st.sampled_from(["", " "]))
    return text[:at] + space + token + space + text[at:]


@st.composite
def _reindent_line(draw, text: str) -> str:
    lines = _lines(text)
    if not lines:
        return text
    i = draw(st.integers(0, len(lines) - 1))
    indent = draw(st.sampled_from(["", " ", "  ", "   ", "    ", "     ", "      ", "        ", "\t", "  \t", "\t  "]))
    lines[i] = indent + lines[i].lstrip(" \t")
    return "".join(lines)


@st.composite
def _truncate(draw, text: str) -> str:
    return text[: draw(st.integers(0, len(text)))]


MUTATIONS = [_delete_span, _duplicate_line, _swap_lines, _insert_token, _reindent_line, _truncate]


@st.composite
def damaged_policies(draw, text: str = TEXT) -> str:
    for _ in range(draw(st.integers(1, 3))):
        mutation = draw(st.sampled_from(MUTATIONS))
        text = draw(mutation(text))
    return text


def _assert_well_formed(diagnostics, text: str) -> None:
    assert isinstance(diagnostics, list)
    for d in diagnostics:
        assert isinstance(d, Diagnostic), repr(d)
        assert isinstance(d.line, int) and d.line >= 1, d
        assert isinstance(d.column, int) and d.column >= 1, d
        assert d.severity in ("error", "warning"), d
        rendered = d.render(text)
        assert isinstance(rendered, str)
        assert rendered.startswith(f"{d.path}:{d.line}:{d.column}: {d.severity}[{d.code}]: "), rendered


def test_unmutated_policy_has_no_errors() -> None:
    diagnostics = check_text(TEXT, str(POLICY))
    _assert_well_formed(diagnostics, TEXT)
    errors = [d.render(TEXT) for d in diagnostics if d.severity == "error"]
    assert errors == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_policies())
def test_check_text_never_raises_on_damaged_policy(text: str) -> None:
    diagnostics = check_text(text, str(POLICY))
    _assert_well_formed(diagnostics, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_policies(GLUCOSE_TEXT))
def test_check_text_never_raises_on_damaged_glucose_policy(text: str) -> None:
    """Limits, dates, arithmetic and look-backs damaged at random are reported, never raised."""
    diagnostics = check_text(text, str(GLUCOSE))
    _assert_well_formed(diagnostics, text)


# Inputs the random edits above are unlikely to reach, found while fuzzing around them:
# each is a policy `check_text` must report on without raising.
_HEADER = 'policy demo "Demo"\n  revision 1 dated 2025-12-15 effective 2026-01-25\n'
HOSTILE = {
    # `open()` raises ValueError, not OSError, for a path with a NUL byte.
    "nul-in-source-name": 'policy demo "Demo"\n  source "a\x00b"\n',
    # The source document exists but is not UTF-8 (see `binary.txt` below).
    "source-not-utf8": 'policy demo "Demo"\n  source "binary.txt"\n',
    # int() refuses more than 4300 digits (sys.get_int_max_str_digits()).
    "huge-language-number": "medpol " + "1" * 4301 + "\n" + _HEADER,
    "huge-at-least-count": _HEADER
    + '\nsection s "S"\n  rule s.r\n    cover E0776 when at least '
    + "1" * 4301
    + " of\n      age >= 18 years\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_check_text_never_raises_on_hostile_input(name: str, tmp_path: Path) -> None:
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe not utf-8 \x80")
    text = HOSTILE[name]
    diagnostics = check_text(text, str(tmp_path / "demo.policy"))
    _assert_well_formed(diagnostics, text)
