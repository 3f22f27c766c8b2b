"""Render a policy diff, and its impact on claims, as Markdown, one HTML page, or plain JSON."""

from __future__ import annotations

import datetime
import functools

import attrs
import jinja2
from jinja2 import PackageLoader, StrictUndefined, select_autoescape

from compiler.diff import Impact, PolicyDiff

SCHEMA = "medpol.diff/1"


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=PackageLoader("medpol", "templates"),
        undefined=StrictUndefined,
        autoescape=select_autoescape(["html"]),
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _cell
    env.filters["plural"] = _plural
    return env


def _cell(value) -> str:
    """Text safe inside a Markdown table cell: a `|` would end the cell, a newline the row."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


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
