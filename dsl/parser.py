"""Parse policy text into a lark tree, turning lark's errors into diagnostics."""

from __future__ import annotations

import functools
import re
from copy import copy

import attrs
from lark import Lark, Token, Tree
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.indenter import Indenter

from medpol.dsl.cache import cache_file
from medpol.dsl.diagnostics import Diagnostic, PolicyError


class BadIndent(Exception):
    def __init__(self, token: Token):
        self.token = token


@attrs.frozen
class _Checkpoint:
    """The parse just before a line break: enough to parse the rest of a changed text from there.

    The parser's state stack and the open blocks' indentation decide everything after this
    point; the values on the parser's stack (partial trees) never do, so they are not kept.
    """

    states: tuple
    pos: int
    line: int
    column: int
    levels: tuple[int, ...]


@attrs.define
class _Resume:
    """Where a parse starts, and where it notes a checkpoint at each line break."""

    levels: list[int]
    parser_state: object
    checkpoints: dict[int, _Checkpoint]


class _PolicyIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 8

    # Set while `parse` runs: where to start (a checkpoint, when recovering from an error), and
    # where to note the checkpoints passed.
    resume: _Resume | None = None

    def process(self, stream):
        if self.resume is None:
            return super().process(stream)
        self.paren_level = 0
        self.indent_level = list(self.resume.levels)
        return self._process(stream)

    def handle_NL(self, token):
        # lark raises a bare DedentError without a position; keep the token so the
        # diagnostic can point at the offending line.
        if self.paren_level > 0:
            return
        if self.resume is not None:
            # The parser has taken every token before this line break and none after it.
            self.resume.checkpoints[token.end_line] = _Checkpoint(
                tuple(self.resume.parser_state.state_stack),
                token.start_pos,
                token.line,
                token.column,
                tuple(self.indent_level),
            )
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
    # Building the LALR tables takes most of a second, at the start of every command: lark
    # keeps them in a cache file, checked against a digest of the grammar, its options and
    # lark's version, and rebuilds them when it does not match or cannot be read.
    cache = cache_file(f"policy-grammar-lark-{lark_version}.cache")
    return Lark.open_from_package(
        "medpol.dsl",
        "policy.lark",
        parser="lalr",
        postlex=_PolicyIndenter(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=str(cache) if cache is not None else False,
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


def _first_tab_indent(text: str, upto: int, after: int = 0) -> int | None:
    """The first line after `after` and up to `upto` whose indentation holds a tab, if any."""
    for number, line in enumerate(text.split("\n")[:upto], 1):
        if number <= after:
            continue
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#") and "\t" in line[: len(line) - len(stripped)]:
            return number
    return None


def _syntax_error(err: UnexpectedInput | BadIndent, path: str, text: str, after: int = 0) -> Diagnostic:
    """The diagnostic for a parse failure; `after` is the last line already accounted for."""
    if isinstance(err, BadIndent):
        tok = err.token
        line = tok.end_line or tok.line or 1
        tabbed = _first_tab_indent(text, line, after)
        if tabbed is not None:
            return _tab_indent(path, tabbed)
        return Diagnostic(
            path,
            line,
            1,
            "bad-indent",
            "this line's indentation matches no enclosing block",
            help="indent a block's lines alike, deeper than the line that opens it",
        )
    found = _diagnose(err, path, text)
    tabbed = _first_tab_indent(text, found.line, after) if found.code == "unexpected-indent" else None
    return _tab_indent(path, tabbed) if tabbed is not None else found


def parse(text: str, path: str = "<policy>") -> Tree:
    """Parse a policy's text; raise PolicyError with a diagnostic for every syntax error."""
    if not text.endswith("\n"):
        text += "\n"
    # The checkpoints the parse passes let recovery re-parse from near each error, not from the start.
    checkpoints: dict[int, _Checkpoint] = {}
    try:
        return _run(text, None, checkpoints, tree=True)
    except (UnexpectedInput, BadIndent) as err:
        failed = err
    raise PolicyError(_Recovery(text, path, checkpoints).run(failed), {path: text}) from None


# ---------------------------------------------------------------- error recovery
#
# After a syntax error, the statement that failed (its line, and the lines indented under it)
# is blanked out and the text parsed again, to find the next error. Blanking keeps every
# line and column where it was, so each later error is reported at its place in the file.
#
# Blanking a statement can leave its enclosing block empty or incomplete (a `facts` block
# with no fact left, a `when` with no condition), and the parser then fails right where the
# statement was. Such a failure is not the author's mistake: the blanked region grows to the
# enclosing statement instead, until the parse gets past the gap. A misindented line is
# reindented rather than blanked (blanking it would leave the lines it opens to fail in its
# place), and the `policy` header, which nothing can stand in for, is finished with the
# tokens the parser wants rather than blanked. Only the layout is used to find statements
# and blocks (indentation, brackets, line continuations), and only the parser's own tables to
# finish a line, never the grammar's rules, so recovery keeps working as the language grows.
#
# Each parse after the first starts from the checkpoint the first one noted just before the
# blanked region, so a file with many errors costs little more than one parse.

_MAX_ERRORS = 50
_MAX_ATTEMPTS = 500

# Where the next failure falls, relative to a blanked region and the line that follows it.
_GAP = "gap"  # at the gap itself: a consequence of the blanking
_SIBLING = "sibling"  # on the first token of the next statement of the same block
_OUTER = "outer"  # on the first token of the next statement, in an enclosing block
_LATER = "later"  # past that token

# Failures at a line break: the statement ended before it was complete.
_ENDS_EARLY = {("token", "_NL"), ("token", "_DEDENT")}
# Failures for a line's indentation.
_MISINDENTED = {("token", "_INDENT"), ("bad-indent", "")}

# What checking the statements after a blanked one can conclude, besides a next failure.
_DONE = "done"  # the rest of the file parses
_GROW = "grow"  # their errors are reported; blank their enclosing block and go on
_FAILED = "failed"  # a repair that did not work


class _Layout:
    """The text's lines as the indenter sees them: indentation, code or not, continuation or not."""

    def __init__(self, text: str):
        self.lines = text.split("\n")
        count = len(self.lines)
        # One-based, like the parser's line numbers; index 0 is unused.
        self.lead = [0] * (count + 1)  # characters of indentation
        self.indent = [0] * (count + 1)  # indentation as the indenter measures it
        self.code = [False] * (count + 1)  # holds a token, not just blanks or a comment
        self.continued = [False] * (count + 1)  # goes on a statement begun on an earlier line
        depth, joined = 0, False
        for number, line in enumerate(self.lines, 1):
            body = line.lstrip(" \t")
            lead = line[: len(line) - len(body)]
            self.lead[number] = len(lead)
            self.indent[number] = lead.count(" ") + lead.count("\t") * _PolicyIndenter.tab_len
            self.code[number] = bool(body.strip(" \t\r")) and not body.startswith("#")
            self.continued[number] = depth > 0 or joined
            depth, joined = _brackets(body, depth)

    def start(self, line: int) -> int:
        """The first line of the statement that `line` belongs to."""
        while line > 1 and self.continued[line]:
            line -= 1
        return line

    def end(self, start: int, after: int) -> int:
        """The last line of the block that `start` opens, looking from line `after` on."""
        line = after + 1
        while line < len(self.code) and not (self.code[line] and self.indent[line] <= self.indent[start]):
            line += 1
        return line - 1

    def line_end(self, start: int) -> int:
        """The last line of the statement that begins on line `start`, children aside."""
        line = start
        while line + 1 < len(self.continued) and self.continued[line + 1]:
            line += 1
        return line

    def previous_code(self, before: int) -> int | None:
        for line in range(before - 1, 0, -1):
            if self.code[line]:
                return line
        return None

    def next_code(self, after: int) -> int | None:
        for line in range(after + 1, len(self.code)):
            if self.code[line]:
                return line
        return None

    def parent(self, start: int) -> int | None:
        """The line that opens the block `start` sits in; None at the top level."""
        for line in range(start - 1, 0, -1):
            if self.code[line] and not self.continued[line] and self.indent[line] < self.indent[start]:
                return line
        return None

    def first_column(self, line: int) -> int:
        return self.lead[line] + 1 if 0 < line < len(self.lead) else 1

    def blank(self, start: int, end: int, column: int = 1) -> str:
        """The text with lines `start` to `end` turned to spaces, the first from `column` on."""
        lines = list(self.lines)
        for index in range(start - 1, end):
            keep = lines[index][: column - 1] if index == start - 1 else ""
            lines[index] = keep + " " * (len(lines[index]) - len(keep))
        return "\n".join(lines)

    def emptied(self, start: int) -> bool:
        """Whether blanking from `start` to the end of its block leaves the enclosing block empty."""
        parent = self.parent(start)
        return parent is not None and not any(self.code[parent + 1 : start])

    def place(self, point: tuple[int, int] | None, start: int, end: int) -> str:
        """Where a failure at `point` falls once the lines `start` to `end` are blanked."""
        following = self.next_code(end)
        if following is None:
            # Nothing but the gap is left, so nothing after it can be at fault.
            return _GAP
        if point is None:
            return _LATER
        first = (following, self.first_column(following))
        if point < first:
            return _GAP
        if point == first:
            if self.indent[following] >= self.indent[start]:
                return _SIBLING
            # The blocks closed before the next statement, so it fails on its own account; unless
            # its block is left with nothing in it, when no block opened or closed at all.
            return _GAP if self.emptied(start) else _OUTER
        return _LATER


def _brackets(body: str, depth: int) -> tuple[int, bool]:
    """The bracket depth after a line, and whether it ends in a backslash that joins the next line."""
    if "(" not in body and ")" not in body and "\\" not in body:
        return depth, False
    in_string = escaped = False
    last = ""
    for char in body:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == "#":
            break
        if char == '"':
            in_string = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char not in " \t\r":
            last = char
    return depth, last == "\\" and not in_string


def _quotes(line: str) -> int:
    """The double quotes in a line that are not escaped."""
    return len(re.findall(r'(?<!\\)"', line))


@attrs.frozen
class _Failure:
    diagnostic: Diagnostic
    point: tuple[int, int] | None  # where the parser stopped; None at the end of the file
    kind: tuple[str, str]  # what it stopped at
    signature: tuple  # what the parser would have taken instead, and what it was given
    state: object = attrs.field(default=None, eq=False)  # the parser's state at the failure


@attrs.frozen
class _Attempt:
    text: str
    failure: _Failure | None
    checkpoints: dict[int, _Checkpoint]


class _Recovery:
    def __init__(self, text: str, path: str, checkpoints: dict[int, _Checkpoint]):
        self.path = path
        self.text = text
        self.layout = _Layout(text)
        self.checkpoints = checkpoints
        self.found: list[Diagnostic] = []
        self.attempts = 0

    def run(self, err: UnexpectedInput | BadIndent) -> list[Diagnostic]:
        failure = self._failure(err, self.text, 0)
        self.found.append(failure.diagnostic)
        while failure is not None and failure.point is not None and len(self.found) < _MAX_ERRORS:
            failure = self._skip(failure)
        return list(dict.fromkeys(self.found))[:_MAX_ERRORS]

    def _skip(self, failure: _Failure) -> _Failure | None:
        """Blank out the statement that failed; report and return the next genuine failure."""
        layout = self.layout
        start = layout.start(failure.point[0])
        end = None
        wants_block = "_INDENT" in failure.signature[1]
        previous = layout.previous_code(start)
        if failure.signature == ("first", frozenset({"_INDENT"})) and previous is not None:
            # The line before wants an indented block, and this line is not indented under it:
            # this line is misindented, or the line before is at fault.
            repaired = self._deepen(layout.start(previous), True)
            if repaired is not _FAILED:
                return repaired
            start, end = layout.start(previous), start - 1
        elif failure.kind in _MISINDENTED or failure.point == (start, layout.first_column(start)):
            # A misindented line is better put right than blanked, which would leave the lines
            # it opens to fail in its place.
            repaired = self._reindent(failure)
            if repaired is not _FAILED:
                return repaired
        elif failure.kind in _ENDS_EARLY and failure.point[0] == start == layout.line_end(start):
            # The next line is not where this one wants it: it is misindented, or this one is.
            repaired = self._deepen(start, wants_block)
            if repaired is _FAILED and wants_block:
                repaired = self._reindent(failure)
            if repaired is not _FAILED:
                return repaired
        layout = self.layout
        if end is None:
            start = layout.start(failure.point[0])
            end = layout.end(start, failure.point[0])
        reported = layout.start(failure.point[0])
        repeats: list[_Failure] = []
        while self.attempts < _MAX_ATTEMPTS:
            attempt = self._attempt(start, end)
            then = attempt.failure
            if then is not None and then.point is not None and layout.start(then.point[0]) == reported > end:
                # The statement already reported, failing again once the one before it is gone.
                end = layout.end(reported, then.point[0])
                continue
            same = self._same_mistake(failure, then, start, end) if then else None
            if same is not None:
                end, repeated = same
                if repeated:
                    repeats.append(attempt.failure)
                continue
            self._settle(repeats)
            repeats = []
            if attempt.failure is None:
                self._accept(attempt)
                return None
            place = layout.place(attempt.failure.point, start, end)
            if place in (_LATER, _OUTER):
                return self._report([attempt])
            if place == _SIBLING:
                found = self._siblings(start, attempt)
                if isinstance(found, _Failure):
                    return found
                if found == _DONE:
                    return None
            # The failure only follows from the blanking: blank the enclosing statement instead.
            parent = layout.parent(start)
            if parent is None:
                return self._complete(failure)
            start, end = parent, layout.end(parent, end)
        return None

    def _reindent(self, failure: _Failure) -> _Failure | None | str:
        """A line indented to no block it can sit in, or that fails on its first word: try it at
        the indentation of each block open around it, innermost first. Lines after it that
        fail alike are the same mistake, put right the same way without a report of their own.
        Return the next failure, None if the rest parses, or _FAILED if no indentation lets the
        parse get past the line."""
        repaired = False
        while True:
            line = failure.point[0]
            checkpoint = self.checkpoints.get(line)
            levels = set(checkpoint.levels) - {self.layout.indent[line]} if checkpoint is not None else ()
            attempt = self._indented(line, sorted(levels, reverse=True), failure)
            if attempt is None:
                # What stops the repair is for the caller to skip, once anything was put right.
                return failure if repaired else _FAILED
            alike = attempt.failure is not None and self._misindented_alike(failure, attempt.failure, line)
            self._accept(attempt)
            if attempt.failure is None:
                return None
            if not alike:
                self.found.append(attempt.failure.diagnostic)
                return attempt.failure
            failure, repaired = attempt.failure, True

    def _misindented_alike(self, failure: _Failure, then: _Failure, line: int) -> bool:
        """Whether `then` is the statement right after `line` (and its block) failing for its
        indentation just as `failure` did at `line`."""
        following = self.layout.next_code(self.layout.end(line, line))
        return (
            failure.kind in _MISINDENTED
            and then.kind == failure.kind
            and then.signature == failure.signature
            and then.point is not None
            and then.point[0] == following
        )

    def _deepen(self, start: int, wants_block: bool) -> _Failure | None | str:
        """The statement at `start` wants more after it (an indented block, or the rest of its
        own block), and the next line is less indented, or as indented where a block is wanted:
        try that line indented under it, as deep as the lines after it that are, or beside it.
        Return the next failure, None if the rest parses, or _FAILED if that does not get the
        parse past it."""
        layout = self.layout
        line = layout.next_code(layout.line_end(start))
        if line is None or layout.indent[line] > layout.indent[start]:
            return _FAILED
        if layout.indent[line] == layout.indent[start] and not wants_block:
            return _FAILED
        level = layout.indent[start] + 2
        for later in range(layout.line_end(line) + 1, len(layout.code)):
            if layout.code[later]:
                if layout.indent[later] > layout.indent[start]:
                    level = layout.indent[later]
                break
        levels = [lv for lv in dict.fromkeys([level, layout.indent[start]]) if lv != layout.indent[line]]
        attempt = self._indented(line, levels)
        if attempt is None:
            return _FAILED
        if attempt.failure is None:
            self._accept(attempt)
            return None
        return self._report([attempt])

    def _indented(self, line: int, levels: list[int], failure: _Failure | None = None) -> _Attempt | None:
        """The first reindentation of `line` after which the parse gets well past it, or on to
        a next line misindented as `failure` was, if any."""
        layout = self.layout
        checkpoint = self.checkpoints.get(line)
        following = layout.next_code(layout.line_end(line))
        if checkpoint is None or following is None:
            return None
        body = layout.lines[line - 1].lstrip(" \t")
        for level in levels:
            if self.attempts >= _MAX_ATTEMPTS:
                return None
            self.attempts += 1
            lines = list(layout.lines)
            lines[line - 1] = " " * level + body
            text = "\n".join(lines)
            checkpoints: dict[int, _Checkpoint] = {}
            err = _attempt(text, checkpoint, checkpoints)
            then = self._failure(err, text, line) if err is not None else None
            # The line's columns have moved, so only a failure past the next line will do.
            if then is None or then.point is None or then.point > (following, layout.first_column(following)):
                return _Attempt(text, then, checkpoints)
            if failure is not None and self._misindented_alike(failure, then, line):
                return _Attempt(text, then, checkpoints)
        return None

    def _same_mistake(self, failure: _Failure, then: _Failure, start: int, end: int) -> tuple[int, bool] | None:
        """If `then`, in the statement right after the blanked lines, is part of `failure`, or
        it over again, the last line to blank so as to skip it, and whether it was over again
        (for `_settle`); else None."""
        layout = self.layout
        following = layout.next_code(end)
        if following is None or then.point is None or layout.start(then.point[0]) != following:
            return None
        rest = layout.lines[following - 1].rstrip()
        if failure.kind == ("character", '"') and _quotes(rest) == 1 and rest.endswith('"'):
            # A passage broken over two lines: its second line, up to the closing quote, is the
            # same mistake; the lines after it still belong where the first one stood.
            return layout.end(start, layout.line_end(following)), False
        if failure.kind in _ENDS_EARLY and then.kind in _MISINDENTED:
            # A line that wants a block, then a line indented to no block: the block is
            # misindented, one mistake. Skip the misindented line and keep what it opens.
            return layout.line_end(following), False
        if then.signature == failure.signature and layout.indent[following] == layout.indent[start]:
            return layout.end(following, following), True
        return None

    def _settle(self, repeats: list[_Failure]) -> None:
        """Report the statements right after one that failed, failing just as it did: three or
        more in a row (with it) are entries whose block lost its heading line (every fact fails
        alike with `facts` missing), one mistake, for which the first report is enough. Two may
        well be two mistakes, and are both reported."""
        if len(repeats) < 2:
            self.found.extend(repeat.diagnostic for repeat in repeats)

    def _complete(self, failure: _Failure) -> _Failure | None:
        """For a statement nothing can stand in for (the `policy` header): finish its line with
        the fewest tokens the parser would take there, drop the rest of the line, and parse on
        from the next line. Return the next failure, or None if the rest parses or this fails."""
        layout = self.layout
        line = failure.point[0]
        following = layout.next_code(line)
        checkpoint = self.checkpoints.get(line)
        if failure.state is None or following is None or checkpoint is None:
            return None
        if layout.start(line) != line or layout.line_end(line) != line:
            return None
        states = _completion(failure.state)
        if states is None or self.attempts >= _MAX_ATTEMPTS:
            return None
        levels = list(checkpoint.levels)
        while layout.indent[line] < levels[-1]:
            levels.pop()
        if layout.indent[line] > levels[-1]:
            levels.append(layout.indent[line])
        text = layout.blank(line, line, failure.point[1])
        length = len(layout.lines[line - 1].rstrip("\r"))
        pos = sum(len(earlier) + 1 for earlier in layout.lines[: line - 1]) + length
        resume = _Checkpoint(states, pos, line, length + 1, tuple(levels))
        self.attempts += 1
        checkpoints: dict[int, _Checkpoint] = {}
        err = _attempt(text, resume, checkpoints)
        attempt = _Attempt(text, self._failure(err, text, line) if err is not None else None, checkpoints)
        if attempt.failure is None:
            self._accept(attempt)
            return None
        point = attempt.failure.point
        if point is not None and point <= (following, layout.first_column(following)):
            return None
        return self._report([attempt])

    def _siblings(self, start: int, attempt: _Attempt) -> _Failure | str | None:
        """The next statement fails at its first token, having lost the one before it: is it a
        mistake of its own, or one that only follows from the blanking (as everything after a
        blanked `policy` header fails)? Blank the following statements one by one, as long as
        each next one fails at its first token too. Once the parse gets past them, they were
        mistakes: report them, and return the next failure or _DONE. If it never does, return
        None; or, when it stops only for their block being left empty, report them and return
        _GROW."""
        layout = self.layout
        failures = [attempt.failure]
        while self.attempts < _MAX_ATTEMPTS:
            line = failures[-1].point[0]
            end = layout.end(line, line)
            attempt = self._attempt(start, end)
            place = layout.place(attempt.failure.point, start, end) if attempt.failure else None
            if place == _SIBLING:
                failures.append(attempt.failure)
                continue
            if place == _GAP:
                following = layout.next_code(end)
                parent = layout.parent(start)
                if parent is None or not layout.emptied(start):
                    return None
                if following is not None and layout.indent[following] > layout.indent[parent]:
                    return None
                self._siblings_found(failures)
                return _GROW
            self._siblings_found(failures)
            if attempt.failure is None:
                self._accept(attempt)
                return _DONE
            return self._report([attempt])
        return None

    def _siblings_found(self, failures: list[_Failure]) -> None:
        """Report statements found to fail on their own, each run failing alike as in `_settle`."""
        run: list[_Failure] = []
        for failure in [*failures, None]:
            if run and (failure is None or failure.signature != run[0].signature):
                self.found.append(run[0].diagnostic)
                self._settle(run[1:])
                run = []
            if failure is not None:
                run.append(failure)

    def _report(self, attempts: list[_Attempt]) -> _Failure:
        for attempt in attempts:
            self.found.append(attempt.failure.diagnostic)
        self._accept(attempts[-1])
        return attempts[-1].failure

    def _attempt(self, start: int, end: int, column: int = 1) -> _Attempt:
        self.attempts += 1
        text = self.layout.blank(start, end, column)
        checkpoints: dict[int, _Checkpoint] = {}
        err = _attempt(text, self.checkpoints.get(start), checkpoints)
        return _Attempt(text, self._failure(err, text, end) if err is not None else None, checkpoints)

    def _accept(self, attempt: _Attempt) -> None:
        # Checkpoints before the blanked region hold for the new text; those after it came from
        # the attempt itself.
        first = min(attempt.checkpoints, default=None)
        kept = {line: cp for line, cp in self.checkpoints.items() if first is None or line < first}
        self.checkpoints = kept | attempt.checkpoints
        self.text = attempt.text
        self.layout = _Layout(attempt.text)

    def _failure(self, err: UnexpectedInput | BadIndent, text: str, after: int) -> _Failure:
        diagnostic = _syntax_error(err, self.path, text, after)
        point: tuple[int, int] | None
        if isinstance(err, BadIndent):
            line = err.token.end_line or err.token.line or 1
            point, kind = (line, self.layout.first_column(line)), ("bad-indent", "")
        elif isinstance(err, UnexpectedToken):
            tok = err.token
            kind = ("token", tok.type)
            if tok.type == "$END":
                point = None
            elif tok.type == "_INDENT":
                line = tok.end_line or err.line
                point = (line, self.layout.first_column(line))
            elif tok.type in ("_NL", "_DEDENT"):
                point = _last_token_before(text, tok)
            else:
                point = (tok.line or err.line, tok.column or err.column)
        elif isinstance(err, UnexpectedCharacters):
            char = text[err.pos_in_stream] if err.pos_in_stream < len(text) else ""
            point, kind = (err.line, err.column), ("character", char)
        elif isinstance(err, UnexpectedEOF):
            point, kind = None, ("token", "$END")
        else:
            point, kind = (diagnostic.line, diagnostic.column), ("other", "")
        if isinstance(err, UnexpectedToken):
            expected = frozenset(err.accepts or err.expected or ())
        else:
            expected = frozenset(getattr(err, "allowed", None) or ())
        # Statements that fail on their first token in the same parser state are alike whatever
        # that token is (a run of lines that lost their heading line); further on, only if the
        # offending token is alike too. A character that is no token at all is a slip of its own.
        start = self.layout.start(point[0]) if point is not None else None
        if isinstance(err, UnexpectedCharacters):
            signature = (kind, point)
        elif start is not None and point == (start, self.layout.first_column(start)):
            signature = ("first", expected)
        else:
            signature = (kind, expected)
        interactive = getattr(err, "interactive_parser", None)
        return _Failure(diagnostic, point, kind, signature, getattr(interactive, "parser_state", None))


def _completion(state, limit: int = 2000) -> tuple | None:
    """The parser's state stack once the fewest tokens it would take bring it to the end of a
    line, from `state`; None if none are found within `limit` steps."""
    conf = copy(state.parse_conf)
    conf.callbacks = {}
    table = conf.parse_table.states
    frontier = [tuple(state.state_stack)]
    seen = set(frontier)
    while frontier and limit > 0:
        later = []
        for stack in frontier:
            if _takes(state, conf, stack, "_NL") is not None:
                return stack
            for terminal in table[stack[-1]]:
                if not terminal.isupper() or terminal in ("_NL", "_INDENT", "_DEDENT", "$END"):
                    continue
                limit -= 1
                after = _takes(state, conf, stack, terminal)
                if after is not None and after not in seen:
                    seen.add(after)
                    later.append(after)
        frontier = later
    return None


def _takes(state, conf, stack: tuple, terminal: str) -> tuple | None:
    """The state stack after the parser at `stack` takes a `terminal`, or None if it would not."""
    trial = type(state)(conf, None, list(stack), [None] * (len(stack) - 1))
    try:
        trial.feed_token(Token(terminal, ""))
    except UnexpectedToken:
        return None
    return tuple(trial.state_stack)


def _attempt(text: str, checkpoint: _Checkpoint | None, checkpoints: dict[int, _Checkpoint]):
    """Parse `text` from a checkpoint (or its start) without building a tree, noting the
    checkpoints passed on the way; return the first failure, or None."""
    try:
        _run(text, checkpoint, checkpoints, tree=False)
    except (UnexpectedInput, BadIndent) as err:
        return err
    return None


def _run(text: str, checkpoint: _Checkpoint | None, checkpoints: dict[int, _Checkpoint], *, tree: bool):
    """Parse `text` from a checkpoint (or its start), noting a checkpoint at each line break."""
    lark = _parser()
    indenter = lark.options.postlex
    interactive = lark.parse_interactive(text)
    state = interactive.parser_state
    if not tree:
        conf = copy(state.parse_conf)
        conf.callbacks = {}
        state.parse_conf = conf
    levels = [0]
    if checkpoint is not None:
        state.state_stack[:] = checkpoint.states
        state.value_stack[:] = [None] * (len(checkpoint.states) - 1)
        counter = interactive.lexer_thread.state.line_ctr
        counter.char_pos = checkpoint.pos
        counter.line = checkpoint.line
        counter.column = checkpoint.column
        counter.line_start_pos = checkpoint.pos - checkpoint.column + 1
        levels = list(checkpoint.levels)
    indenter.resume = _Resume(levels, state, checkpoints)
    try:
        return interactive.resume_parse()
    finally:
        indenter.resume = None
