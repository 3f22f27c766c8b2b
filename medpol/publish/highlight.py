"""A Pygments lexer for policy files, so the published site highlights policy text.

Registered as the Pygments plugin `medpol` (aliases `policy`, `medpol`; files `*.policy`):
a Markdown code block fenced as ```policy is highlighted with it. Only Pygments imports this
module, when it highlights a policy; nothing else in medpol needs Pygments.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Literal, Name, Number, Operator, Punctuation, String, Text, Whitespace

__all__ = ["PolicyLexer"]

# A name may hold dots (`bgm.e0607`), so a keyword is one only when no name goes on after it.
_END = r"\b(?![.\w])"

KEYWORDS = (
    "medpol",
    "policy",
    "source",
    "revision",
    "dated",
    "effective",
    "until",
    "note",
    "prepared",
    "approved",
    "reviewed",
    "description",
    "change",
    "history",
    "precedence",
    "facts",
    "codes",
    "diagnoses",
    "drugs",
    "criteria",
    "section",
    "rule",
    "require",
    "show",
    "refer",
    "deny",
    "cover",
    "otherwise",
    "limit",
    "each",
    "excess",
    "denied",
    "covered",
    "as",
    "to",
    "when",
    "unless",
    "all",
    "any",
    "at",
    "least",
    "of",
    "item",
    "not",
    "and",
    "or",
    "is",
    "in",
    "diagnosis",
    "drug",
    "billed",
    "with",
    "other",
    "than",
    "has",
    "modifier",
    "meets",
    "within",
    "before",
    "after",
    "per",
    "calendar",
    "month",
    "quarter",
    "year",
    "line",
    "lines",
    "except",
    "administer",
    "follow",
    "the",
    "else",
    "earlier",
    "by",
    "units",
    "vials",
    "vial",
    "days",
    "default",
    "reasonable",
    "necessary",
    "incorrect",
    "coding",
)
TYPES = ("bool", "int", "number", "date", "code", "one")
CONSTANTS = ("true", "false", "none")
UNITS = (
    "hours",
    "hour",
    "mmHg",
    "percent",
    "pounds",
    "inches",
    "months",
    "years",
    "weeks",
    "week",
    "day",
)


class PolicyLexer(RegexLexer):
    """Policy files of the medpol language: keywords, passages, dates, codes, comments."""

    name = "medpol policy"
    aliases = ["policy", "medpol"]
    filenames = ["*.policy"]
    mimetypes = ["text/x-medpol-policy"]
    url = "https://github.com/medpol/medpol"

    tokens = {
        "root": [
            (r"\n", Whitespace),
            (r"[ \t]+", Whitespace),
            (r"\\[ \t]*(?=\r?\n)", Text),  # a line continued on the next
            (r"#.*?$", Comment.Single),
            (r'"', String.Double, "passage"),
            (r"\d{4}-\d{2}-\d{2}" + _END, Literal.Date),
            # A HCPCS or ICD-10-CM code, or a range of them: `E0781`, `C91.0`, `D80.2-D80.7`.
            (r"[A-Z][0-9][0-9A-Z]*(?:\.[0-9A-Z]+)?" + _END, Name.Constant),
            (r"mg/dl\b", Keyword.Pseudo),
            (words(UNITS, suffix=_END), Keyword.Pseudo),
            (words(TYPES, suffix=_END), Keyword.Type),
            (words(CONSTANTS, suffix=_END), Keyword.Constant),
            (words(KEYWORDS, suffix=_END), Keyword),
            (r"(\d+(?:\.\d+)?)", Number),
            (r"\.\.\.", Punctuation),  # lines left out of an example
            (r">=|<=|==|!=|[<>=+*/-]", Operator),
            (r"[(),:]", Punctuation),
            # A policy id (`manual-wheelchair-bases`), then any other name (`bgm.e0607`).
            (r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+\b", Name.Namespace),
            (r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)", bygroups(Name)),
        ],
        "passage": [
            (r'\\[\\"]', String.Escape),
            (r"\.\.\.", String.Interpol),  # words left out of a quotation
            (r'[^"\\\n.]+', String.Double),
            (r"\.", String.Double),
            (r'"', String.Double, "#pop"),
            (r"\n", Whitespace, "#pop"),  # an unterminated passage ends with its line
        ],
    }
