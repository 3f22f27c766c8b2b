"""Compare a decision with a case's expectations, and the compiled policy's decision with the
reference interpreter's, in words a policy author reads."""

from __future__ import annotations

from medpol.authoring.policytests.load import Case, ClaimErrorExpectation, _units_words
from medpol.compiler.words import category_words


def line_words(line: dict) -> str:
    """A decided line's outcome as a reviewer reads it: `denied (not reasonable and necessary)`."""
    outcome = line.get("outcome")
    if outcome == "covered" and "allowed_units" in line:
        return f"covered ({_units_words(line['allowed_units'], line['denied_units'])})"
    if outcome == "denied":
        category = line.get("category")
        return f"denied ({category_words(category)})"
    if outcome == "refer":
        return f"refer to {line.get('refer_to')}"
    if outcome == "pending":
        return f"pending (needs {', '.join(line.get('missing') or ())})"
    if outcome == "error":
        return f"error ({line.get('message')})"
    return str(outcome).replace("_", " ")


def differences(case: Case, decision: dict) -> list[str]:
    """Every way the decision differs from the case's expectations, in line order; each names the
    case and points at the expectation it breaks (`FILE:LINE:COL: case #N "name", line 2: ...`)."""
    expect = case.expect
    if isinstance(expect, ClaimErrorExpectation):
        if decision.get("outcome") != "error":
            got = ", ".join(f"line {ln.get('seq')} {line_words(ln)}" for ln in decision.get("lines", ()))
            return [f"{case.heading(expect.at)}: expected a claim error, got line decisions ({got})"]
        if expect.message and expect.message not in str(decision.get("message")):
            got = decision.get("message")
            return [f"{case.heading(expect.at)}: expected a claim error mentioning `{expect.message}`, got: {got}"]
        return []
    if decision.get("outcome") == "error":
        return [f"{case.heading()}: expected line decisions, got a claim error: {decision.get('message')}"]
    lines = {ln.get("seq"): ln for ln in decision.get("lines", ())}
    found: list[str] = []
    for exp in expect:
        where = f"{case.heading(exp.at)}, line {exp.seq}"
        got = lines.get(exp.seq)
        if got is None:
            found.append(f"{where}: expected {exp.words()}, but the claim has no line {exp.seq}")
            continue
        if (
            got.get("outcome") != exp.outcome
            or (exp.category is not None and got.get("category") != exp.category)
            or (exp.refer_to is not None and got.get("refer_to") != exp.refer_to)
            or (exp.missing is not None and sorted(got.get("missing") or ()) != sorted(exp.missing))
            or (exp.message is not None and exp.message not in str(got.get("message")))
            or (exp.allowed_units is not None and got.get("allowed_units") != exp.allowed_units)
            or (exp.denied_units is not None and got.get("denied_units") != exp.denied_units)
        ):
            found.append(f"{where}: expected {exp.words()}, got {line_words(got)}")
            continue
        cited = [r.get("rule") for r in got.get("reasons", ())]
        absent = [r for r in exp.rules if r not in cited]
        if absent:
            found.append(
                f"{where}: expected rule {', '.join(absent)} among the reasons, got {', '.join(cited) or 'no reasons'}"
            )
    return found


def _disagreement(case: Case, compiled: dict, interpreted: dict) -> str | None:
    """Where the compiled predicates and the reference interpreter decide a line differently."""

    def key(line):
        return (line.get("outcome"), line.get("category"), line.get("refer_to"), sorted(line.get("missing") or ()))

    if compiled.get("outcome") == "error" or interpreted.get("outcome") == "error":
        return None
    for a, b in zip(compiled.get("lines", ()), interpreted.get("lines", ()), strict=False):
        if key(a) != key(b):
            return (
                f"{case.heading()}, line {a.get('seq')}: the compiled policy decides {line_words(a)} "
                f"but the reference interpreter decides {line_words(b)}"
            )
    return None
