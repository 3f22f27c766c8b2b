"""Find quoted passages in the policy's source document, so a citation cannot drift.

The comparison ignores whitespace, typographic quotes, bold markers and the page
headers the document repeats at every page break. A passage may leave words out
with `...`: each remaining piece must then appear, in order.
"""

from __future__ import annotations

import re

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'", "\u2013": "-", "\u2014": "-"})
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = text.translate(_QUOTES).replace("**", "")
    return _SPACE.sub(" ", text).strip()


def strip_page_headers(document: str) -> str:
    """Remove the title lines a printed policy repeats at the top of every page."""
    lines = [line.strip() for line in document.splitlines()]
    counts: dict[str, int] = {}
    for line in lines:
        if line:
            counts[line] = counts.get(line, 0) + 1
    # A line that recurs on many pages and is short is a running header, not content.
    headers = {line for line, n in counts.items() if n >= 3 and len(line) <= 80 and not line[0].isdigit()}
    return "\n".join(line for line in lines if line not in headers)


class SourceDocument:
    def __init__(self, text: str):
        self.original = text
        self.text = normalize(strip_page_headers(text))
        self._lower = self.text.lower()

    def locate(self, passage: str) -> tuple[int, int] | None:
        """The span of the document a passage quotes, or None when it is not found."""
        pieces = [normalize(p) for p in normalize(passage).split("...")]
        pieces = [p for p in pieces if p]
        if not pieces:
            return None
        start = end = None
        pos = 0
        for piece in pieces:
            found = self._lower.find(piece.lower(), pos)
            if found < 0:
                return None
            if start is None:
                start = found
            pos = end = found + len(piece)
        return start, end

    def expand(self, passage: str) -> str:
        """The passage with the words `...` left out restored from the document."""
        if "..." not in passage:
            return normalize(passage)
        span = self.locate(passage)
        if span is None:
            return normalize(passage)
        return self.text[span[0] : span[1]]
