"""Render a policy diff, and its impact on claims, as Markdown, one HTML page, or plain JSON;
and the diff of two versions of a library, policy by policy, with the claim lines that flip."""

from __future__ import annotations

import datetime
import functools
import re

import attrs
import jinja2
from jinja2 import PackageLoader, StrictUndefined, select_autoescape

from medpol.compiler.diff import LibraryDiff, PolicyDiff
from medpol.history.impact import Impact, LibraryImpact

SCHEMA = "medpol.diff/1"
LIBRARY_SCHEMA = "medpol.library-diff/1"
# Unreadable claim lines listed in a Markdown or HTML report; JSON lists them all.
SHOWN_UNREADABLE = 20


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=PackageLoader("medpol.history", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )
    env.filters["md"] = escape_md
    env.filters["cell"] = _cell
    env.filters["code"] = _code
    env.filters["plural"] = _plural
    env.filters["in_words"] = _in_words
    env.globals["shown_unreadable"] = SHOWN_UNREADABLE
    return env


# What policy authors and claims write is shown as written. `&` and `<` become entities, which
# every Markdown renders as the character, never as a tag, a comment or an autolink
# (Python-Markdown, which builds the site, does not take `\<` for an escape). A backslash
# escapes the rest where they mean something: code spans, emphasis (`_` only beside a character
# not a letter or digit, so `not_applicable` stays as it is), links and images, a table cell's
# end, headings, attribute lists (on the site, `{ onclick=... }` ending a heading or a table
# cell becomes an attribute of it), and at the start, a block quote or an admonition (`!!!`).
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;"}
_MD_SPECIAL = re.compile(r"[\\`*\[\]|#{}]|(?<![^\W_])_|_(?![^\W_])|^\s*[>!]")


def escape_md(value) -> str:
    """Text shown literally in Markdown: no character of it starts markup, HTML or a link."""
    text = "".join(_MD_ENTITIES.get(ch, ch) for ch in ("" if value is None else str(value)))
    return _MD_SPECIAL.sub(lambda m: m.group()[:-1] + "\\" + m.group()[-1], text)


def _cell(value) -> str:
    """Text shown literally inside a Markdown table cell, where a newline would end the row."""
    return escape_md(value).replace("\n", "<br>")


def _code(value) -> str:
    """A Markdown code span around any text (a path, a command): its fence is one backtick
    longer than the longest run of backticks inside, so nothing inside can close it."""
    text = str(value)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


# A policy's diff summary in words, in the order the single-policy report lists it.
_SUMMARY_WORDS = (
    ("rules_added", "rule added", "rules added"),
    ("rules_removed", "rule removed", "rules removed"),
    ("rules_changed", "rule changed", "rules changed"),
    ("rules_reaching_other_codes", "rule reaching other codes", "rules reaching other codes"),
    ("code_changes", "code entry", "code entries"),
    ("fact_changes", "fact", "facts"),
    ("criteria_changes", "criteria set", "criteria sets"),
    ("section_changes", "section", "sections"),
    ("metadata_changes", "policy field", "policy fields"),
    ("history_changes", "change history row", "change history rows"),
)


def _in_words(summary: dict) -> str:
    """`1 rule added, 3 code entries, precedence`: what a policy's diff summary counts."""
    parts = [f"{summary[k]} {one if summary[k] == 1 else many}" for k, one, many in _SUMMARY_WORDS if summary[k]]
    if summary["precedence_changed"]:
        parts.append("precedence")
    return ", ".join(parts) or "no change in meaning"


def _plain(value):
    """attrs objects to dicts in field order, tuples to lists, dates to ISO strings: what json.loads gives back."""
    if attrs.has(type(value)):
        return {f.name: _plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def to_json(diff: PolicyDiff, impact: Impact | None = None, title_a: str = "r21", title_b: str = "r22") -> dict:
    """The diff as plain JSON-able data: what the templates render, and what tools read."""
    body = _plain(diff)
    summary = {
        "empty": diff.is_empty,
        "rule_changes": diff.rule_changes,
        "rules_added": len(diff.rules_added),
        "rules_removed": len(diff.rules_removed),
        "rules_changed": len(diff.rules_changed),
        "rules_reaching_other_codes": len(diff.reach),
        "code_changes": diff.code_changes,
        "fact_changes": len(diff.facts),
        "criteria_changes": len(diff.criteria),
        "section_changes": len(diff.sections),
        "metadata_changes": len(diff.metadata),
        "history_changes": len(diff.history),
        "precedence_changed": diff.precedence is not None,
    }
    out = {
        "schema": SCHEMA,
        "a": {"title": title_a, "revision": diff.old_revision},
        "b": {"title": title_b, "revision": diff.new_revision},
        "policy": body.pop("policy"),
        "policy_title": body.pop("title"),
        "summary": summary,
    }
    del body["old_revision"], body["new_revision"]
    out.update(body)
    out["impact"] = _plain(impact) if impact is not None else None
    return out


def _render(name: str, diff: PolicyDiff, impact: Impact | None, title_a: str, title_b: str) -> str:
    return environment().get_template(name).render(report=to_json(diff, impact, title_a, title_b))


def render_markdown(diff: PolicyDiff, impact: Impact | None = None, title_a: str = "r21", title_b: str = "r22") -> str:
    return _render("diff.md.j2", diff, impact, title_a, title_b)


def render_html(diff: PolicyDiff, impact: Impact | None = None, title_a: str = "r21", title_b: str = "r22") -> str:
    return _render("diff.html.j2", diff, impact, title_a, title_b)


# ---------------------------------------------------------------- a library


@attrs.frozen
class Side:
    """One version of a library, as a report names it."""

    title: str  # `HEAD~1`, `2025-12-20`, `working tree`
    spec: str | None = None  # what follows `@`; None for the working tree
    left_out: tuple[str, ...] = ()  # policies of the folder this version leaves out, and why


def _ref(path: str, spec: str | None) -> str:
    return path if spec is None else f"{path}@{spec}"


def library_to_json(
    diff: LibraryDiff,
    impact: LibraryImpact | None = None,
    library: str = "library",
    a: Side | None = None,
    b: Side | None = None,
) -> dict:
    """The library diff as plain JSON-able data; each changed policy carries its own diff (`to_json`)."""
    a = a or Side("a")
    b = b or Side("b")
    changed = []
    for change in diff.changed:
        changed.append(
            {
                "policy": change.policy,
                "title": change.title,
                "before": _plain(change.before),
                "after": _plain(change.after),
                # The whole change of one policy, as `medpol diff` reports it.
                "command": f"medpol diff {_ref(change.before.path, a.spec)} {_ref(change.after.path, b.spec)}",
                "diff": to_json(
                    change.diff, None, f"revision {change.before.revision}", f"revision {change.after.revision}"
                ),
            }
        )
    return {
        "schema": LIBRARY_SCHEMA,
        "library": library,
        "a": {
            "title": a.title,
            "spec": a.spec,
            "policies": len(diff.removed) + len(diff.changed) + len(diff.unchanged),
            "left_out": list(a.left_out),
        },
        "b": {
            "title": b.title,
            "spec": b.spec,
            "policies": len(diff.added) + len(diff.changed) + len(diff.unchanged),
            "left_out": list(b.left_out),
        },
        "summary": {
            "empty": diff.is_empty,
            "policies_added": len(diff.added),
            "policies_removed": len(diff.removed),
            "policies_changed": len(diff.changed),
            "policies_unchanged": len(diff.unchanged),
        },
        "added": _plain(diff.added),
        "removed": _plain(diff.removed),
        "changed": changed,
        "unchanged": _plain(diff.unchanged),
        "impact": _plain(impact) if impact is not None else None,
    }


def render_library_markdown(diff: LibraryDiff, impact: LibraryImpact | None = None, **sides) -> str:
    return environment().get_template("library-diff.md.j2").render(report=library_to_json(diff, impact, **sides))


def render_library_html(diff: LibraryDiff, impact: LibraryImpact | None = None, **sides) -> str:
    return environment().get_template("library-diff.html.j2").render(report=library_to_json(diff, impact, **sides))
