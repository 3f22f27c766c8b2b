"""Which rules can decide a kind of line, in precedence order, with the windows to test.

A line is decided by walking the rules in the policy's precedence; which of them can
reach a line depends only on its code and how it stands in the policy's relation (a base
decided for the item it serves, a dependent that follows its base, the member's own base
standing in), never on the claim. So the walk is planned once per kind of line, and only
the effective windows are left to test on the line's date. The plan is what the compiled
decision of a code is generated from (compiler.decision), and what the engine walks when
it traces a decision with the interpreter (medpol.engine.decide).
"""

from __future__ import annotations

from typing import NamedTuple

from medpol.compiler.resolve import Members, Model, resolve_targets
from medpol.compiler.words import outcome_of_kind
from medpol.dsl import ir

UNKNOWN_SERVED = "?"  # a base line whose served item the claim does not say
OTHER = "*"  # a code no rule names, as a kind of line stands for every such code


class Kind(NamedTuple):
    """A kind of line: its code, the item it is decided for, and its place in the relation."""

    code: str
    subject: str  # the item the line is about: its own code, or for a base the item it serves
    base: bool  # a base line, decided by the item it serves
    dependent: bool  # a line that follows its base
    owned: bool  # the member's own base, standing in for a base line the claim does not bill


class Step(NamedTuple):
    """One rule of a plan: how it applies to this kind of line, and the windows it needs.

    `kind` is the rule's kind, or "unknown-served" for a rule that decides a base by the
    item it serves when the claim does not say which. `windows` are the rule's own window
    and the windows in which its code sets name the code, all of which must hold; None
    when the rule is always in effect for this line.
    """

    rule: ir.Rule
    kind: str
    windows: tuple | None


class Planner:
    def __init__(self, model: Model):
        self.model = model
        # Whether a rule can reach a base line through the item it serves. A rule that
        # also names other dependents speaks of the lines it names, not of the base.
        self.by_served = {rule.id: _by_served(model.targets.get(rule.id, {}), model) for rule in model.rules}
        # `all lines except ...`: the codes each such rule leaves alone.
        self.all_but = {
            rule.id: resolve_targets(
                ir.Targets(rule.targets.exclude),
                model.code_sets,
                model.drug_tables,
                model.drugs,
                model.drug_codes,
                lambda ref: None,
            )
            for rule in model.rules
            if rule.targets.all_lines and rule.targets.exclude
        }

        # Every code a rule names: a code or served item outside them plans like any other.
        self.named = {code for members in model.targets.values() for code in members}
        self.named.update(code for codes in self.all_but.values() for code in codes)

    def canonical(self, kind: Kind) -> Kind:
        """The kind whose plan is this kind's: a code or served item no rule names (a
        member's own base, or a served item a claim's facts name) stands for all such.

        So the kinds of line, and the decisions compiled for them, stay as many as the
        policy's codes, whatever codes the claims bring.
        """
        code, subject = kind.code, kind.subject
        if code not in self.named:
            code = OTHER
        if subject != UNKNOWN_SERVED and subject not in self.named:
            subject = OTHER
        return kind if (code, subject) == (kind.code, kind.subject) else kind._replace(code=code, subject=subject)

    def plan(self, kind: Kind) -> tuple[Step, ...]:
        code, subject, base, dependent, owned = kind
        steps = []
        for rule in self.model.rules:
            rule_kind = rule.kind
            windows: list = [] if rule.window.always else [rule.window]
            if rule_kind == "follow":
                if dependent:
                    steps.append(Step(rule, rule_kind, tuple(windows) or None))
                continue
            if rule_kind == "otherwise":
                steps.append(Step(rule, rule_kind, tuple(windows) or None))
                continue
            members = self.model.targets[rule.id]
            if rule.targets.all_lines:
                if owned or code in self.all_but.get(rule.id, ()):
                    continue
                steps.append(Step(rule, rule_kind, tuple(windows) or None))
                continue
            own = code in members
            via_served = (
                base
                and rule_kind != "limit"
                and self.by_served[rule.id]
                and (subject == UNKNOWN_SERVED or subject in members)
            )
            if own:
                if members[code] is not None:
                    windows.append(members[code])
                steps.append(Step(rule, rule_kind, tuple(windows) or None))
            elif via_served and subject == UNKNOWN_SERVED:
                steps.append(Step(rule, "unknown-served", tuple(windows) or None))
            elif via_served:
                if members[subject] is not None:
                    windows.append(members[subject])
                steps.append(Step(rule, rule_kind, tuple(windows) or None))
        return tuple(steps)

    def kinds(self) -> list[Kind]:
        """The kinds of line a claim of the policy's own codes meets: each governed code as a
        line of its own, and each base for each item it serves (or none it names)."""
        m = self.model
        found = []
        for code in m.governed:
            if code in m.bases:
                found.extend(Kind(code, served, True, False, False) for served in m.served)
                found.append(Kind(code, UNKNOWN_SERVED, True, False, False))
                continue
            found.append(Kind(code, code, False, m.follow is not None and code in m.dependents, False))
        return found


def rule_key(rule: ir.Rule) -> tuple:
    """What a rule would decide: two rules of one key decide alike."""
    outcome = outcome_of_kind(rule.kind)
    if outcome == "covered":
        return ("covered", None, None)
    if outcome == "refer":
        return ("refer", None, rule.refer_to)
    return ("denied", rule.category, None)


def decided_by(rule: ir.Rule) -> dict:
    """What a rule that holds decides, before the reasons it cites: its outcome, with a
    denial's category or a referral's policy."""
    outcome = outcome_of_kind(rule.kind)
    if outcome == "covered":
        return {"outcome": "covered"}
    if outcome == "refer":
        return {"outcome": "refer", "refer_to": rule.refer_to}
    return {"outcome": "denied", "category": rule.category}


def decision_of(rule: ir.Rule, reasons: list[dict]) -> dict:
    """The decision a rule that holds makes, citing `reasons` (its own passage first)."""
    return {**decided_by(rule), "reasons": reasons}


def in_effect(window, day) -> bool:
    """A rule's window, or the windows in which a code set names the code."""
    if isinstance(window, tuple):
        return any(w.contains(day) for w in window)
    return window.contains(day)


def _by_served(members: Members, model: Model) -> bool:
    names_served = any(code in model.served for code in members)
    names_other = any(code in model.dependents and code not in model.served for code in members)
    return names_served and not names_other
