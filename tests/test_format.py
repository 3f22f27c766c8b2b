"""The policy formatter: one canonical layout that keeps every token and comment, and `medpol fmt`.

The real policy is the house layout, so formatting it must change nothing; messy copies of
it (re-indented, spaced out, with blank lines and comments added) must format to a text
that is canonical, means the same (equal IR) and keeps every comment.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from medpol.cli.fmt import fmt_cmd
from medpol.dsl.diagnostics import PolicyError
from medpol.dsl.format import format_text
from medpol.dsl.lower import read

REPO = Path(__file__).resolve().parent.parent
POLICY = REPO / "policies" / "external-infusion-pump.policy"
TEXT = POLICY.read_text(encoding="utf-8")
LINES = TEXT.split("\n")[:-1]
PATH = "external-infusion-pump.policy"
REAL_IR = read(TEXT, PATH)

# A line's pieces, found without the parser: a passage, a comment, punctuation, the `-` of a
# code range, or a run of anything else (a `-` inside a date or a policy id stays in its word).
CHUNK = re.compile(r'"(?:[^"\\\n]|\\.)*"|#.*|[,:()]|-(?=[A-Z][0-9])|(?:[^\s,:()"#-]|-(?![A-Z][0-9]))+')


def comments(text: str) -> Counter:
    return Counter(c.rstrip() for line in text.split("\n") for c in CHUNK.findall(line) if c.startswith("#"))


def level(line: str) -> int:
    return (len(line) - len(line.lstrip(" "))) // 2


def is_code(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def next_code_level(index: int) -> int:
    for line in LINES[index:]:
        if is_code(line):
            return level(line)
    return 0


def assert_canonical(text: str) -> None:
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text and not text.startswith("\n")
    for line in text.split("\n"):
        assert line == line.rstrip(), repr(line)
        indent = len(line) - len(line.lstrip())
        assert line[:indent] == " " * indent and indent % 2 == 0, repr(line)


def fmt(text: str, meaning=None) -> str:
    """Format, and check what must hold of every formatting; `meaning` is the text's IR, if known."""
    out = format_text(text, PATH)
    assert format_text(out, PATH) == out
    assert read(out, PATH) == (meaning or read(text, PATH))
    assert comments(out) == comments(text)
    assert_canonical(out)
    return out


# ---------------------------------------------------------------- the real policy


def test_the_real_policy_is_already_formatted():
    assert format_text(TEXT, PATH) == TEXT


def messy(text: str) -> str:
    """The policy re-indented by four spaces, spaced out, with trailing spaces, blank lines, odd comments."""
    lines = text.split("\n")[:-1]
    out = ["", "   ", ""]
    for i, line in enumerate(lines):
        if not line.strip():
            out += ["", "      ", "", ""]
        elif line.lstrip().startswith("#"):
            out.append(" " * (level(line) * 4 + 3) + line.strip() + "  ")
        else:
            out.append("    " * level(line) + "   ".join(CHUNK.findall(line)) + "   ")
            following = next((x for x in lines[i + 1 :] if is_code(x)), "")
            if level(following) > level(line):
                out += ["", "     "]  # blank lines right after a line that opens a block
    out += ["", "  ", ""]
    return "\n".join(out)


def test_a_messy_copy_formats_back_to_the_real_policy():
    text = messy(TEXT)
    assert "    rule   misc.heparin   \n" in text and "D80.2   -   D80.7" in text and "(   vial" in text
    assert fmt(text) == TEXT


def test_formatting_is_only_whitespace():
    assert re.sub(r"\s+", "", fmt(messy(TEXT))) == re.sub(r"\s+", "", TEXT)


# ---------------------------------------------------------------- whitespace-only mutations

KINDS = ["spaces", "blank", "trailing", "comment", "odd_comment", "trailing_comment"]


@st.composite
def mutated(draw) -> tuple[str, bool]:
    """The real policy under random whitespace and comment edits; and whether only spacing changed."""
    unit = draw(st.sampled_from([" " * k for k in range(1, 9)] + ["\t"]))
    edits = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(LINES)),
                st.sampled_from(KINDS),
                st.integers(1, 4),
                st.integers(0, 1000),
            ),
            max_size=40,
        )
    )
    before: dict[int, list[str]] = {}
    pieces = {}  # line index -> [indent, chunk, separator, chunk, ..., trailing]
    for i, line in enumerate(LINES):
        if not line.strip():
            pieces[i] = [""]
            continue
        matches = list(CHUNK.finditer(line))
        parts = [unit * level(line)]
        for m, following in zip(matches, matches[1:] + [None], strict=True):
            parts.append(m.group())
            parts.append(line[m.end() : following.start()] if following else "")
        pieces[i] = parts
    for index, kind, amount, where in edits:
        at_code = index < len(LINES) and is_code(LINES[index])
        if kind == "blank":
            before.setdefault(index, []).extend(" " * (where % 5) for _ in range(amount))
        elif kind == "comment":
            indent = unit * next_code_level(index)
            before.setdefault(index, []).append(f"{indent}# note {index}.{where}")
        elif kind == "odd_comment":
            before.setdefault(index, []).append(" " * (where % 11) + f"#odd {where}  ")
        elif kind == "trailing" and index < len(LINES):
            pieces[index][-1] += " " * amount + "\t" * (where % 2)
        elif kind == "spaces" and at_code and len(pieces[index]) > 3:
            separators = range(2, len(pieces[index]) - 1, 2)  # between two chunks
            pieces[index][separators[where % len(separators)]] += " " * amount
        elif kind == "trailing_comment" and at_code:
            pieces[index][-1] += " " * amount + f"# trailing {where}"
    out = []
    for i in range(len(LINES) + 1):
        out.extend(before.get(i, []))
        if i < len(LINES):
            out.append("".join(pieces[i]))
    spacing_only = all(kind in ("spaces", "trailing") for _, kind, _, _ in edits)
    return "\n".join(out) + "\n", spacing_only


@settings(max_examples=100, deadline=None)
@given(mutated())
def test_whitespace_mutations_format_to_the_same_policy(case):
    text, spacing_only = case
    assert read(text, PATH) == REAL_IR  # the edits themselves kept the meaning
    out = fmt(text, REAL_IR)
    if spacing_only:
        assert out == TEXT


# ---------------------------------------------------------------- the layout rules

HEAD = 'medpol 1\n\npolicy p "P"\n  source "s.txt"\n'


def test_blank_lines_before_rules_never_right_after_a_block_opens():
    text = HEAD + 'section a "A"\n\n\n  rule a.x\n    cover E0776\n  rule a.y\n\n\n\n    cover E0776\n'
    want = HEAD + '\nsection a "A"\n  rule a.x\n    cover E0776\n\n  rule a.y\n    cover E0776\n'
    assert fmt(text) == want


def test_a_blank_line_before_each_top_level_item_but_tables_of_a_kind_may_be_grouped():
    text = (
        'medpol 1\npolicy p "P"\n  source "s.txt"\nfacts\n  a: bool\n'
        'codes x "X" = E0776\ncodes y "Y" = E0779\n\n\ncodes z "Z" = E0780\n'
        'diagnoses d "D" = G20\ndiagnoses e "E" = I50\n'
    )
    want = (
        'medpol 1\n\npolicy p "P"\n  source "s.txt"\n\nfacts\n  a: bool\n\n'
        'codes x "X" = E0776\ncodes y "Y" = E0779\n\ncodes z "Z" = E0780\n\n'
        'diagnoses d "D" = G20\ndiagnoses e "E" = I50\n'
    )
    assert fmt(text) == want


def test_comments_are_indented_like_the_next_line_and_stay_attached():
    text = (
        "      # the policy\n" + HEAD + '   # about section a\nsection a "A"   # the A section   \n'
        "# first\n  rule a.x\n    cover E0776\n      # about a.y\n  rule a.y\n    cover E0776\n"
        "\n\n    # the end\n\n"
    )
    want = (
        "# the policy\n" + HEAD + '\n# about section a\nsection a "A"  # the A section\n'
        "  # first\n  rule a.x\n    cover E0776\n\n  # about a.y\n  rule a.y\n    cover E0776\n"
        "\n# the end\n"
    )
    assert fmt(text) == want


def test_spacing_between_tokens():
    text = (
        HEAD + "facts\n  a : bool , per line , default false\n  n:int 1 to 4\n"
        'diagnoses d "D"\n  D80.2 - D80.7 ,D81.0\n'
        'drugs t "T"\n  blin   J9039 ( vial = 35 units )   effective 2026-01-25\n'
    )
    want = (
        HEAD + "\nfacts\n  a: bool, per line, default false\n  n: int 1 to 4\n\n"
        'diagnoses d "D"\n  D80.2-D80.7, D81.0\n\n'
        'drugs t "T"\n  blin J9039 (vial = 35 units) effective 2026-01-25\n'
    )
    assert fmt(text) == want


def test_continued_lines_are_joined_and_comments_inside_parentheses_kept():
    rule = 'section a "A"\n  rule a.x\n    cover E0776 when (a or\n        b) and \\\n      c\n'
    assert fmt(HEAD + rule).endswith("    cover E0776 when (a or b) and c\n")
    rule = 'section a "A"\n  rule a.x\n    cover E0776 when (a   # why a\n  # and b\n or b) and c\n'
    want = "    cover E0776 when (a  # why a\n        # and b\n        or b) and c\n"
    assert fmt(HEAD + rule).endswith(want)


def test_tokens_are_written_as_they_were():
    rule = 'section a "A"\n  rule a.x\n    "a \\"quoted\\" passage"\n    cover E0776 when x >= 0.50 percent\n'
    assert fmt(HEAD + rule) == HEAD + "\n" + rule


def test_tabs_and_windows_line_endings():
    text = HEAD.replace("  ", "\t") + 'section a "A"\n\trule a.x\n\t\tcover E0776\n'
    assert fmt(text.replace("\n", "\r\n")) == HEAD + '\nsection a "A"\n  rule a.x\n    cover E0776\n'


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (HEAD + 'section a "A"\n  rule a.x\n    cover E0776 when\n', "incomplete-line"),
        (HEAD + 'section a "A"\n  rule a.x\n      cover E0776\n    cover E0779\n', "bad-indent"),
        (HEAD + 'section a "A\n', "unterminated-string"),
    ],
)
def test_a_text_that_does_not_parse_raises_the_parsers_diagnostic(text, code):
    with pytest.raises(PolicyError) as caught:
        format_text(text, "bad.policy")
    assert [d.code for d in caught.value.diagnostics] == [code]
    assert caught.value.render().startswith("bad.policy:")


# ---------------------------------------------------------------- medpol fmt


def run(*args):
    return CliRunner().invoke(fmt_cmd, list(args), catch_exceptions=False)


def test_check_passes_on_the_real_policy():
    result = run("--check", str(POLICY), str(REPO / "policies"))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""


def test_check_prints_a_diff_and_changes_nothing(tmp_path):
    path = tmp_path / "messy.policy"
    path.write_text(messy(TEXT), encoding="utf-8")
    result = run("--check", str(path))
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- {path}\n+++ {path} (formatted)\n")
    assert "\n-    rule   misc.heparin   \n" in result.stdout and "\n+  rule misc.heparin\n" in result.stdout
    assert "1 file would be reformatted" in result.stderr
    assert path.read_text(encoding="utf-8") == messy(TEXT)


def test_fmt_rewrites_unformatted_files_in_folders(tmp_path):
    (tmp_path / "sub").mkdir()
    untidy = tmp_path / "sub" / "messy.policy"
    untidy.write_text(messy(TEXT), encoding="utf-8")
    tidy = tmp_path / "tidy.policy"
    tidy.write_text(TEXT, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a policy")
    result = run(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"reformatted {untidy}"
    assert untidy.read_text(encoding="utf-8") == TEXT
    assert tidy.read_text(encoding="utf-8") == TEXT
    assert run("--check", str(tmp_path)).exit_code == 0


def test_a_syntax_error_prints_the_diagnostic_and_exits_1(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text(HEAD + 'section a "A"\n  rule a.x\n    cover E0776 when\n', encoding="utf-8")
    good = tmp_path / "good.policy"
    good.write_text(messy(TEXT), encoding="utf-8")
    result = run(str(bad), str(good))
    assert result.exit_code == 1
    assert f"{bad}:7:21: error[incomplete-line]" in result.stderr
    assert good.read_text(encoding="utf-8") == TEXT  # the other files are still formatted
    assert run("--check", str(bad)).exit_code == 1


def test_a_missing_path_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(fmt_cmd, [str(tmp_path / "missing.policy")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_the_words_of_one_of_values_keep_their_place():
    text = (
        'policy demo "Demo"\n  revision 1 dated 2026-01-01 effective 2026-01-01\n\nfacts\n'
        '  setting: one of  relapsed "relapsed or refractory" ,mrd   "in remission" , per line\n'
    )
    expected = '  setting: one of relapsed "relapsed or refractory", mrd "in remission", per line'
    assert format_text(text).splitlines()[-1] == expected
