"""Decide claims: each line, as of its date of service, with the rules that decided it.

The order of work follows the policy's own relations. A base item (a device) is decided
first, by the items it serves (`infusion_pumps administer drugs`); the items that depend
on it then follow its decision (`drugs, pump_supplies follow the pump`), each as of its
own date of service; lines whose outcomes a condition reads come before the lines that
read them; every line walks the rules in the policy's declared precedence, and the first rule
that holds decides, unless a rule before it could not be evaluated for want of a
fact that would decide differently, in which case the line is pending.
"""

from __future__ import annotations

import datetime
import functools
import math
import operator
from typing import Any, NamedTuple

import msgspec

from medpol.compiler.decision import DecisionGenerator, function_name
from medpol.compiler.interpret import TraceNode, TraceStep
from medpol.compiler.load import load_function, policy_traceback
from medpol.compiler.plan import UNKNOWN_SERVED, Kind, Planner, decision_of, in_effect, rule_key
from medpol.compiler.resolve import Model, in_members, resolve_targets
from medpol.compiler.runtime import NO_LOOKBACK, NOTHING, LineContext, last_day_of_month, period_start
from medpol.dsl import ir
from medpol.engine.claims import Claim, ClaimError, Line, LineError, read_claim
from medpol.engine.errors import depends_error, error_decision, line_error
from medpol.engine.facts import FactError, FactReader
from medpol.engine.failed import FailedCriteria


class _Roles(NamedTuple):
    """What a code is in a policy's relations. Each of base, governed and dependent is True
    or False, or None when effective windows make the answer depend on the line's date."""

    base: bool | None  # decided by the items it serves
    governed: bool | None  # some rule decides it
    dependent: bool | None  # follows its base
    served: bool  # an item bases serve, in effect or not
    kept: bool  # its outcome is read by a condition on another line


class _Shape(NamedTuple):
    """What follows from the codes of a claim's lines, in order, alone."""

    served: tuple[str, ...]  # the items the claim's lines serve, each once, in claim order
    order: tuple[int, ...] | None  # the order lines are decided in, when not the claim's


class _Prepared(LineContext, kw_only=True, eq=False):
    """A valid claim line, ready to decide: the context its conditions read (its facts merged
    with the claim's, its decision day), with its place in the claim, its line as read, its
    code and the roles of its code (Engine.roles). One Struct a line, built in C."""

    index: int
    line: Line
    code: str
    roles: _Roles


class _ClaimPlan(NamedTuple):
    """How a claim with these codes is decided, when nothing about that depends on its dates
    or a line in error: worked out from the first such claim decided in full."""

    codes: tuple[str, ...]
    served: tuple[str, ...]  # the item the claim's bases serve
    roles: tuple[_Roles, ...]  # of each line
    bases: tuple[tuple[int, Any, str], ...]  # (line, its compiled decision, the item it serves)
    lines: tuple[tuple[int, Any], ...]  # (line, its compiled decision or None: not governed), in order


def prepare_line(
    claim: Claim, line: Line, index: int, facts: dict, day, codes: tuple, status: dict, lookback, roles: _Roles | None
) -> _Prepared:
    """A claim's line made ready to decide as of `day`: the context its conditions read, with
    `facts` (the claim's, or merged with the line's own), the outcomes of lines already decided
    (`status`) and what look-backs read (`lookback`, the claim's run)."""
    return _Prepared(
        facts,
        day,
        claim.diagnoses,
        codes,
        line.modifiers,
        line.units,
        claim.birth_date,
        claim.line_of_business,
        claim.supplier_licensed_in_state,
        line.place_of_service,
        status,
        line.seq,
        lookback,
        index=index,
        line=line,
        code=line.hcpcs,
        roles=roles,
    )


def _static(members, code: str) -> bool | None:
    """Whether `code` is among `members` whatever the date: None when that depends on the date."""
    if code not in members:
        return False
    return True if members[code] is None else None


# Kinds of line remembered under their own names besides their canonical ones: enough for
# every code and served item of a policy, and a bound whatever codes claims bring.
_MANY_KINDS = 4096


def _key(decision: dict) -> tuple:
    return (decision["outcome"], decision.get("category"), decision.get("refer_to"))


class Engine:
    """Decides claims under one compiled policy.

    `predicates[rule_id](ctx)` evaluates a rule's condition; `tracer`, when given,
    is the interpreter, used instead to record why each rule held or failed.
    """

    def __init__(self, model: Model, predicates, reasons: dict[str, dict], tracer=None):
        self.model = model
        self.policy_id = model.policy.id
        self.revision = model.policy.revision.number if model.policy.revision else None
        self.predicates = {
            rule.id: predicates[rule.id] for rule in model.rules if rule.kind not in ("otherwise", "follow")
        }
        self.reasons = reasons
        self.failed = FailedCriteria(model, reasons)
        self.tracer = tracer
        self.rules = model.rules
        self.targets = model.targets
        self.served = model.served
        self.governed = model.governed
        self.facts = FactReader(model)
        follow = model.follow
        self.follow = follow
        self.bases = model.bases
        self.dependents = model.dependents
        self.served_fact = follow.served_fact if follow else None
        self.owned_fact = follow.owned_fact if follow else None
        self.planner = Planner(model)
        self._plans: dict[Kind, tuple] = {}
        # The compiled decision of each kind of line met so far (compiler.decision), made
        # when a line of that kind is first decided.
        self._decisions: dict[Kind, Any] = {}
        # By code, the compiled decision of a line that is governed, and a dependent or not,
        # whatever its date: what most lines need, found with one look-up (never when tracing).
        self._line_decisions: dict[str, Any] = {}
        self._generator: DecisionGenerator | None = None
        self.amounts = {
            rule.id: predicates[("amount", rule.id)]
            for rule in model.rules
            if rule.kind == "limit" and not isinstance(rule.limit.amount, (int, float))
        }
        # Codes whose lines' outcomes a condition reads (`E0791 is covered`): decided first.
        self.reads = _outcome_reads(model)
        # The codes whose lines' outcomes some condition reads: only theirs are kept.
        self.outcomes_kept = frozenset(code for codes in self.reads.values() for code in codes)
        # The library this policy is decided in, which answers `meets CRITERIA of POLICY`.
        self.library = None
        self._roles: dict[str, _Roles] = {}
        self._shapes: dict[tuple[str, ...], _Shape] = {}
        self._claim_plans: dict[tuple, _ClaimPlan | None] = {}

    def _shape(self, codes: tuple[str, ...], prepared: list[_Prepared]) -> _Shape:
        """What follows from the codes of a claim's lines alone, worked out once per list of codes."""
        # A served line is a line of an item the relation names, in effect on its date or
        # not: a base serving an item the policy does not (yet) cover is decided by it.
        served = tuple(dict.fromkeys(p.code for p in prepared if p.roles.served))
        reads = self.reads
        order = None
        if reads and ("*" in reads or any(code in reads for code in codes)):
            position = {id(p): i for i, p in enumerate(prepared)}
            order = tuple(position[id(p)] for p in _reading_order(prepared, reads))
        shape = _Shape(served, order)
        if len(self._shapes) < _MANY_KINDS:
            self._shapes[codes] = shape
        return shape

    def roles(self, code: str) -> _Roles:
        """The roles of a code in this policy's relations, worked out once per code."""
        roles = self._roles.get(code)
        if roles is None:
            roles = _Roles(
                _static(self.bases, code),
                _static(self.governed, code),
                _static(self.dependents, code) if self.follow is not None else False,
                code in self.served,
                code in self.outcomes_kept,
            )
            if len(self._roles) < _MANY_KINDS:
                self._roles[code] = roles
        return roles

    def plan(self, kind: Kind) -> tuple:
        """The rules that can decide a line of this kind, in precedence order (compiler.plan)."""
        return self._per_kind(self._plans, kind, self.planner.plan)

    def decision(self, kind: Kind):
        """The compiled decision of a line of this kind: `fn(run, p, ctx, day) -> dict`."""
        return self._per_kind(self._decisions, kind, self._compile)

    def _per_kind(self, cache: dict, kind: Kind, make):
        """What `make` builds for a kind of line, built once for its canonical kind: kinds of
        codes no rule names share it, so there are as many as the policy's codes."""
        found = cache.get(kind)
        if found is None:
            canonical = self.planner.canonical(kind)
            found = cache.get(canonical)
            if found is None:
                found = cache[canonical] = make(canonical)
            if len(cache) < _MANY_KINDS:
                cache[kind] = found
        return found

    def decision_source(self, kind: Kind) -> str:
        """The Python source of a kind of line's compiled decision, as a reviewer reads it."""
        return self._generate(kind)[0]

    def _generate(self, kind: Kind):
        if self._generator is None:
            served_fact = self.follow.served_fact if self.follow is not None else None
            self._generator = DecisionGenerator(self.model.policy, served_fact, self.reasons, self.predicates)
        return self._generator.function(kind, self.plan(kind))

    def _compile(self, kind: Kind):
        source, lines = self._generate(kind)
        data = dict(self._generator.data)
        data["FAILED"] = self.failed
        return load_function(source, data, self.model.policy.path, function_name(kind), dict(lines))

    # ------------------------------------------------------------ claims

    def decide(self, raw: Any, as_of: datetime.date | None = None) -> dict:
        """One claim in, one decision out; a malformed claim gets an `error` decision."""
        try:
            claim = read_claim(raw)
        except ClaimError as err:
            return self._claim_error(
                err.claim_id if err.claim_id is not None else _claim_id(raw), err.field, err.message
            )
        return self.decide_claim(claim, as_of)

    def decide_claim(self, claim: Claim, as_of: datetime.date | None = None) -> dict:
        """Decide a claim already read (a library reads each claim once for all its policies)."""
        try:
            claim_facts, warnings = self.facts.read_claim_facts(claim.facts)
        except FactError as err:
            return self._claim_error(claim.id, err.field, err.message)
        try:
            return self._decide(claim, claim_facts, warnings, as_of)
        except Exception as err:
            # A failure inside generated code names the policy line it encodes.
            policy_traceback(err)
            raise

    def _claim_error(self, claim_id, field: str, message: str) -> dict:
        return error_decision(claim_id, message, field=field, under=(self.policy_id, self.revision))

    def _decide(self, claim: Claim, claim_facts: dict, warnings: list[str], as_of) -> dict:
        codes = tuple(map(_HCPCS, claim.lines))
        plan = self._claim_plans.get(codes)
        if plan is not None:
            out = self._run_plan(plan, claim, claim_facts, warnings, as_of)
            if out is not None:
                return self._claim_decision(claim, out, warnings)
        out: list[dict | None] = [None] * len(claim.lines)
        prepared: list[_Prepared] = []
        bases: list[_Prepared] = []  # the base lines, decided first
        run = _ClaimRun(self, claim, prepared, bases)
        roles_of = self._roles
        for index, line in enumerate(claim.lines):
            if line.__class__ is LineError:
                if line.hcpcs is not None and line.hcpcs not in self.governed:
                    # A code no rule of this policy decides is not this policy's to reject.
                    out[index] = {"seq": line.seq, "hcpcs": line.hcpcs, "outcome": "not_applicable"}
                    continue
                out[index] = line_error(line.seq, line.hcpcs, line.field, line.message)
                continue
            facts = claim_facts
            if line.facts:
                try:
                    facts, line_warnings = self.facts.merge_line_facts(claim_facts, line.facts, f"lines[{index}].facts")
                except FactError as err:
                    out[index] = line_error(line.seq, line.hcpcs, err.field, err.message)
                    continue
                warnings.extend(line_warnings)
            code = line.hcpcs
            roles = roles_of.get(code) or self.roles(code)
            # The claim's codes are known once every line is read.
            p = prepare_line(claim, line, index, facts, as_of or line.service_date, (), run.status, run, roles)
            prepared.append(p)
            if roles.base or (roles.base is None and in_members(self.bases, code, p.day)):
                bases.append(p)

        if len(prepared) < len(codes):
            codes = tuple([p.code for p in prepared])  # the codes of the lines read
        for p in prepared:
            p.codes = codes
        shape = self._shapes.get(codes) or self._shape(codes, prepared)
        run.codes = codes
        run._served = shape.served
        broken_bases: list[dict] = []
        broken_served: list[dict] = []
        if len(prepared) < len(out):
            # A line in error still says what it was: dependents depend on their base, and a
            # base on the items it serves, so those lines cannot be decided without it. A line
            # whose code could not be read may be either.
            broken_bases = [d for d in out if d is not None and (d["hcpcs"] is None or d["hcpcs"] in self.bases)]
            broken_served = [d for d in out if d is not None and (d["hcpcs"] is None or d["hcpcs"] in self.served)]
        for p in bases:
            out[p.index] = _depends(p, broken_served) or run.decide_base(p)
        order = prepared if shape.order is None else [prepared[i] for i in shape.order]
        dependents = self.dependents
        for p in order:
            if out[p.index] is None:
                if broken_bases or broken_served:
                    needs = []
                    if p.code in dependents:
                        needs = broken_bases + (broken_served if p.code not in self.served else [])
                    broken = _depends(p, needs)
                    if broken is not None:
                        out[p.index] = broken
                        continue
                out[p.index] = run.decide_line(p)
        # A line refers back to the run (for look-backs), which holds the lines: let go of
        # it, so the claim's objects are freed as soon as it is decided, not by the cyclic
        # collector.
        for p in prepared:
            p.lookback = NO_LOOKBACK
        if codes not in self._claim_plans and len(prepared) == len(out):
            self._plan_claim(codes, prepared, shape)
        return self._claim_decision(claim, out, warnings)

    def _plan_claim(self, codes: tuple[str, ...], prepared: list[_Prepared], shape: _Shape) -> None:
        """Remember how claims with these codes are decided, when that is the same for every
        one of them: each code's roles whatever the date, bases serving the one item the
        claim names, and every compiled decision made."""
        plan = None
        roles = tuple(p.roles for p in prepared)
        static = all(r.base is not None and r.governed is not None and r.dependent is not None for r in roles)
        if self.tracer is None and static:
            bases, lines = [], []
            order = prepared if shape.order is None else [prepared[i] for i in shape.order]
            # As `_decide` goes: the bases first, in claim order, then the other lines in order.
            for p in [q for q in prepared if q.roles.base] + [q for q in order if not q.roles.base]:
                r = p.roles
                if r.base:
                    subject = shape.served[0] if len(shape.served) == 1 else None
                    decide = self._decisions.get((p.code, subject, True, False, False))
                    bases.append((p.index, decide, subject))
                elif r.governed:
                    decide = self._decisions.get((p.code, p.code, False, r.dependent, False))
                    lines.append((p.index, decide))
                else:
                    decide = _NOT_GOVERNED
                    lines.append((p.index, None))
                if decide is None:
                    break
            else:
                plan = _ClaimPlan(codes, shape.served, roles, tuple(bases), tuple(lines))
        if len(self._claim_plans) < _MANY_KINDS:
            self._claim_plans[codes] = plan

    def _run_plan(
        self, plan: _ClaimPlan, claim: Claim, claim_facts: dict, warnings: list[str], as_of
    ) -> list[dict] | None:
        """The decisions of a claim's lines by its plan, as `_decide` would make them, and the
        warnings of its lines' own facts added to `warnings`; None when a line is in error
        (decide the claim in full then, which says so)."""
        prepared: list[_Prepared] = []
        run = _ClaimRun(self, claim, prepared, [])
        status, codes, roles = run.status, plan.codes, plan.roles
        line_warnings: list[str] = []
        for index, line in enumerate(claim.lines):
            facts = claim_facts
            if line.__class__ is not Line:
                prepared.clear()  # the lines made so far refer to the run, which holds them
                return None
            if line.facts:
                try:
                    facts, more = self.facts.merge_line_facts(claim_facts, line.facts, f"lines[{index}].facts")
                except FactError:
                    prepared.clear()
                    return None
                line_warnings.extend(more)
            day = as_of or line.service_date
            prepared.append(prepare_line(claim, line, index, facts, day, codes, status, run, roles[index]))
        warnings.extend(line_warnings)
        run.codes = codes
        run._served = plan.served
        out: list = [None] * len(prepared)
        run.bases.extend(prepared[index] for index, _, _ in plan.bases)
        for index, decide, subject in plan.bases:
            # As decide_base does, for the one item the bases serve.
            p = prepared[index]
            p.served = subject
            decision = run._base_cache[(index, subject, None, None)] = decide(run, p, p, p.day)
            if p.roles.kept:
                status.setdefault(p.code, []).append(_status(decision))
            out[index] = _finish(p, decision)
        for index, decide in plan.lines:
            p = prepared[index]
            if decide is None:
                out[index] = _finish(p, {"outcome": "not_applicable"})  # as decide_line does
                continue
            p.served = p.code
            decision = decide(run, p, p, p.day)
            if p.roles.kept:
                status.setdefault(p.code, []).append(_status(decision))
            out[index] = _finish(p, decision)
        for p in prepared:
            p.lookback = NO_LOOKBACK
        return out

    def _claim_decision(self, claim: Claim, out: list, warnings: list[str]) -> dict:
        decision = {"claim": claim.id, "policy": self.policy_id, "revision": self.revision, "lines": out}
        if claim.ignored_fields:
            warnings = [f"`{f}` is not a field of a claim and was ignored" for f in claim.ignored_fields] + warnings
        if warnings:
            decision["warnings"] = warnings
        return decision


def _claim_id(raw):
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return raw["id"]
    return None


class _ClaimRun:
    """The work of deciding one claim: shared state between its lines."""

    # One is made for every claim: slots make it without an attribute dict.
    __slots__ = (
        "e",
        "claim",
        "prepared",
        "codes",
        "_lines",
        "_history",
        "status",
        "bases",
        "_base_cache",
        "_followed",
        "_served",
        "_other_facts",
        "_asking",
    )

    def __init__(self, engine: Engine, claim: Claim, prepared: list[_Prepared], bases: list[_Prepared]):
        self.e = engine
        self.claim = claim
        self.prepared = prepared  # filled as the lines are read
        self.codes: tuple[str, ...] = ()  # the codes of the lines, once read
        self._lines: tuple | None = None
        self._history: tuple | None = None
        self.status: dict[str, list] = {}
        self.bases = bases  # the base lines, in claim order
        self._base_cache: dict[tuple, dict] = {}
        self._followed: dict[tuple, dict] = {}  # what the lines that follow a base follow
        self._served: tuple[str, ...] = ()  # the items the claim's lines serve, once read
        # Made only when a condition reads another policy's criteria: most claims never do.
        self._other_facts: dict[tuple, dict | None] | None = None
        self._asking: set[tuple[str, str]] | None = None

    # ------------------------------------------------------------ contexts

    def other_day(self, p: _Prepared, day: datetime.date) -> _Prepared:
        """The line's context as of another day, its own: the line keeps its own context."""
        return msgspec.structs.replace(p, day=day, hits=[], served=None, owned=False)

    def criteria_of(self, policy: str, name: str, ctx: LineContext):
        """Another policy's named criteria for this line: its facts read as that policy
        declares them, as of the line's date (compiler.runtime.criteria_of)."""
        unknown = frozenset((f"{policy}.{name}",))
        library = self.e.library
        other = library.policies.get(policy) if library is not None else None
        criteria = other.criteria_functions.get(name) if other is not None else None
        if self._asking is None:
            self._asking, self._other_facts = set(), {}
        if criteria is None or (policy, name) in self._asking:
            return unknown
        facts = self._facts_of(other, ctx.seq)
        if facts is None:
            return unknown
        octx = LineContext(
            facts,
            ctx.day,
            ctx.dx,
            ctx.codes,
            ctx.modifiers,
            ctx.units,
            ctx.birth_date,
            ctx.line_of_business,
            ctx.licensed,
            ctx.place_of_service,
            {},  # other lines' outcomes are this policy's, not the other's
            ctx.seq,
            self,
        )
        self._asking.add((policy, name))
        try:
            return criteria(octx, facts, [])
        finally:
            self._asking.discard((policy, name))

    def _facts_of(self, other, seq) -> dict | None:
        key = (other.id, seq)
        if key not in self._other_facts:
            reader = other.engine.facts
            try:
                facts, _ = reader.read_claim_facts(self.claim.facts)
                line = next((p.line for p in self.prepared if p.line.seq == seq), None)
                if line is not None and line.facts:
                    facts, _ = reader.merge_line_facts(facts, line.facts, "line")
            except FactError:
                facts = None  # the claim's own policy reports a malformed fact
            self._other_facts[key] = facts
        return self._other_facts[key]

    # What look-back conditions read (compiler.runtime.Lookback), built when one asks.
    @property
    def lines(self) -> tuple:
        if self._lines is None:
            self._lines = tuple((p.code, p.day, p.line.seq, p.line.units) for p in self.prepared)
        return self._lines

    @property
    def history(self) -> tuple:
        if self._history is None:
            self._history = tuple((h.hcpcs, h.service_date, h.units) for h in self.claim.history)
        return self._history

    def subjects(self, p: _Prepared) -> tuple[str, ...] | list[str]:
        """The items a base (or the lines that follow it) serves on this claim."""
        if self._served:
            return self._served
        named = p.facts.get(self.e.served_fact) if self.e.served_fact else None
        return [named] if named else [UNKNOWN_SERVED]

    # ------------------------------------------------------------ lines

    def decide_base(self, p: _Prepared) -> dict:
        decisions = [self.base_for(p, subject) for subject in self.subjects(p)]
        decision = decisions[0] if len(decisions) == 1 else _combine(decisions)
        if p.roles.kept:
            self.status.setdefault(p.code, []).append(_status(decision))
        return _finish(p, decision)

    def base_for(self, p: _Prepared, subject: str, virtual: str | None = None, day=None) -> dict:
        """The base line `p` decided for one served item, as of `day` (by default its own date)."""
        key = (p.index, subject, virtual, day)
        found = self._base_cache.get(key)
        if found is None:
            found = self.walk(p, subject=subject, base=True, virtual=virtual, day=day)
            self._base_cache[key] = found
        return found

    def decide_line(self, p: _Prepared) -> dict:
        e = self.e
        code, roles = p.code, p.roles
        decide = e._line_decisions.get(code)
        if decide is not None:
            # A code decided by rules whatever the date, its compiled decision already made.
            decision = self._decide_as(p, decide)
            if roles.kept:
                self.status.setdefault(code, []).append(_status(decision))
            return _finish(p, decision)
        governed = roles.governed
        if governed is None:
            governed = in_members(e.governed, code, p.day)
        if not governed:
            return _finish(p, {"outcome": "not_applicable"})
        dependent = roles.dependent
        if dependent is None:
            dependent = in_members(e.dependents, code, p.day)
        decide = e._decisions.get((code, code, False, dependent, False)) if e.tracer is None else None
        if decide is not None:
            if roles.governed is not None and roles.dependent is not None and len(e._line_decisions) < _MANY_KINDS:
                e._line_decisions[code] = decide
            decision = self._decide_as(p, decide)
        else:
            decision = self.walk(p, subject=code, base=False, dependent=dependent)
        if roles.kept:
            self.status.setdefault(code, []).append(_status(decision))
        return _finish(p, decision)

    def _decide_as(self, p: _Prepared, decide) -> dict:
        """A line decided by its kind's compiled decision, as `walk` would with it at hand."""
        p.hits = []
        p.served = p.code
        p.owned = False
        return decide(self, p, p, p.day)

    def the_base(self, p: _Prepared) -> dict:
        """The decision of the base this line follows, for the item on this line."""
        e = self.e
        is_served = in_members(e.served, p.code, p.day)
        bases = self.bases
        if bases:
            # Lines of one item on one date follow their bases alike (and every line not of
            # a served item, alike): asked once.
            key = (p.code if is_served else None, p.day)
            found = self._followed.get(key)
            if found is None:
                found = self._followed[key] = self._bases_for(p, bases, is_served)
            return found
        owned = p.facts.get(e.owned_fact) if e.owned_fact else None
        if owned is None and e.owned_fact and not e.facts.has_default(e.owned_fact):
            return {"outcome": "pending", "missing": [e.owned_fact]}
        if not owned:
            return {
                "outcome": "denied",
                "category": "not_reasonable_and_necessary",
                "reasons": [self.e.reasons[e.follow.id]],
                "note": f"no {e.follow.base_noun} is billed or owned",
            }
        subjects = [p.code] if is_served else self.subjects(p)
        decision = _combine([self.base_for(p, s, virtual=owned) for s in subjects])
        return {**decision, "base": {"hcpcs": owned, "owned": True}}

    def _bases_for(self, p: _Prepared, bases: list[_Prepared], is_served: bool) -> dict:
        # The base is asked as of this line's own date of service: a drug served before
        # a rule took effect is not covered by it because its pump was served later.
        if len(bases) == 1:
            # The common claim: one base, serving this line's item or the one item it serves.
            q = bases[0]
            subjects = (p.code,) if is_served else self.subjects(q)
            if len(subjects) == 1:
                decision = self.base_for(q, subjects[0], day=None if p.day == q.day else p.day)
                return {**decision, "base": {"seq": q.line.seq, "hcpcs": q.code}}
        if is_served:
            found = [(q, self.base_for(q, p.code, day=_unless(p.day, q.day))) for q in bases]
        else:
            found = [(q, self.base_for(q, s, day=_unless(p.day, q.day))) for q in bases for s in self.subjects(q)]
        if len(found) == 1:
            q, decision = found[0]
        else:
            decision = _combine([d for _, d in found])
            # The base line whose decision this is (a pending one stands for all pending).
            q = next((q for q, d in found if d is decision or d["outcome"] == decision["outcome"]), found[0][0])
        return {**decision, "base": {"seq": q.line.seq, "hcpcs": q.code}}

    def walk(
        self, p: _Prepared, subject: str, base: bool, dependent: bool = False, virtual: str | None = None, day=None
    ) -> dict:
        """Walk the rules in precedence order; the first that holds decides."""
        e = self.e
        # The member's own base is decided in a context of its own, so the line that
        # follows it keeps its own.
        if virtual is None and day is None:
            ctx = p
            ctx.hits = []
        else:
            ctx = self.other_day(p, day or p.day)
        ctx.served = None if subject == UNKNOWN_SERVED else subject
        ctx.owned = virtual is not None
        day = day or p.day
        code = virtual if virtual is not None else p.code
        if e.tracer is None:
            # A plain tuple looks up the same entry as its Kind, without building one.
            decide = e._decisions.get((code, subject, base, dependent, virtual is not None))
            if decide is None:
                decide = e.decision(Kind(code, subject, base, dependent, virtual is not None))
            return decide(self, p, ctx, day)
        line_kind = Kind(code, subject, base, dependent, virtual is not None)
        unknown: list[tuple[tuple, frozenset]] = []
        partial: tuple | None = None  # (allowed units, limit rule) of the smallest allowance so far
        tried_covers: list[str] = []
        not_yet: list[tuple[ir.Rule, list]] = []  # coverage rules not in effect on the day
        own_covers: list[tuple[str, list]] = []
        trace: list = []  # the compiled decision does not trace: only the interpreter's walk does
        for rule, kind, windows in e.plan(line_kind):
            if windows is not None and not all(in_effect(w, day) for w in windows):
                if kind == "cover":
                    not_yet.append((rule, windows))
                continue
            if kind == "follow":
                decided = self.follow_base(p, rule, own_covers, trace)
                if decided["outcome"] == "pending":
                    unknown.append((("pending-base",), frozenset(decided["missing"])))
                    continue
                return self.settle(decided, unknown, trace=trace)
            if kind == "otherwise":
                trace.append(TraceStep(rule.id, True))
                decided = {
                    "outcome": "denied",
                    "category": rule.category,
                    "reasons": [e.reasons[rule.id]] + [e.reasons[r] for r in tried_covers],
                }
                return self.settle(
                    decided,
                    unknown,
                    lambda: e.failed.of_windows(not_yet) + e.failed.of_covers(tried_covers, ctx),
                    trace,
                )
            if kind == "unknown-served":
                # The rule decides the base by the item it serves, and the claim does not say which.
                unknown.append((rule_key(rule), frozenset((e.served_fact,))))
                continue
            if kind == "limit":
                # Count first: the limit's condition matters only for a line past the limit,
                # so the facts it reads are asked for only then.
                allowed, counted = self._allowance(rule, p, ctx)
                if allowed is None:
                    trace.append(TraceStep(rule.id, False, counted=counted))
                    continue
                if isinstance(allowed, frozenset):
                    unknown.append((rule_key(rule), allowed))
                    continue
                value = self._value(rule, p, ctx, trace, counted)
                if value is True and rule.limit.excess and allowed > 0:
                    # Only the excess is denied: the line goes on to be decided for the rest.
                    if partial is None or allowed < partial[0]:
                        partial = (allowed, rule)
                    continue
                if value is True:
                    decided = self._outcome(rule, list(ctx.hits))
                    if rule.limit.excess:
                        decided.update(allowed_units=0, denied_units=p.line.units)
                    return self.settle(decided, unknown, lambda rule=rule: e.failed.of_holding(rule, ctx), trace)
                if value is not False:
                    unknown.append((rule_key(rule), value))
                continue
            value = self._value(rule, p, ctx, trace)
            if value is False:
                if kind == "cover":
                    tried_covers.append(rule.id)
                continue
            if kind == "cover" and dependent:
                # A dependent is covered with its base, not on its own: remember
                # what held, for the reasons, and let the follow rule decide.
                if value is True:
                    own_covers.append((rule.id, list(ctx.hits)))
                continue
            if value is not True:
                unknown.append((rule_key(rule), value))
                continue
            decided = self._outcome(rule, list(ctx.hits))
            if partial is not None and decided["outcome"] == "covered":
                decided.update(self.paid_in_part(p, *partial))
            return self.settle(decided, unknown, lambda rule=rule: e.failed.of_holding(rule, ctx), trace)
        if unknown:
            return self.settle(None, unknown, trace=trace)
        return {"outcome": "not_applicable", "trace": trace}

    def _value(self, rule: ir.Rule, p: _Prepared, ctx: LineContext, trace, counted: str | None = None):
        ctx.hits = []
        value, node = self.e.tracer.trace(rule.id, ctx)
        trace.append(TraceStep(rule.id, value, node, counted))
        return value

    # What compiled decisions (compiler.decision) and `walk` call: the work shared by every kind of line.

    def allowance(self, rule: ir.Rule, p: _Prepared, ctx: LineContext):
        return self._allowance(rule, p, ctx)[0]

    def follow_base(self, p: _Prepared, rule: ir.Rule, own_covers, trace: list | None = None) -> dict:
        """The decision of a line that follows its base (`rule`), with the dependent's own
        coverage rules that held; `trace`, when explaining, gets the step."""
        e = self.e
        base = self.the_base(p)
        if trace is not None:
            trace.append(TraceStep(rule.id, base["outcome"]))
        if base["outcome"] == "covered":
            reasons = []
            for rule_id, hits in own_covers:
                reasons.append(e.reasons[rule_id])
                reasons.extend(e.reasons[h] for h in hits)
            reasons.append(e.reasons[rule.id])
            if not own_covers:
                reasons.extend(base.get("reasons", ()))
            return {"outcome": "covered", "reasons": _dedupe(reasons)}
        if base["outcome"] == "pending":
            return {"outcome": "pending", "missing": base["missing"]}
        decided = {k: v for k, v in base.items() if k not in ("reasons", "trace", "note")}
        if "reasons" in base or decided["outcome"] == "denied":
            decided["reasons"] = _dedupe([e.reasons[rule.id]] + list(base.get("reasons", ())))
        if decided["outcome"] == "denied" and "failed" not in decided:
            # No base billed or owned: the relation itself is what failed.
            owned = {e.owned_fact: p.facts.get(e.owned_fact)} if e.owned_fact else {}
            decided["failed"] = [{**e.failed.entry(rule.id), "facts": owned}]
        return decided

    def _outcome(self, rule: ir.Rule, hits: list[str]) -> dict:
        return decision_of(rule, [self.e.reasons[rule.id]] + [self.e.reasons[h] for h in hits])

    def settle(self, decided: dict | None, unknown, failed=None, trace: list | None = None) -> dict:
        """The decision of a rule that holds (None when none did), unless an earlier rule that
        could not be evaluated might decide otherwise: then the line is pending.

        `failed` names the failed criteria of a denial; it is asked only once the denial
        stands, since naming them costs an evaluation of their own. `trace`, when explaining,
        is kept in the decision.
        """
        settled = decided is not None
        if settled and unknown:
            mine = _key(decided)
            denied = mine[0] == "denied"
            # A rule that could not be evaluated would decide the same (a denial, whatever its category).
            settled = all(key == mine or (denied and key[0] == "denied") for key, _ in unknown)
        if settled:
            if failed is not None and decided["outcome"] == "denied":
                decided["failed"] = failed()
            if trace is not None:
                decided["trace"] = trace
            return decided
        missing: set[str] = set()
        for _, lacking in unknown:
            missing.update(lacking)
        pending = {"outcome": "pending", "missing": sorted(missing)}
        if trace is not None:
            pending["trace"] = trace
        return pending

    def _allowance(self, rule: ir.Rule, p: _Prepared, ctx: LineContext):
        """The units of this line within the rule's limit: None when the whole line fits.

        Also returns, when tracing for an explanation, what was counted. The count is of the codes the
        rule names (or, with `each of`, of this line's code alone) in the limit's period:
        the member's history, and this claim's lines up to this one (an earlier date of
        service, or the same date and a lower seq), with their billed units whatever their
        outcome. A computed amount that lacks a fact gives the frozenset of those facts.
        """
        e = self.e
        limit = rule.limit
        day = p.day
        members = {p.code: None} if limit.each else e.targets[rule.id]
        if limit.unit == "days":
            start = _bounds(limit, day)[0]
            days = {
                h.service_date
                for h in self.claim.history
                if start <= h.service_date <= day and in_members(members, h.hcpcs, h.service_date)
            }
            days.update(q.day for q in self.prepared if start <= q.day <= day and in_members(members, q.code, q.day))
            allowed = None if len(days) <= limit.amount else 0
            if e.tracer is None:
                return allowed, None
            return allowed, f"{len(days)} days of service {_period_words(limit, day)}; the limit is {limit.amount:g}"
        amount = limit.amount
        if rule.id in e.amounts:
            amount = e.amounts[rule.id](ctx)
            if isinstance(amount, frozenset):
                return amount, "the limit's amount needs " + ", ".join(sorted(amount))
            if amount is NOTHING or amount != amount:  # nothing, or not a number (NaN)
                return None, "the limit's amount has no value"
            if amount == _INFINITY:
                return None, "the limit's amount is past any number of units"
            amount = math.floor(amount) if amount != -_INFINITY else 0
        cap = amount
        if limit.unit == "vials":
            cap = amount * e.model.vial_units.get(p.code, 1)
        used = 0
        if limit.period != "line":
            # A calendar period counts every earlier claim in it; a rolling one ends on this day.
            start, end = _bounds(limit, day)
            used = sum(
                h.units
                for h in self.claim.history
                if start <= h.service_date <= end and in_members(members, h.hcpcs, h.service_date)
            )
            mine = (day, p.line.seq)
            used += sum(
                q.line.units
                for q in self.prepared
                if start <= q.day and (q.day, q.line.seq) < mine and in_members(members, q.code, q.day)
            )
        units = p.line.units
        allowed = min(units, max(0, cap - used))
        allowed = None if allowed >= units else allowed
        if e.tracer is None:
            return allowed, None  # the words of the count are for explanations only
        words = _period_words(limit, day)
        return allowed, f"{used:g} units {words} before this line's {units:g}; the limit is {cap:g} units"

    def paid_in_part(self, p: _Prepared, allowed, rule: ir.Rule) -> dict:
        return {
            "allowed_units": allowed,
            "denied_units": p.line.units - allowed,
            "denied_category": rule.category,
            "denied_reasons": [self.e.reasons[rule.id]],
        }


@functools.lru_cache(maxsize=4096)
def _period(period: str, length, length_unit, day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The first and last day of a limit's period that holds `day` (a rolling one ends on it).

    Cached: a batch asks it of the same few hundred dates of service over and over.
    """
    if period == "rolling":
        return period_start(day, length, length_unit), day
    if period == "calendar_month":
        return day.replace(day=1), day.replace(day=last_day_of_month(day.year, day.month))
    if period == "calendar_quarter":
        first = 3 * ((day.month - 1) // 3) + 1
        last = first + 2
        return datetime.date(day.year, first, 1), datetime.date(day.year, last, last_day_of_month(day.year, last))
    if period == "calendar_year":
        return datetime.date(day.year, 1, 1), datetime.date(day.year, 12, 31)
    return day, day


def _bounds(limit: ir.Limit, day: datetime.date) -> tuple[datetime.date, datetime.date]:
    return _period(limit.period, limit.length, limit.length_unit, day)


def _period_words(limit: ir.Limit, day: datetime.date) -> str:
    if limit.period == "rolling":
        return f"in the {limit.length:g} {limit.length_unit} ending {day.isoformat()}"
    if limit.period == "line":
        return "on this line"
    start, end = _bounds(limit, day)
    return f"in {start.isoformat()} to {end.isoformat()}"


def _outcome_reads(model: Model) -> dict[str, frozenset[str]]:
    """For each code, the codes whose lines' outcomes the rules that decide it read.

    A rule over `all lines` may decide any code; its reads are kept under "*".
    """
    reads: dict[str, set[str]] = {}
    for rule in model.rules:
        found: set[str] = set()
        for cond in rule.requires + (rule.condition,):
            _outcomes_read(model, cond, found)
        if not found:
            continue
        codes = ("*",) if rule.targets.all_lines else model.targets.get(rule.id, ())
        for code in codes:
            reads.setdefault(code, set()).update(found)
    return {code: frozenset(found) for code, found in reads.items()}


def _outcomes_read(model: Model, cond, found: set[str], seen: frozenset = frozenset()) -> None:
    """Add to `found` the codes whose lines' outcomes `cond` reads, through the criteria it meets."""
    m = model
    for node in ir.walk(cond):
        if isinstance(node, ir.LineOutcome):
            found.update(resolve_targets(node.codes, m.code_sets, m.drug_tables, m.drugs, m.drug_codes, lambda _: None))
        elif isinstance(node, ir.Truth) and node.name in m.criteria and node.name not in seen:
            _outcomes_read(m, m.criteria[node.name].condition, found, seen | {node.name})


def _reading_order(prepared: list[_Prepared], reads: dict[str, frozenset[str]]) -> list[_Prepared]:
    """The lines in claim order, except that a line comes after the lines whose outcomes it reads.

    Lines that read each other (a cycle) keep their claim order. A depth-first walk with a
    stack of its own: a recursive closure would make each claim's order a reference cycle.
    """
    everywhere = reads.get("*", frozenset())
    by_code: dict[str, list[_Prepared]] = {}
    for p in prepared:
        by_code.setdefault(p.code, []).append(p)
    order: list[_Prepared] = []
    placed: set[int] = set()
    for first in prepared:
        if first.index in placed:
            continue
        # Each frame: the line, and the lines it reads still to place before it.
        visiting = {first.code}
        stack = [(first, _read_lines(first, reads, everywhere, by_code))]
        while stack:
            p, pending = stack[-1]
            q = next((q for q in pending if q.index not in placed and q.code not in visiting), None)
            if q is None:
                stack.pop()
                visiting.discard(p.code)
                if p.index not in placed:
                    placed.add(p.index)
                    order.append(p)
                continue
            pending.remove(q)
            visiting.add(q.code)
            stack.append((q, _read_lines(q, reads, everywhere, by_code)))
    return order


def _read_lines(p: _Prepared, reads, everywhere, by_code) -> list[_Prepared]:
    """The other lines whose outcomes the rules deciding `p` read, in claim order of their codes."""
    codes = sorted(reads.get(p.code, frozenset()) | everywhere)
    return [q for code in codes if code != p.code for q in by_code.get(code, ())]


def _status(decision: dict) -> tuple:
    """What conditions on other lines read of a decided line: outcome, category, missing, rule."""
    reasons = decision.get("reasons")
    return (
        decision["outcome"],
        decision.get("category"),
        decision.get("missing", ()),
        reasons[0]["rule"] if reasons else None,
    )


def _unless(day: datetime.date, same: datetime.date) -> datetime.date | None:
    """`day`, or None when it is `same` (so decisions on a line's own date are shared)."""
    return None if day == same else day


def _combine(decisions: list[dict]) -> dict:
    """A base serving several items is covered if one of them covers it."""
    for d in decisions:
        if d["outcome"] == "covered":
            return d
    pending = [d for d in decisions if d["outcome"] == "pending"]
    if pending:
        missing = sorted({m for d in pending for m in d["missing"]})
        return {**pending[0], "missing": missing}
    return decisions[0]


def _dedupe(reasons: list[dict]) -> list[dict]:
    """Each rule's passage once, where it is first cited."""
    if len(set(map(_RULE, reasons))) == len(reasons):
        return reasons  # the common case, told without a Python loop
    first: dict[str, dict] = {}
    for r in reasons:
        first.setdefault(r["rule"], r)
    return list(first.values())


_RULE = operator.itemgetter("rule")
_INFINITY = math.inf
_HCPCS = operator.attrgetter("hcpcs")
_NOT_GOVERNED: Any = object()  # a line no rule decides, in a claim's plan


def _depends(p: _Prepared, broken: list[dict]) -> dict | None:
    """An `error` for a line that cannot be decided because a line it depends on is in error."""
    return depends_error(p.line.seq, p.code, broken[0]) if broken else None


# The fields of a line's decision after its seq, code and outcome, in the contract's order.
_LINE_KEYS = (
    "category",
    "refer_to",
    "missing",
    "reasons",
    "failed",
    "base",
    "allowed_units",
    "denied_units",
    "denied_category",
    "denied_reasons",
    "trace",
)
# The fields a decision has, as its keys come, to those a line's decision shows, in order
# (None when they are all of them, outcome first and in that order already): a batch meets
# the same few shapes of decision over and over.
_SHOWN: dict[tuple, tuple | None] = {}
_UNSEEN: Any = object()


def _finish(p: _Prepared, decision: dict) -> dict:
    out = {"seq": p.line.seq, "hcpcs": p.code}
    has = tuple(decision)
    shown = _SHOWN.get(has, _UNSEEN)
    if shown is _UNSEEN:
        shown = tuple(key for key in _LINE_KEYS if key in decision)
        if has == ("outcome", *shown):
            shown = None
        if len(_SHOWN) < _MANY_KINDS:
            _SHOWN[has] = shown
    if shown is None:
        out.update(decision)  # one call in C, where copying field by field is a Python loop
        return out
    out["outcome"] = decision["outcome"]
    for key in shown:
        out[key] = decision[key]
    return out


__all__ = ["Engine", "TraceNode", "TraceStep", "prepare_line"]
