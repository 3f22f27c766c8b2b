"""Render a traced decision as a tree a reviewer can follow."""

from __future__ import annotations

from medpol.compiler.interpret import TraceNode
from medpol.compiler.words import line_outcome_words
from medpol.engine.whynot import describe_route

MARKS = {True: "✓", False: "✗"}


def _mark(value) -> str:
    if value is True or value is False:
        return MARKS[value]
    if value is None or value.__class__.__name__ == "_Absent":
        return "–"
    return "?"


def _value_text(value) -> str:
    if value is True or value is False:
        return "held" if value else "failed"
    if isinstance(value, frozenset):
        return "unknown: needs " + ", ".join(sorted(value))
    return str(value)


def _used(node: TraceNode) -> str:
    if not node.used:
        return ""
    parts = []
    for name, value in node.used:
        parts.append(f"{name} = {'(not given)' if value is None else value}")
    return "   [" + "; ".join(parts) + "]"


def _tree(node: TraceNode, depth: int, out: list[str]) -> None:
    pad = "    " * depth
    label = node.text
    if node.clause:
        label += f"  <{node.clause}>"
    note = f"  ({node.note})" if node.note else ""
    value = node.value
    extra = f"  {_value_text(value)}" if isinstance(value, frozenset) else ""
    out.append(f"{pad}{_mark(value)} {label}{_used(node)}{note}{extra}")
    for child in node.children:
        _tree(child, depth + 1, out)


def _decisive_facts(trace, outcome: str, rules: dict) -> list[str]:
    """Facts read where the outcome was made: failed criteria of a denial, or the denying rule."""
    names: set[str] = set()

    def walk(node: TraceNode, want) -> None:
        if not node.children and node.value is want:
            for name, _ in node.used:
                if name not in ("diagnoses", "lines", "modifiers", "units") and not name.startswith("age"):
                    names.add(name)
        for child in node.children:
            walk(child, want)

    for step in trace:
        rule = rules.get(step.rule)
        if step.node is None or rule is None:
            continue
        if rule.kind == "cover" and step.value is False:
            walk(step.node, False)  # the criteria that failed
        elif rule.kind in ("deny", "limit") and step.value is True:
            walk(step.node, True)  # what made the denial hold
    return sorted(names)


def render(decision: dict, policy, as_of=None) -> str:
    """The explanation of one claim's decision, as text."""
    out: list[str] = []
    library = getattr(policy, "policies", None)
    if library is not None:
        head = f"claim {decision.get('claim')} under the library {policy.name} ({len(library)} policies)"
    else:
        head = f"claim {decision.get('claim')} under {decision.get('policy')} revision {decision.get('revision')}"
    if as_of is not None:
        head += f", as of {as_of.isoformat()}"
    out.append(head)
    if decision.get("outcome") == "error":
        out.append(f"  error: {decision.get('message')}")
        return "\n".join(out)
    rules = {rule.id: rule for rule in policy.model.rules} if library is None else {}
    for line in decision["lines"]:
        if library is not None:
            # Each line of a library's decision was decided by a policy of its own.
            model = library[line["policy"]].model if line.get("policy") in library else None
            rules = {rule.id: rule for rule in model.rules} if model is not None else {}
        outcome = line["outcome"]
        words = line_outcome_words(line)
        out.append("")
        out.append(f"line {line['seq']} {line.get('hcpcs')}: {words}")
        if library is not None and line.get("policy"):
            out.append(f"  under {line['policy']} revision {line.get('revision')}")
            for step in line.get("path", ()):
                out.append(f"  referred by {step['policy']} revision {step.get('revision')}")
            for other in line.get("decisions", ())[1:]:
                out.append(f"  also decided by {other['policy']}: {other['outcome']}")
        for reason in line.get("reasons", ())[:1]:
            out.append(f"  decided by {reason['rule']} [{reason['source']}]")
            out.append(f'    "{reason["text"]}"')
        trace = line.get("trace") or []
        if trace:
            out.append("  rules tried, in precedence order:")
        for step in trace:
            rule_id, value, node = step.rule, step.value, step.node
            rule = rules.get(rule_id)
            kind = f"{rule.kind}" if rule else ""
            if node is None:
                shown = step.counted or (value if not isinstance(value, bool) else _value_text(value))
                mark = _mark(value) if isinstance(value, bool) else "·"
                out.append(f"    {mark} {rule_id} ({kind}): {shown}")
                continue
            out.append(
                f"    {_mark(value)} {rule_id} ({kind}){'' if value in (True, False) else '  ' + _value_text(value)}"
            )
            if step.counted:
                out.append(f"        past the limit: {step.counted}")
            out_lines: list[str] = []
            for child in node.children:
                _tree(child, 3, out_lines)
            out.extend(out_lines)
        if outcome == "pending":
            out.append("  would decide it: " + ", ".join(line.get("missing", [])))
            for group in line.get("missing_by_route", ()):
                out.append(f"    for {group['route']}: " + ", ".join(group["missing"]))
        elif outcome == "denied":
            facts = _decisive_facts(trace, outcome, rules)
            if facts:
                out.append("  facts that would change the outcome: " + ", ".join(facts))
            for entry in line.get("failed", ()):
                when = f" (in effect from {entry['effective']})" if entry.get("effective") else ""
                given = ", ".join(f"{k} = {v}" for k, v in entry.get("facts", {}).items())
                out.append(f"  failed: {entry['id']}{when}" + (f"   [{given}]" if given else ""))
        routes = line.get("why_not", ())
        if routes:
            out.append("  would be covered with:")
        for route in routes:
            out.append(f"    {describe_route(route)}")
    return "\n".join(out)
