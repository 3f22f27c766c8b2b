"""The reference interpreter: evaluate IR conditions directly, optionally with a trace.

It is the specification the generated predicates are tested against, and it builds
the explanation tree for `--explain`; the compiled predicates are the fast path.
"""

from __future__ import annotations

import datetime

import attrs
import msgspec

from medpol.compiler import logic, runtime
from medpol.compiler.resolve import Model, coerce_value, resolve_targets
from medpol.compiler.types import shift_unit
from medpol.compiler.words import describe, window_words
from medpol.dsl import ir


class _Absent:
    """A clause whose effective window does not contain the day: decided without it."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


# The value that settles a group before its last item: a false item of an `all of`, a
# true one of an `any of`.
_SETTLES = {ir.AllOf: False, ir.AnyOf: True}
_NEVER = object()  # an `at least N of` is settled only by all its items
_GROUP_WORDS = {ir.AllOf: "all of", ir.AnyOf: "any of"}  # and `at least N of`


class _Cases(dict):
    """The evaluation of each type of condition node."""

    def __missing__(self, kind):
        raise TypeError(f"no evaluation for {kind.__name__}")


class TraceNode(msgspec.Struct):
    """One condition as evaluated: its words, its value, the facts it read, its parts.

    A Struct, built in C: naming a denial's failed criteria builds one for every node of
    the rules it evaluates again.
    """

    text: str
    value: object
    used: list = msgspec.field(default_factory=list)
    children: list = msgspec.field(default_factory=list)
    clause: str | None = None
    note: str | None = None
    criteria: str | None = None  # the named criteria this node evaluates
    window: object = None  # a numbered item's effective window


@attrs.frozen
class TraceStep:
    """One rule tried for a line, in precedence order, as an explanation shows it.

    `value` is what the rule's condition gave (True, False, or the facts it lacks; for a
    `follow`, the base's outcome); `node`, the interpreter's trace of the condition, when
    it was evaluated; `counted`, for a limit, what was counted against it, in words.
    """

    rule: str
    value: object
    node: TraceNode | None = None
    counted: str | None = None


def _fact(ctx: runtime.LineContext, name: str):
    value = ctx.facts.get(name)
    if value is None:
        value = runtime.builtin(ctx, name)
    return value


class Interpreter:
    """Evaluates one model's conditions; caches resolved code sets per node."""

    def __init__(self, model: Model, exhaustive: bool = False):
        self.model = model
        self._members: dict[int, object] = {}
        # Exhaustive: evaluate every item of a group, not only up to the first that settles
        # it, so that a denial can name every criterion that failed. Its trace is read by
        # the engine, not shown, so its nodes carry no text.
        self.exhaustive = exhaustive
        self._owned_name = model.owned_name  # worked out by the model on every ask

    def _fact(self, ctx: runtime.LineContext, name: str):
        if name == self._owned_name:
            return ctx.owned
        return _fact(ctx, name)

    def targets(self, t: ir.Targets):
        key = id(t)
        found = self._members.get(key)
        if found is None:
            m = self.model
            found = resolve_targets(t, m.code_sets, m.drug_tables, m.drugs, m.drug_codes, lambda ref: None)
            self._members[key] = found
        return found

    def evaluate(self, cond, ctx: runtime.LineContext, owner: str, trace: list | None = None):
        if trace is None:
            return _CASES[type(cond)](self, cond, ctx, owner, None)
        node = TraceNode(describe(cond) if not self.exhaustive else "", None)
        node.value = value = _CASES[type(cond)](self, cond, ctx, owner, node)
        trace.append(node)
        return value

    def _sub(self, cond, ctx, owner, node):
        return self.evaluate(cond, ctx, owner, node.children if node is not None else None)

    # One case per node type, found by the node's type (_CASES, below the class).

    def _always(self, cond, ctx, owner, node):
        return True

    def _not(self, cond, ctx, owner, node):
        value = self._sub(cond.item, ctx, owner, node)
        return True if value is ABSENT else logic.not_(value)

    def _clause(self, cond, ctx, owner, node):
        clause_id = f"{owner}.{cond.name}"
        if node is not None:
            node.clause = clause_id
            node.window = cond.window
            if not self.exhaustive:
                window = f" ({window_words(cond.window)})" if not cond.window.always else ""
                node.text = f"item {cond.label}{window}"
        if not cond.window.contains(ctx.day):
            if node is not None and not self.exhaustive:
                node.note = f"not in effect on {ctx.day.isoformat()}"
            return ABSENT
        value = self._group(cond.condition, ctx, owner, node)
        if value is True:
            ctx.hits.append(clause_id)
        return value

    def _truth(self, cond, ctx, owner, node):
        crit = self.model.criteria.get(cond.name)
        if crit is not None:
            if node is not None:
                node.text = crit.title
                node.criteria = crit.name
            return self._group(crit.condition, ctx, crit.name, node)
        value = self._fact(ctx, cond.name)
        self._used(node, cond.name, value)
        return frozenset((cond.name,)) if value is None else value is True

    def _is(self, cond, ctx, owner, node):
        value = self._fact(ctx, cond.name)
        self._used(node, cond.name, value)
        if value is None:
            return frozenset((cond.name,))
        ftype = self.model.fact_type(cond.name)
        if ftype is not None and ftype.kind == "date" and cond.value == "none":
            return (value is runtime.NO_EVENT) != cond.negated
        return (value == coerce_value(ftype, cond.value)) != cond.negated

    def _in(self, cond, ctx, owner, node):
        value = self._fact(ctx, cond.name)
        self._used(node, cond.name, value)
        if value is None:
            return frozenset((cond.name,))
        ftype = self.model.fact_type(cond.name)
        return value in tuple(coerce_value(ftype, v) for v in cond.values)

    def _diagnosis_in(self, cond, ctx, owner, node):
        sets = tuple(self.model.diagnosis_sets[r.name] for r in cond.sets if r.name in self.model.diagnosis_sets)
        self._used(node, "diagnoses", list(ctx.dx))
        return runtime.dx_in(ctx, sets)

    def _billed_with(self, cond, ctx, owner, node):
        other = self.targets(cond.other_than) if cond.other_than is not None else None
        self._used(node, "lines", list(ctx.codes))
        if cond.period is None:
            return runtime.billed_with(ctx, self.targets(cond.codes), other)
        self._used(node, "history", [code for code, _, _ in ctx.lookback.history])
        period = (cond.period.amount, cond.period.unit)
        return runtime.billed_with(ctx, self.targets(cond.codes), other, period)

    def _drug_in(self, cond, ctx, owner, node):
        self._used(node, "drug", ctx.served)
        fact = self.model.follow.served_fact if self.model.follow else "drug"
        return runtime.served_in(ctx, self.targets(cond.codes), frozenset((fact,)))

    def _line_outcome(self, cond, ctx, owner, node):
        codes = self.targets(cond.codes)
        rule = cond.by.name if cond.by is not None else None
        value = runtime.line_outcome(ctx, codes, cond.outcome, cond.category, rule)
        seen = [o for code, decided in ctx.status.items() if code in codes for o, _, _, _ in decided]
        self._used(node, "decided lines", seen or "not billed")
        return value

    def _has_modifier(self, cond, ctx, owner, node):
        self._used(node, "modifiers", list(ctx.modifiers))
        return cond.modifier in ctx.modifiers

    def _criteria_of(self, cond, ctx, owner, node):
        value = runtime.criteria_of(ctx, cond.policy, cond.name)
        self._used(node, f"{cond.policy} {cond.name}", value if isinstance(value, bool) else "unknown")
        return value

    def _within(self, cond, ctx, owner, node):
        missing: set[str] = set()
        subject = self._value(cond.subject, None, ctx, node, missing)
        anchor = self._value(cond.anchor, None, ctx, node, missing)
        if runtime.NO_EVENT in (subject, anchor):
            return False  # an event that did not happen is in no period
        if missing:
            return frozenset(missing)
        return runtime.within(subject, cond.amount, cond.unit, cond.direction, anchor)

    def _group(self, cond, ctx, owner, node):
        if node is not None and not self.exhaustive and not node.clause and len(cond.items) > 1:
            words = _GROUP_WORDS.get(type(cond))
            node.text = words if words is not None else f"at least {cond.count} of"
        mark = len(ctx.hits)
        values = []
        trace = node.children if node is not None else None
        # Stop where the outcome is settled, as the generated code does, so that the clauses
        # recorded as holding are the same on both paths; exhaustive evaluation goes on.
        settles = _NEVER if self.exhaustive else _SETTLES.get(type(cond), _NEVER)
        for item in cond.items:
            value = self.evaluate(item, ctx, owner, trace)
            if value is ABSENT:
                continue
            values.append(value)
            if value is settles:
                break
        if type(cond) is ir.AllOf:
            value = logic.all_of(values)
        elif type(cond) is ir.AnyOf:
            value = logic.any_of(values)
        else:
            value = logic.at_least(cond.count, values)
        if value is not True:
            # Clauses that held inside a group that did not hold decided nothing.
            del ctx.hits[mark:]
        return value

    def _value(self, operand, other, ctx, node, missing: set[str]):
        """An operand's value; a fact the claim lacks is added to `missing` (the value is then None)."""
        if isinstance(operand, ir.Quantity):
            return operand.value
        if isinstance(operand, ir.DateLiteral):
            return operand.value
        if isinstance(operand, ir.LineUnits):
            self._used(node, "units", ctx.units)
            return ctx.units
        if isinstance(operand, ir.EarlierUnits):
            period = operand.period
            value = runtime.earlier_units(ctx, self.targets(operand.codes), period.amount, period.unit)
            self._used(node, f"earlier units within {period.amount:g} {period.unit}", value)
            return value
        if isinstance(operand, ir.Arith):
            left = self._value(operand.left, operand.right, ctx, node, missing)
            right = self._value(operand.right, operand.left, ctx, node, missing)
            if runtime.NO_EVENT in (left, right):
                return runtime.NO_EVENT
            if left is None or right is None:
                return None
            return runtime.arith(operand.op, left, right, shift_unit(self.model, operand))
        if operand.name == "age":
            unit = other.unit if isinstance(other, ir.Quantity) else None
            value = runtime.age(ctx, unit)
            self._used(node, f"age in {unit or 'years'}", value)
            return value
        value = self._fact(ctx, operand.name)
        self._used(node, operand.name, value)
        if value is None:
            missing.add(operand.name)
        return value

    def _compare(self, cond, ctx, owner, node):
        missing: set[str] = set()
        left = self._value(cond.left, cond.right, ctx, node, missing)
        right = self._value(cond.right, cond.left, ctx, node, missing)
        if runtime.NO_EVENT in (left, right):
            return False  # an event that did not happen compares with nothing
        if missing:
            return frozenset(missing)
        return runtime.compare(cond.op, left, right)

    @staticmethod
    def _used(node, name, value):
        if node is not None:
            if value is runtime.NO_EVENT or value is runtime.NOTHING:
                value = "none"
            node.used.append((name, value.isoformat() if isinstance(value, datetime.date) else value))


# Unbound, so that an interpreter holds no references to itself.
_CASES = _Cases(
    {
        ir.Always: Interpreter._always,
        ir.AllOf: Interpreter._group,
        ir.AnyOf: Interpreter._group,
        ir.AtLeast: Interpreter._group,
        ir.Not: Interpreter._not,
        ir.Clause: Interpreter._clause,
        ir.Truth: Interpreter._truth,
        ir.Is: Interpreter._is,
        ir.In: Interpreter._in,
        ir.Compare: Interpreter._compare,
        ir.DiagnosisIn: Interpreter._diagnosis_in,
        ir.BilledWith: Interpreter._billed_with,
        ir.DrugIn: Interpreter._drug_in,
        ir.LineOutcome: Interpreter._line_outcome,
        ir.HasModifier: Interpreter._has_modifier,
        ir.CriteriaOf: Interpreter._criteria_of,
        ir.Within: Interpreter._within,
    }
)


def rule_condition(rule: ir.Rule) -> ir.AllOf:
    """A rule's whole condition: its sections' requirements, then its own `when`."""
    return ir.AllOf(tuple(rule.requires) + (rule.condition,), rule.span)


class InterpretedPredicates:
    """Rule predicates evaluated by the interpreter: `predicates[rule_id](ctx)`."""

    def __init__(self, model: Model):
        self.interpreter = Interpreter(model)
        self._conditions = {rule.id: rule_condition(rule) for rule in model.rules}
        self._shows = {rule.id: rule.shows for rule in model.rules if rule.shows}
        self._amounts = {
            rule.id: rule.limit.amount
            for rule in model.rules
            if rule.kind == "limit" and not isinstance(rule.limit.amount, (int, float))
        }

    def __getitem__(self, rule_id):
        interp = self.interpreter
        if isinstance(rule_id, tuple):  # ("amount", rule id): a limit's computed amount
            amount = self._amounts[rule_id[1]]

            def compute(ctx):
                missing: set[str] = set()
                value = interp._value(amount, None, ctx, None, missing)
                return frozenset(missing) if missing else value

            return compute
        cond = self._conditions[rule_id]

        def predicate(ctx):
            value = interp.evaluate(cond, ctx, rule_id)
            return True if value is ABSENT else value

        return predicate

    def trace(self, rule_id: str, ctx) -> tuple[object, TraceNode]:
        nodes: list[TraceNode] = []
        value = self.interpreter.evaluate(self._conditions[rule_id], ctx, rule_id, nodes)
        for shown in self._shows.get(rule_id, ()):
            # Shown for the reviewer beside the criteria; it does not take part in the decision.
            nodes[0].used.append((shown.name + " (shown)", ctx.facts.get(shown.name)))
        return (True if value is ABSENT else value), nodes[0]
