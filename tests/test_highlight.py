"""The Pygments lexer for policies: registered for ```policy blocks, and without an error
token on any example of the language reference, the tutorial or the encoded policies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments")

from pygments.lexers import get_lexer_by_name, get_lexer_for_filename  # noqa: E402
from pygments.token import Comment, Error, Keyword, Literal, Name, String  # noqa: E402

from medpol.publish.highlight import PolicyLexer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "site" / "docs"
FENCE = re.compile(r"^```policy[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            found.append((f"{page.name}:{text[: match.start()].count(chr(10)) + 1}", match.group(1)))
    return found


BLOCKS = _blocks()


def test_the_lexer_is_the_pygments_plugin_for_policy_blocks_and_files():
    assert isinstance(get_lexer_by_name("policy"), PolicyLexer)
    assert isinstance(get_lexer_by_name("medpol"), PolicyLexer)
    assert isinstance(get_lexer_for_filename("glucose-monitors.policy"), PolicyLexer)


def test_the_language_reference_has_policy_blocks():
    assert sum(1 for where, _ in BLOCKS if where.startswith("language.md")) >= 30


@pytest.mark.parametrize("where,block", BLOCKS, ids=[where for where, _ in BLOCKS])
def test_every_policy_example_of_the_docs_highlights_without_error_tokens(where: str, block: str):
    errors = [value for token, value in PolicyLexer().get_tokens(block) if token in Error]
    assert errors == [], f"{where}: {errors}"


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.policy")), ids=lambda p: p.name)
def test_every_encoded_policy_highlights_without_error_tokens(path: Path):
    text = path.read_text(encoding="utf-8")
    tokens = list(PolicyLexer().get_tokens(text))
    assert [value for token, value in tokens if token in Error] == []
    assert "".join(value for _, value in tokens) == (text if text.endswith("\n") else text + "\n")


def test_keywords_passages_dates_codes_and_comments_are_told_apart():
    text = (
        "# a comment\n"
        "item 3 cd19_ph_negative effective 2026-01-25\n"
        '  "Effective 1-25-26 ... \\"added\\""\n'
        "  cover blinatumomab, J9039 when diagnosis in b_all\n"
        "  rule limits.strips_usual\n"
    )
    tokens = [(token, value) for token, value in PolicyLexer().get_tokens(text) if value.strip()]
    assert (Comment.Single, "# a comment") in tokens
    assert (Literal.Date, "2026-01-25") in tokens
    assert (Name.Constant, "J9039") in tokens
    assert (Keyword, "effective") in tokens and (Keyword, "when") in tokens
    assert (String.Interpol, "...") in tokens and (String.Escape, '\\"') in tokens
    assert (Name, "limits.strips_usual") in tokens and (Name, "cd19_ph_negative") in tokens
    assert all(token in String for token, value in tokens if "Effective" in value)


def test_the_vscode_grammar_colours_the_words_the_lexer_does():
    import json

    from medpol.publish.highlight import CONSTANTS, KEYWORDS, TYPES, UNITS

    grammar = json.loads((ROOT / "editors" / "vscode" / "syntaxes" / "medpol.tmLanguage.json").read_text())
    rules = grammar["repository"]
    for name, wanted in (("keyword", KEYWORDS), ("type", TYPES), ("constant", CONSTANTS), ("unit", UNITS)):
        pattern = re.compile(rules[name]["match"])
        assert all(pattern.fullmatch(word) for word in wanted), name
        assert not pattern.fullmatch("bgm.e0607")
    assert re.compile(rules["date"]["match"]).fullmatch("2026-01-25")
    assert re.compile(rules["code"]["match"]).fullmatch("C91.0")
    assert re.compile(rules["comment"]["match"]).match("# a comment")
    assert {p["include"] for p in grammar["patterns"]} == {f"#{name}" for name in rules}


def test_every_word_of_the_grammar_is_coloured():
    """The grammar is where a keyword is born: the lexer must know each of its words."""
    import re

    from medpol.publish.highlight import CONSTANTS, KEYWORDS, TYPES, UNITS

    grammar = re.sub(r"//.*", "", (ROOT / "dsl" / "policy.lark").read_text(encoding="utf-8"))
    words = set(re.findall(r'"([A-Za-z_]+)"', grammar))
    assert len(words) > 40
    assert words - set(KEYWORDS) - set(TYPES) - set(CONSTANTS) - set(UNITS) == set()
