"""Coverage of a policy by its test cases: the rules evaluated, the criteria (nodes of a rule's
condition) seen true and seen false, and the HCPCS codes and ICD-10-CM entries the cases exercised."""

from __future__ import annotations

from dataclasses import dataclass

from medpol.authoring.policytests.load import _shown
from medpol.compiler.interpret import InterpretedPredicates, TraceNode, rule_condition
from medpol.compiler.resolve import normalize_icd
from medpol.compiler.words import describe, limit_words, window_words
from medpol.dsl import ir


@dataclass(frozen=True)
class Criterion:
    """One node of a rule's condition, as coverage counts it."""

    rule: str
    path: tuple  # positions from the root of the rule's condition; ("limit",) for a limit's count
    text: str
    clause: str | None = None

    @property
    def where(self) -> str:
        return ".".join(str(p) for p in self.path) if self.path else "root"

    def describe(self) -> str:
        clause = f"  <{self.clause}>" if self.clause else ""
        return f"{self.rule} [{self.where}] {self.text}{clause}"


@dataclass
class _Node:
    path: tuple
    text: str
    clause: str | None
    constant: bool
    children: list[_Node]
    unit: tuple = ()


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class PolicyCoverage:
    """What a policy's test cases exercised: rules, criteria seen true and false, codes.

    A criterion is a node of a rule's whole condition (its sections' requirements and its own
    `when`), as the explanation tree shows it: the whole condition, each item, each branch of
    an any-of, each condition of an all-of, each criteria set; a limit's count is one more.
    A chain of nodes with one child each (an item with one condition, a `not`) is one
    criterion, and a condition that is always true (`deny E1399`) is none.
    """

    def __init__(self, policy):
        model = policy.model
        self.policy_id = policy.id
        self.label = _shown(policy.label)
        self.cases = 0
        self.other_revision_cases = 0  # cases decided under the revision known at a date: not counted
        self.rules = [rule.id for rule in model.rules]
        self.evaluated: set[str] = set()
        self._kinds = {rule.id: rule.kind for rule in model.rules}
        self._trees: dict[str, _Node] = {}
        self.criteria: dict[tuple, Criterion] = {}
        for rule in model.rules:
            if rule.kind in ("otherwise", "follow"):
                continue
            tree = self._build(rule_condition(rule), rule.id, (), model, root=True)
            _assign_units(tree, None)
            constant = set()
            _constant_units(tree, constant)
            self._trees[rule.id] = tree
            for node in _walk_static(tree):
                if node.path == node.unit and node.unit not in constant:
                    self.criteria[(rule.id, node.path)] = Criterion(rule.id, node.path, node.text, node.clause)
            if rule.kind == "limit":
                self.criteria[(rule.id, ("limit",))] = Criterion(
                    rule.id, ("limit",), f"over the limit of {limit_words(rule).split(' to ', 1)[1]}"
                )
        self.seen_true: set[tuple] = set()
        self.seen_false: set[tuple] = set()

        # Base items and the lines that follow them are decided through the relation, not by
        # naming them, so they are added here to count as codes the policy decides.
        self.codes: dict[str, list[str]] = {}
        for rule in model.rules:
            for code in model.targets.get(rule.id, {}):
                self.codes.setdefault(code, []).append(rule.id)
        if model.follow is not None:
            for code in list(model.bases) + list(model.dependents):
                names = self.codes.setdefault(code, [])
                if model.follow.id not in names:
                    names.append(model.follow.id)
        self.codes_seen: set[str] = set()

        # Entries as the policy writes them, so a report names what an author can find in the file.
        self.dx_entries: list[tuple[str, str, str, str]] = []  # (set, as written, lo, hi)
        for code_set in model.policy.code_sets:
            if code_set.kind != "diagnoses":
                continue
            for entry in code_set.entries:
                if isinstance(entry, ir.Ref):
                    continue
                lo = normalize_icd(entry.code)
                hi = normalize_icd(entry.last) if entry.last else lo
                written = f"{entry.code}-{entry.last}" if entry.last else entry.code
                self.dx_entries.append((code_set.name, written, lo, hi))
        self.dx_seen: set[int] = set()

    # ------------------------------------------------------------ the criteria of a rule

    def _build(self, cond, owner: str, path: tuple, model, root: bool = False) -> _Node:
        """The condition tree as the interpreter traces it: a node's children are, in order,
        the trace node's children, so the two can be walked side by side."""
        clause = None
        if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
            items = cond.items
            word = {ir.AllOf: "all of", ir.AnyOf: "any of"}.get(type(cond), f"at least {getattr(cond, 'count', '')} of")
            text = describe(cond) if len(items) == 1 else f"{word}: {describe(cond)}"
            if root:
                text = f"whole condition: {describe(cond)}"
            children = [self._build(item, owner, path + (i,), model) for i, item in enumerate(items)]
        elif isinstance(cond, ir.Not):
            text = describe(cond)
            children = [self._build(cond.item, owner, path + (0,), model)]
        elif isinstance(cond, ir.Clause):
            clause = f"{owner}.{cond.name}"
            window = window_words(cond.window)
            text = f"item {cond.label}" + (f" ({window})" if window else "")
            if cond.passages:
                text += f' "{_clip(cond.passages[0].text, 60)}"'
            children = [self._build(item, owner, path + (i,), model) for i, item in enumerate(cond.condition.items)]
        elif isinstance(cond, ir.Truth) and cond.name in model.criteria:
            crit = model.criteria[cond.name]
            text = f"{crit.title} ({crit.name})"
            children = [self._build(item, crit.name, path + (i,), model) for i, item in enumerate(crit.condition.items)]
        else:
            text = describe(cond)
            children = []
        return _Node(path, _clip(text), clause, isinstance(cond, ir.Always), children)

    # ------------------------------------------------------------ recording

    def record(self, claim, decision: dict, evaluations: list[tuple[str, TraceNode]]) -> None:
        """Count one case: its claim's codes and diagnoses, and every rule evaluation it made."""
        self.cases += 1
        if isinstance(claim, dict):
            for line in claim.get("lines") or ():
                if isinstance(line, dict) and isinstance(line.get("hcpcs"), str):
                    code = line["hcpcs"].strip().upper()
                    if code in self.codes:
                        self.codes_seen.add(code)
            for dx in claim.get("diagnoses") or ():
                if isinstance(dx, str):
                    self._record_dx(normalize_icd(dx.strip()))
        for rule_id, node in evaluations:
            self.evaluated.add(rule_id)
            tree = self._trees.get(rule_id)
            if tree is not None and node is not None:
                self._record_node(rule_id, tree, node)
        # Rules that decide without a condition of their own (otherwise, follow) and the
        # count of a limit appear only in the lines' traces.
        for line in decision.get("lines", ()):
            for step in line.get("trace") or ():
                self.evaluated.add(step.rule)
                if step.counted and self._kinds.get(step.rule) == "limit":
                    # The engine reads a limit's condition only for a line past the limit, so
                    # an entry with a condition node is a line over it.
                    self._see((step.rule, ("limit",)), step.node is not None)

    def _record_dx(self, code: str) -> None:
        for index, (_, _, lo, hi) in enumerate(self.dx_entries):
            if lo <= code[: len(lo)] <= hi:
                self.dx_seen.add(index)

    def _record_node(self, rule_id: str, static: _Node, node: TraceNode) -> None:
        if static.path == static.unit:
            self._see((rule_id, static.path), node.value)
        for s_child, t_child in zip(static.children, node.children, strict=False):
            self._record_node(rule_id, s_child, t_child)

    def _see(self, key: tuple, value) -> None:
        if key not in self.criteria:
            return
        if value is True:
            self.seen_true.add(key)
        elif value is False:
            self.seen_false.add(key)

    # ------------------------------------------------------------ figures

    @property
    def both(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_true and k in self.seen_false]

    @property
    def only_true(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_true and k not in self.seen_false]

    @property
    def only_false(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_false and k not in self.seen_true]

    @property
    def never(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k not in self.seen_true and k not in self.seen_false]

    @property
    def percent(self) -> float:
        """Criteria seen both true and false, in percent of all criteria (100 when there are none)."""
        return 100.0 * len(self.both) / len(self.criteria) if self.criteria else 100.0

    @property
    def rules_never_evaluated(self) -> list[str]:
        return [r for r in self.rules if r not in self.evaluated]

    @property
    def codes_never_seen(self) -> list[str]:
        return [c for c in self.codes if c not in self.codes_seen]

    @property
    def dx_never_seen(self) -> list[str]:
        return [f"{name} {written}" for i, (name, written, _, _) in enumerate(self.dx_entries) if i not in self.dx_seen]

    def summary(self) -> str:
        """The criteria figure, e.g. `criteria: 152 of 180 seen both true and false (84.4%)`."""
        return f"criteria: {len(self.both)} of {len(self.criteria)} seen both true and false ({self.percent:.1f}%)"

    def report(self) -> str:
        total_rules = len(self.rules)
        evaluated = total_rules - len(self.rules_never_evaluated)
        head = f"coverage of {self.policy_id} ({self.label}) by {self.cases} case{'s' if self.cases != 1 else ''}"
        if self.other_revision_cases:
            head += f" ({self.other_revision_cases} more, decided under an earlier revision with known_at, not counted)"
        out = [head + ":"]
        line = f"  rules: {evaluated} of {total_rules} evaluated at least once"
        if self.rules_never_evaluated:
            line += "; never evaluated: " + ", ".join(self.rules_never_evaluated)
        out.append(line)
        out.append(
            f"  {self.summary()}; {len(self.only_true)} seen only true, {len(self.only_false)} only false, "
            f"{len(self.never)} never reached"
        )
        out.append(
            "    (a criterion is a node of a rule's condition as the explanation tree shows it: the whole condition,"
        )
        out.append(
            "     each item, each branch of an any-of, each condition of an all-of, each criteria set, a limit's count;"
        )
        out.append("     a chain of single conditions counts once, per rule; conditions always true are left out)")
        for title, items in (
            ("never reached (neither true nor false)", self.never),
            ("never seen true (seen false only)", self.only_false),
            ("never seen false (seen true only)", self.only_true),
        ):
            if items:
                out.append(f"  {title}: {len(items)}")
                out.extend(f"    {c.describe()}" for c in items)
        seen_codes = len(self.codes) - len(self.codes_never_seen)
        line = f"  HCPCS codes: {seen_codes} of {len(self.codes)} named by rules appear on a test line"
        if self.codes_never_seen:
            line += "; never: " + ", ".join(self.codes_never_seen)
        out.append(line)
        seen_dx = len(self.dx_entries) - len(self.dx_never_seen)
        line = f"  ICD-10-CM entries: {seen_dx} of {len(self.dx_entries)} matched by a test diagnosis"
        if self.dx_never_seen:
            line += "; never: " + ", ".join(self.dx_never_seen)
        out.append(line)
        return "\n".join(out)


def _assign_units(node: _Node, unit: tuple | None) -> None:
    node.unit = node.path if unit is None else unit
    single = len(node.children) == 1
    for child in node.children:
        _assign_units(child, node.unit if single else None)


def _constant_units(node: _Node, into: set) -> None:
    if node.constant:
        into.add(node.unit)
    for child in node.children:
        _constant_units(child, into)


def _walk_static(node: _Node):
    yield node
    for child in node.children:
        yield from _walk_static(child)


class _Recorder:
    """The reference interpreter's predicates, keeping every rule evaluation and its trace.

    A line's own trace leaves out what was evaluated for a base item the member owns and for
    the items a base line serves besides the one that decided it; recording here misses none.
    """

    def __init__(self, model):
        self._interpreted = InterpretedPredicates(model)
        self.evaluations: list[tuple[str, TraceNode]] = []

    def __getitem__(self, rule_id: str):
        return self._interpreted[rule_id]

    def trace(self, rule_id: str, ctx):
        value, node = self._interpreted.trace(rule_id, ctx)
        self.evaluations.append((rule_id, node))
        return value, node
