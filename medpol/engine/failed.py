"""Why a line was denied: the criteria that failed, in the policy's words.

A denied line's `reasons` cite the rule that decided it; a reviewer or a claims system also
needs to know which criterion failed, with which fact values, and whether a criterion was
simply not yet in effect on the line's date. The engine decides with the generated
predicates, which keep no trace; for a denied line only, the rules that matter are
evaluated again here with the reference interpreter in its exhaustive mode, so every
failing item of an all-of is named, not only the first.
"""

from __future__ import annotations

import datetime

from medpol.compiler.interpret import ABSENT, Interpreter, TraceNode, rule_condition
from medpol.compiler.resolve import Model
from medpol.compiler.runtime import NO_EVENT, LineContext
from medpol.dsl import ir


def _json(value):
    cls = value.__class__
    if cls is str or cls is bool or cls is int or cls is float or value is None:
        return value  # what nearly every fact is, told before the general tests
    if cls is list and all(v.__class__ is str for v in value):
        return value  # codes: the interpreter's own copy, which nothing else holds
    if value is NO_EVENT:
        return "none"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class FailedCriteria:
    """Names the failed criteria of one policy's rules for a line's context."""

    def __init__(self, model: Model, reasons: dict[str, dict]):
        self.interpreter = Interpreter(model, exhaustive=True)
        self.conditions = {rule.id: rule_condition(rule) for rule in model.rules if rule.kind != "otherwise"}
        self.reasons = reasons

    def _trace(self, rule_id: str, ctx: LineContext) -> TraceNode | None:
        cond = self.conditions.get(rule_id)
        if cond is None:
            return None
        hits = ctx.hits
        ctx.hits = []  # the decision's own hits are kept; this evaluation cites nothing
        try:
            nodes: list[TraceNode] = []
            self.interpreter.evaluate(cond, ctx, rule_id, nodes)
        finally:
            ctx.hits = hits
        return nodes[0]

    def of_covers(self, rule_ids, ctx: LineContext) -> list[dict]:
        """The criteria that failed in each coverage rule tried for the line."""
        entries: dict[str, dict] = {}
        for rule_id in rule_ids:
            node = self._trace(rule_id, ctx)
            if node is not None:
                self._failing(node, rule_id, entries)
        return list(entries.values())

    def of_holding(self, rule: ir.Rule, ctx: LineContext) -> list[dict]:
        """A denial that held: its rule, with the fact values that made it hold."""
        entry = self.entry(rule.id)
        node = self._trace(rule.id, ctx)
        if node is not None:
            _used(node, entry["facts"])
        return [entry]

    def entry(self, cite: str) -> dict:
        """A failed criterion with its passage, and no facts yet."""
        reason = self.reasons.get(cite, {})
        return {"id": cite, "text": reason.get("text", ""), "source": reason.get("source", ""), "facts": {}}

    def of_windows(self, rules: list) -> list[dict]:
        """Coverage rules that were not yet (or no longer) in effect on the line's date, with
        the windows they are in effect in: a rule's own, or those in which its set names the code."""
        out = []
        for rule, windows in rules:
            entry = self.entry(rule.id)
            flat = [w for window in windows for w in (window if isinstance(window, tuple) else (window,))]
            starts = sorted(w.effective for w in flat if w.effective is not None)
            ends = sorted(w.until for w in flat if w.until is not None)
            if starts:
                entry["effective"] = starts[-1].isoformat()
            if ends:
                entry["until"] = ends[0].isoformat()
            out.append(entry)
        return out

    def _entry(self, cite: str, entries: dict) -> dict:
        if cite not in entries:
            entries[cite] = self.entry(cite)
        return entries[cite]

    def _failing(self, node: TraceNode, cite: str, entries: dict) -> None:
        cite = node.clause or node.criteria or cite
        if node.value is ABSENT:
            window = node.window
            if node.clause and window is not None:
                entry = self._entry(node.clause, entries)
                if window.effective is not None:
                    entry["effective"] = window.effective.isoformat()
                if window.until is not None:
                    entry["until"] = window.until.isoformat()
            return
        if node.value is not False:
            return
        failing = [c for c in node.children if c.value is False or c.value is ABSENT]
        if failing:
            # A group that failed: the items that failed it (every item of an any-of).
            for child in failing:
                self._failing(child, cite, entries)
            return
        # A condition that failed on its own (a fact, a comparison, `not` of what held).
        _used(node, self._entry(cite, entries)["facts"])


def _used(node: TraceNode, facts: dict) -> None:
    for name, value in node.used:
        if not isinstance(value, frozenset):
            facts.setdefault(name, _json(value))
    for child in node.children:
        if child.value is not ABSENT:
            _used(child, facts)
