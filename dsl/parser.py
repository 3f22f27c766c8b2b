"""Parse policy text into a lark tree, turning lark's errors into diagnostics."""

from __future__ import annotations

import functools

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from dsl.diagnostics import Diagnostic, PolicyError


class BadIndent(Exception):
    def __init__(self, token: Token):
        self.token = token


class _PolicyIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    def handle_NL(self, token):
        # lark raises a bare DedentError without a position; keep the token so the
        # diagnostic can point at the offending line.
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        indent = indent_str.count(" ") + indent_str.count("\t") * self.tab_len
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield Token.new_borrow_pos(self.INDENT_type, indent_str, token)
        else:
            while indent < self.indent_level[-1]:
                self.indent_level.pop()
                yield Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
            if indent != self.indent_level[-1]:
                raise BadIndent(token)


@functools.cache
def _parser() -> Lark:
    return Lark.open_from_package(
        "dsl",
        "policy.lark",
        parser="lalr",
        postlex=_PolicyIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
    )


# Words for lark's terminal names, so an error says what a reader would call them.
_TERMINAL_WORDS = {
    "ID": "a name",
    "CODE": "a code such as `E0781` or `C91.0`",
    "STRING": 'a quoted passage such as `"..."`',
    "NUMBER": "a number",
    "DATE": "a date such as `2026-01-25`",
    "COMPARATOR": "a comparison such as `>=`",
    "UNIT": "a unit such as `hours`",
    "_NL": "the end of the line",
    "_INDENT": "an indented block",
    "_DEDENT": "the end of the block",
    "POLICY_ID": "a policy id such as `external-infusion-pump`",
    "SECTION_ID": "a section id such as `J`",
    "REVISION": "a revision number",
    "LABEL": "an item label such as `1` or `a`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "EQUAL": "`=`",
    "MINUS": "`-`",
    "$END": "the end of the file",
}


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    pattern = _parser().get_terminal(terminal).pattern
    if pattern.type == "str":
        return f"`{pattern.value}`"
    return terminal.lower()


def _expected(names) -> str:
    words = sorted({_describe(n) for n in names})
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _token_text(token: Token) -> str:
    if token.type == "_NL":
        return "the end of the line"
    if token.type == "_INDENT":
        return "an indented line"
    if token.type == "_DEDENT":
        return "the end of the block"
    if token.type == "$END":
        return "the end of the file"
    return f"`{token}`"


def _diagnose(err: UnexpectedInput, path: str, text: str) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
        if char and not char.isprintable():
            char = repr(char)[1:-1]  # an invisible character, shown by its escape
        if char == '"':
            return Diagnostic(
                path,
                err.line,
                err.column,
                "unterminated-string",
                "this passage has no closing quote",
                help='a passage is one line: `"..."`; escape a quote inside it as `\\"`',
            )
        if char in "'\u201c\u201d":
            return Diagnostic(
                path,
                err.line,
                err.column,
                "wrong-quote",
                f"passages are quoted with straight double quotes, not `{char}`",
            )
        if char == "\t":
            return Diagnostic(path, err.line, err.column, "syntax-error", "unexpected tab")
        return Diagnostic(
            path,
            err.line,
            err.column,
            "unexpected-character",
            f"unexpected character `{char}`",
            help=f"expected {_expected(err.allowed)}" if err.allowed else None,
        )
    if isinstance(err, UnexpectedToken):
        tok = err.token
        line = tok.line if tok.line is not None else err.line
        column = tok.column if tok.column is not None else err.column
        expected = err.accepts or err.expected
        if tok.type == "_INDENT":
            # The indent token carries the position of the newline before it.
            line = tok.end_line or line
            return Diagnostic(
                path,
                line,
                1,
                "unexpected-indent",
                "this line is indented more than the block it belongs to",
                width=len(tok.value) or 1,
            )
        if tok.type == "_NL" or tok.type == "_DEDENT":
            # The line ended (or the block closed) before the statement was complete.
            # Point just past the last real token of the line.
            last = _last_token_before(text, tok)
            return Diagnostic(
                path, last[0], last[1], "incomplete-line", f"this line ends too early: expected {_expected(expected)}"
            )
        if tok.type == "$END":
            lines = text.rstrip("\n").splitlines() or [""]
            return Diagnostic(
                path,
                len(lines),
                len(lines[-1]) + 1,
                "unexpected-end",
                f"the file ends too early: expected {_expected(expected)}",
            )
        width = max(1, len(str(tok)))
        return Diagnostic(
            path,
            line,
            column,
            "unexpected-token",
            f"unexpected {_token_text(tok)}: expected {_expected(expected)}",
            width=width,
        )
    if isinstance(err, UnexpectedEOF):
        lines = text.rstrip("\n").splitlines() or [""]
        return Diagnostic(
            path,
            len(lines),
            len(lines[-1]) + 1,
            "unexpected-end",
            f"the file ends too early: expected {_expected(err.expected)}",
        )
    return Diagnostic(
        path, getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1, "syntax-error", str(err).splitlines()[0]
    )


def _last_token_before(text: str, tok: Token) -> tuple[int, int]:
    """The line and column just past the last character before a newline token."""
    pos = tok.start_pos if tok.start_pos is not None else len(text)
    before = text[:pos].rstrip(" \t")
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    return line, column


def _tab_indent(path: str, line: int) -> Diagnostic:
    # A tab counts as eight spaces, so a tab-indented line rarely lines up with its block.
    return Diagnostic(
        path,
        line,
        1,
        "tab-indent",
        "this line is indented with a tab",
        help="indent with spaces, two per level",
    )


def _first_tab_indent(text: str, upto: int) -> int | None:
    """The first line up to `upto` whose indentation holds a tab, if any."""
    for number, line in enumerate(text.split("\n")[:upto], 1):
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#") and "\t" in line[: len(line) - len(stripped)]:
            return number
    return None


def parse(text: str, path: str = "<policy>") -> Tree:
    """Parse a policy's text; raise PolicyError with a diagnostic for a syntax error."""
    if not text.endswith("\n"):
        text += "\n"
    try:
        return _parser().parse(text)
    except UnexpectedInput as err:
        found = _diagnose(err, path, text)
        tabbed = _first_tab_indent(text, found.line) if found.code == "unexpected-indent" else None
        if tabbed is not None:
            found = _tab_indent(path, tabbed)
        raise PolicyError([found], {path: text}) from None
    except BadIndent as err:
        tok = err.token
        line = tok.end_line or tok.line or 1
        tabbed = _first_tab_indent(text, line)
        if tabbed is not None:
            raise PolicyError([_tab_indent(path, tabbed)], {path: text}) from None
        raise PolicyError(
            [
                Diagnostic(
                    path,
                    line,
                    1,
                    "bad-indent",
                    "this line's indentation matches no enclosing block",
                    help="indent a block's lines alike, deeper than the line that opens it",
                )
            ],
            {path: text},
        ) from None
