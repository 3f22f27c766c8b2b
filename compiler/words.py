"""Say a condition in words, as a reviewer reads it (for explanations, diffs and docs)."""

from __future__ import annotations

from medpol.dsl import ir

# Every word a reader sees for a denial category or a decided line's outcome is said here,
# so that a decision, its explanation, a report and the site say it the same way.
CATEGORY_WORDS = {
    "not_reasonable_and_necessary": "not reasonable and necessary",
    "incorrect_coding": "incorrect coding",
    "not_covered": "not covered",
}


def category_words(category) -> str:
    """A denial category as the policy says it: `not reasonable and necessary`."""
    return CATEGORY_WORDS.get(category) or str(category).replace("_", " ")


def outcome_words(line: dict) -> str:
    """A decided line's outcome as a phrase: `denied as not covered`, `covered in part`, `pending`."""
    outcome = line.get("outcome")
    if outcome == "denied" and line.get("category"):
        return "denied as " + category_words(line["category"])
    if outcome == "covered" and line.get("denied_units"):
        return "covered in part"
    return str(outcome).replace("_", " ")


def line_outcome_words(line: dict, needs: str = "needs") -> str:
    """A decided line's outcome with what it turns on: `denied (not covered)`, `refer to X`,
    `pending (needs a, b)` (`needs` names the facts still wanted), `error: message`."""
    outcome = line.get("outcome", "absent")
    text = outcome
    if outcome == "denied" and line.get("category"):
        text += f" ({category_words(line['category'])})"
    elif outcome == "refer" and line.get("refer_to"):
        text += f" to {line['refer_to']}"
    elif outcome == "pending" and line.get("missing"):
        text += f" ({needs} " + ", ".join(line["missing"]) + ")"
    elif outcome == "error" and line.get("message"):
        text += f": {line['message']}"
    return text


def targets(t: ir.Targets | None) -> str:
    if t is None:
        return ""
    if t.all_lines:
        return "all lines" + (" except " + ", ".join(r.name for r in t.exclude) if t.exclude else "")
    text = ", ".join(r.name for r in t.include)
    if t.exclude:
        text += " except " + ", ".join(r.name for r in t.exclude)
    return text


def _value(v) -> str:
    if isinstance(v, str) and not v.isidentifier():
        return f'"{v}"'
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def period(p: ir.Period) -> str:
    return f"within {_number(p.amount)} {p.unit}"


def operand(o) -> str:
    if isinstance(o, ir.FactRef):
        return o.name
    if isinstance(o, ir.LineUnits):
        return "units"
    if isinstance(o, ir.DateLiteral):
        return o.value.isoformat()
    if isinstance(o, ir.EarlierUnits):
        return f"earlier units of {targets(o.codes)} {period(o.period)}"
    if isinstance(o, ir.Arith):
        return f"{operand(o.left)} {o.op} {operand(o.right)}"
    value = _number(o.value)
    return f"{value} {o.unit}" if o.unit else value


def describe(cond, top: bool = True) -> str:
    """One line of text for a condition; nested groups are bracketed."""
    if isinstance(cond, ir.Always):
        return "always"
    if isinstance(cond, ir.Truth):
        return cond.name
    if isinstance(cond, ir.Is):
        return f"{cond.name} is {'not ' if cond.negated else ''}{_value(cond.value)}"
    if isinstance(cond, ir.In):
        return f"{cond.name} in " + ", ".join(_value(v) for v in cond.values)
    if isinstance(cond, ir.Compare):
        return f"{operand(cond.left)} {cond.op} {operand(cond.right)}"
    if isinstance(cond, ir.DiagnosisIn):
        return "diagnosis in " + ", ".join(r.name for r in cond.sets)
    if isinstance(cond, ir.BilledWith):
        text = "billed with " + targets(cond.codes)
        if cond.other_than is not None:
            text += " other than " + targets(cond.other_than)
        if cond.period is not None:
            text += " " + period(cond.period)
        return text
    if isinstance(cond, ir.DrugIn):
        return "drug in " + targets(cond.codes)
    if isinstance(cond, ir.LineOutcome):
        text = f"{targets(cond.codes)} is {cond.outcome}"
        text += f" as {CATEGORY_WORDS[cond.category]}" if cond.category else ""
        return text + (f" by {cond.by.name}" if cond.by is not None else "")
    if isinstance(cond, ir.HasModifier):
        return f"has modifier {cond.modifier}"
    if isinstance(cond, ir.CriteriaOf):
        return f"meets {cond.name} of {cond.policy}"
    if isinstance(cond, ir.Within):
        amount = _number(cond.amount)
        return f"{operand(cond.subject)} within {amount} {cond.unit} {cond.direction} {operand(cond.anchor)}"
    if isinstance(cond, ir.Not):
        inner = describe(cond.item, top=False)
        return f"not {inner}"
    if isinstance(cond, ir.Clause):
        return f"item {cond.label} ({describe(cond.condition, top=True)})"
    if isinstance(cond, (ir.AllOf, ir.AnyOf)):
        joiner = " and " if isinstance(cond, ir.AllOf) else " or "
        parts = [describe(i, top=False) for i in cond.items]
        if len(parts) == 1:
            return parts[0]
        text = joiner.join(parts)
        return text if top else f"({text})"
    if isinstance(cond, ir.AtLeast):
        return f"at least {cond.count} of (" + "; ".join(describe(i) for i in cond.items) + ")"
    return type(cond).__name__


def outline(cond, depth: int = 0) -> list[tuple[int, str]]:
    """The condition as an outline of (depth, text) lines: groups become numbered lists."""
    if isinstance(cond, ir.AllOf) and len(cond.items) > 1:
        lines = [(depth, "all of:")]
        for item in cond.items:
            lines.extend(outline(item, depth + 1))
        return lines
    if isinstance(cond, ir.AllOf) and len(cond.items) == 1:
        return outline(cond.items[0], depth)
    if isinstance(cond, ir.AnyOf):
        lines = [(depth, "any of:")]
        for item in cond.items:
            lines.extend(outline(item, depth + 1))
        return lines
    if isinstance(cond, ir.AtLeast):
        lines = [(depth, f"at least {cond.count} of:")]
        for item in cond.items:
            lines.extend(outline(item, depth + 1))
        return lines
    if isinstance(cond, ir.Clause):
        window = window_words(cond.window)
        head = f"item {cond.label}" + (f" ({window})" if window else "")
        lines = [(depth, head + ":")]
        lines.extend(outline(cond.condition, depth + 1))
        return lines
    if isinstance(cond, ir.Not) and isinstance(cond.item, (ir.AnyOf, ir.AllOf)) and len(cond.item.items) > 1:
        lines = [(depth, "none of:" if isinstance(cond.item, ir.AnyOf) else "not all of:")]
        for item in cond.item.items:
            lines.extend(outline(item, depth + 1))
        return lines
    return [(depth, describe(cond))]


def limit_words(rule: ir.Rule) -> str:
    """`each of strips to 2 units within 3 months, excess denied`: a limit as written."""
    lim = rule.limit
    if isinstance(lim.amount, (int, float)):
        amount = _number(lim.amount)
    else:
        amount = f"({operand(lim.amount)})"
    if lim.period == "rolling":
        span = f"within {_number(lim.length)} {lim.length_unit}"
    elif lim.period == "line":
        span = "per line"
    else:
        span = "per calendar " + lim.period.split("_", 1)[1]
    text = f"{'each of ' if lim.each else ''}{targets(rule.targets)} to {amount} {lim.unit} {span}"
    if lim.excess:
        text += ", excess denied"
    if rule.category != "not_reasonable_and_necessary":
        text += f" as {CATEGORY_WORDS[rule.category]}"
    return text


def window_words(window: ir.Window) -> str:
    parts = []
    if window.effective is not None:
        parts.append(f"effective {window.effective.isoformat()}")
    if window.until is not None:
        parts.append(f"until {window.until.isoformat()}")
    return ", ".join(parts)


def decision(rule: ir.Rule) -> str:
    """The decision a rule makes, in words: `deny E0776 as not reasonable and necessary`."""
    if rule.kind == "cover":
        return f"cover {targets(rule.targets)}"
    if rule.kind == "deny":
        return f"deny {targets(rule.targets)} as {CATEGORY_WORDS[rule.category]}"
    if rule.kind == "refer":
        if rule.refer_policy is not None:
            return f"refer {targets(rule.targets)} to policy {rule.refer_policy}"
        return f'refer {targets(rule.targets)} to "{rule.refer_to}"'
    if rule.kind == "limit":
        return "limit " + limit_words(rule)
    if rule.kind == "otherwise":
        return f"otherwise deny as {CATEGORY_WORDS[rule.category]}"
    if rule.kind == "follow":
        return (
            f"{targets(rule.bases)} administer {targets(rule.targets)} else {rule.served_fact}; "
            f"{targets(rule.dependents)} follow the {rule.base_noun} else {rule.owned_fact}"
        )
    return rule.kind


# The outcome a rule of each kind gives the line it decides (a limit denies what exceeds it).
OUTCOMES = {"cover": "covered", "deny": "denied", "refer": "refer", "limit": "denied", "otherwise": "denied"}


def outcome_of_kind(kind: str) -> str:
    return OUTCOMES[kind]
