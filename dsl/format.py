"""Rewrite a policy in the one canonical layout, keeping every token and every comment.

The formatter works on the parser's own token stream, so it can only move whitespace:
the tokens it writes are the tokens it read, in the same order, and it checks that the
text it returns lexes back to them. The canonical layout:

- two spaces per block level; a line's tokens are separated by one space, except none
  before `,` `:` `)`, none after `(` and none around the `-` of a range `D80.2-D80.7` (arithmetic is spaced);
  a line inside parentheses is joined to the line it continues;
- no trailing whitespace; the file ends with exactly one newline;
- a comment on its own line is indented like the line that follows it; a comment after
  code stays on that line, two spaces after it;
- runs of blank lines become one; there is no blank line at the top of the file, nor
  right after a line that opens a block;
- exactly one blank line goes before each top-level item (`policy`, `precedence`, `facts`,
  `codes`, `diagnoses`, `drugs`, `criteria`, `section`, `change history`) and before each
  `rule` and nested `section`, above the comments written directly on top of it, except
  as the first line of a block; a table (`codes`, `diagnoses`, `drugs`) that follows a
  table of the same kind may be grouped with it, so there the author's blank line (or
  its absence) is kept;
- elsewhere a single blank line the author wrote is kept.
"""

from __future__ import annotations

import functools

import attrs
from lark import Lark, Token
from lark import __version__ as lark_version
from lark.exceptions import LarkError

from medpol.dsl.cache import cache_file
from medpol.dsl.parser import BadIndent, _parser, _PolicyIndenter, parse

INDENT = "  "
# A line broken inside parentheses (only to keep a comment there) goes on deeper than its block.
CONTINUATION = INDENT * 2

# Not a parser terminal: a line break inside parentheses, which the indenter hides from the parser.
_PAREN_NL = "_PAREN_NL"
_LAYOUT = {"_NL", "_INDENT", "_DEDENT", _PAREN_NL}

_TOP_LEVEL = {"POLICY", "PRECEDENCE", "FACTS", "CODES", "DIAGNOSES", "DRUGS", "CRITERIA", "SECTION", "CHANGE"}
_TABLES = {"CODES", "DIAGNOSES", "DRUGS"}
_NESTED = {"RULE", "SECTION"}


class _Recorder(_PolicyIndenter):
    """The parser's indenter, also keeping the tokens it passes on and the line breaks it hides."""

    tokens: list[Token]

    def process(self, stream):
        self.tokens = []
        for tok in super().process(stream):
            self.tokens.append(tok)
            yield tok

    def handle_NL(self, token):
        if self.paren_level > 0:
            # The parser never sees this line break, but it may carry comments.
            self.tokens.append(Token.new_borrow_pos(_PAREN_NL, token, token))
            return
        yield from super().handle_NL(token)


@functools.cache
def _recording_parser() -> tuple[Lark, _Recorder]:
    base = _parser()
    recorder = _Recorder()
    # The parser's grammar and options, so the formatter lexes every text exactly as the parser does;
    # the tree is thrown away, so its nodes need no positions.
    options = {**base.options.options, "postlex": recorder, "propagate_positions": False}
    cache = cache_file(f"format-grammar-lark-{lark_version}.cache")
    options["cache"] = str(cache) if cache is not None else False  # its own: the options differ
    lark = Lark(base.source_grammar, **options)
    return lark, recorder


def _tokens(text: str, path: str) -> list[Token]:
    lark, recorder = _recording_parser()
    try:
        lark.parse(text)
    except (LarkError, BadIndent):
        parse(text, path)  # raises PolicyError with the parser's own diagnostic
        raise
    return recorder.tokens


def _split_newline(value: str) -> tuple[str | None, list[str | None]]:
    """A newline token's comment on the line it ends, then its lines: None for a blank line, else a comment."""
    parts = value.split("\n")
    # The last part is the next line's indentation, which the block structure already records.
    lines = [part.strip() or None for part in parts[1:-1]]
    return parts[0].strip() or None, lines


@attrs.define
class _Line:
    depth: int
    gap: list[str | None]  # the blank lines and comment lines above it
    tokens: list[Token] = attrs.Factory(list)
    comment: str | None = None

    @property
    def kind(self) -> str:
        return self.tokens[0].type


def _lines(tokens: list[Token]) -> tuple[list[_Line], list[str | None]]:
    """The code lines, each with the gap above it, and the gap after the last one."""
    lines: list[_Line] = []
    gap: list[str | None] = []
    current: _Line | None = None
    depth = 0
    for tok in tokens:
        if tok.type == "_NL":
            trailing, between = _split_newline(tok)
            if current is not None:
                current.comment = trailing
                lines.append(current)
                current = None
            elif trailing:
                gap.append(trailing)  # the file starts with a comment
            gap.extend(between)
        elif tok.type == "_INDENT":
            depth += 1
        elif tok.type == "_DEDENT":
            depth -= 1
        else:
            if current is None:
                current, gap = _Line(depth, gap), []
            current.tokens.append(tok)
    if current is not None:
        lines.append(current)
    return lines, gap


def _spaced(before: Token, after: Token) -> bool:
    if after.type in ("COMMA", "COLON", "RPAR") or before.type == "LPAR":
        return False
    # A range `D80.2-D80.7` is written tight; arithmetic `supply_end_date - 10 days` is spaced.
    if after.type == "MINUS":
        return before.type != "CODE"
    if before.type == "MINUS":
        return after.type != "CODE"
    return True


def _render(line: _Line) -> list[str]:
    indent = INDENT * line.depth
    out: list[str] = []
    text = indent
    previous: Token | None = None
    for tok in line.tokens:
        if tok.type == _PAREN_NL:
            trailing, between = _split_newline(tok)
            comments = [c for c in between if c]
            if trailing is None and not comments:
                continue
            if trailing:
                text += "  " + trailing
            out.append(text)
            out.extend(indent + CONTINUATION + c for c in comments)
            text, previous = indent + CONTINUATION, None
            continue
        if previous is not None and _spaced(previous, tok):
            text += " "
        text += tok.value
        previous = tok
    if line.comment:
        text += "  " + line.comment
    out.append(text)
    return out


def _collapse(gap: list[str | None]) -> list[str | None]:
    out: list[str | None] = []
    for item in gap:
        if item is None and out and out[-1] is None:
            continue
        out.append(item)
    return out


def _wants_blank(line: _Line, previous_top: str | None) -> bool:
    if line.depth > 0:
        return line.kind in _NESTED
    if line.kind in _TABLES and line.kind == previous_top:
        return False
    return line.kind in _TOP_LEVEL


def _layout(lines: list[_Line], end_gap: list[str | None]) -> str:
    out: list[str] = []
    previous: _Line | None = None
    previous_top: str | None = None
    for line in lines:
        gap = _collapse(line.gap)
        if previous is None or line.depth > previous.depth:
            while gap and gap[0] is None:
                gap.pop(0)
        elif _wants_blank(line, previous_top):
            # The blank line goes above the comments written directly on top of the item.
            attached = len(gap)
            while attached and gap[attached - 1] is not None:
                attached -= 1
            if attached == 0:
                gap.insert(0, None)
        indent = INDENT * line.depth
        out.extend(indent + item if item else "" for item in gap)
        out.extend(_render(line))
        previous = line
        if line.depth == 0:
            previous_top = line.kind
    gap = _collapse(end_gap)
    while gap and gap[-1] is None:
        gap.pop()
    out.extend(item or "" for item in gap)
    return "\n".join(out) + "\n"


def _signature(tokens: list[Token]) -> tuple[list[tuple[str, str]], list[str]]:
    """What formatting must keep: the tokens the parser sees, and the comments in order."""
    seen = [(t.type, "" if t.type in _LAYOUT else str(t)) for t in tokens if t.type != _PAREN_NL]
    if seen and seen[0][0] == "_NL":
        seen.pop(0)  # blank lines at the top of the file
    comments: list[str] = []
    for t in tokens:
        if t.type in ("_NL", _PAREN_NL):
            trailing, between = _split_newline(t)
            comments.extend(c for c in [trailing, *between] if c)
    return seen, comments


def format_text(text: str, path: str = "<policy>") -> str:
    """The policy's text in the canonical layout; raise PolicyError if it does not parse."""
    if not text.endswith("\n"):
        text += "\n"
    tokens = _tokens(text, path)
    formatted = _layout(*_lines(tokens))
    if formatted != text and _signature(_tokens(formatted, path)) != _signature(tokens):
        raise AssertionError(f"{path}: formatting would change the policy's tokens or comments (a formatter bug)")
    return formatted
