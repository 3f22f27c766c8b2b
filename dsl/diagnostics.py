"""Diagnostics: a problem in a policy file, pointed at by path, line and column."""

from __future__ import annotations

import attrs


@attrs.frozen(order=True)
class Diagnostic:
    """One problem found in a policy file, with the span it concerns.

    Messages follow one style: a single sentence, no capital, no final period, user
    input in backticks. Codes are stable kebab-case words users can search for.
    """

    path: str
    line: int
    column: int
    code: str
    message: str
    severity: str = "error"
    width: int = 1
    help: str | None = None

    def render(self, source: str | None = None) -> str:
        """Format as `path:line:col: error[code]: message`, then the source line and a caret."""
        head = f"{self.path}:{self.line}:{self.column}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        text = _source_line(source, self.line)
        if text is not None:
            gutter = f"{self.line} | "
            lines.append(gutter + text)
            pad = " " * (len(gutter) + max(self.column - 1, 0))
            lines.append(pad + "^" * max(1, min(self.width, max(1, len(text) - self.column + 1))))
        if self.help:
            lines.append(f"  help: {self.help}")
        return "\n".join(lines)


def _source_line(source: str | None, line: int) -> str | None:
    if source is None or line < 1:
        return None
    # Count lines as the parser does: only `\n` ends a line.
    lines = source.split("\n")
    if line > len(lines):
        return None
    return lines[line - 1].expandtabs(1)


class PolicyError(Exception):
    """Raised by a stage that cannot go on; carries every diagnostic collected so far."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = sorted(diagnostics)
        self.sources = sources or {}
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.sources.get(d.path)) for d in self.diagnostics)


def position_after(before: str) -> tuple[int, int]:
    """The line and column just past `before`, counting lines as a diagnostic shows them."""
    start = before.rfind("\n") + 1
    return before.count("\n") + 1, len(before) - start + 1


def not_utf8_at(raw: bytes, err: UnicodeDecodeError) -> tuple[int, int]:
    """The line and column of the first byte of `raw` that is not UTF-8 (`err` says which):
    the bytes before it decode, so it is counted in characters, as an editor shows it."""
    return position_after(raw[: err.start].decode("utf-8"))
