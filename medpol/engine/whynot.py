"""What would change a decision: for a denied or pending line, the least facts that cover it.

`why_not(policy, claim)` adds to each denied or pending line a `why_not` list, one entry per
alternative route to coverage:

    {"facts": {"infusion_hours": 8, "prolonged_infusion_efficacy_proven": true, ...},
     "route": "J. Blinatumomab (J.blinatumomab): Criteria set 1; item 3"}

or, for a route no fact can open (it needs a diagnosis, a code on the claim, a date of
service, an age, another line's outcome), what it needs instead:

    {"route": "External infusion pumps are commonly used for (commonly_used.deferoxamine)",
     "closed": "needs a diagnosis in chronic_iron_overload"}

A pending line also gets `missing_by_route`: for each route that sending facts the claim
lacks is enough to open, those facts.

How the routes are found:

1. The coverage rules that could decide the line (`Engine.plan`; for a base item, the rules
   of the items it serves; for a line that follows its base, the base's rules) are expanded
   into disjunctive routes, each a conjunction of atoms, named by the criteria, items and
   choices it takes.
2. Atoms no fact can change are evaluated on the claim: a false one closes the route. For
   the others, values are chosen that satisfy them: the boundary of a comparison (in the
   fact's own type and range), a value of a `one of` fact, a date within a period of another.
3. Every candidate is verified by deciding the claim again with its facts. A denial (or
   referral) rule that still fires, or still cannot be decided, is cleared by adding facts
   that negate its condition; a fact the line still lacks is tried with each value it can
   take. This search is bounded (MAX_DEPTH, MAX_BRANCHES, MAX_DECIDES).
4. Each verified candidate is minimised until no fact can be dropped (nor any set of the
   facts it changes from the claim's answers) with the line still covered, and routes that
   contain another route are dropped.

A route's facts are sent as the claim's answers (`with_facts`). What is exact: every route
offered has been verified by the engine itself (with its facts, the line is covered), and
no strict subset of it covers the line. The logic is three-valued and monotone in facts the
claim does not answer (giving an unknown fact a value cannot turn a covered line back), so
beyond dropping single facts only the sets of answers a route changes need trying; a route
whose minimising reaches its bound is not offered. What is bounded: the search for routes
(the bounds below), the values tried (the boundaries of each condition, and for a fact
naming the base a member owns or the item a base serves, one code of each kind the rules
tell apart, and only when the claim names none), and a route through another line's
outcome, which is named, not opened.
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import math
from typing import Any

from medpol.compiler import logic, runtime
from medpol.compiler.interpret import ABSENT, Interpreter, rule_condition
from medpol.compiler.plan import UNKNOWN_SERVED, Kind, in_effect
from medpol.compiler.resolve import Model, coerce_value, in_members, resolve_targets
from medpol.compiler.runtime import NO_EVENT, NOTHING, LineContext, Lookback
from medpol.compiler.types import shift_unit
from medpol.compiler.words import category_words, describe, limit_words, targets
from medpol.dsl import ir
from medpol.engine.claims import Claim, ClaimError, Line, read_claim
from medpol.engine.decide import prepare_line
from medpol.engine.facts import FactError

__all__ = ["describe_routes", "why_not", "with_facts"]

# Bounds of the search, per line. The routes of the encoded policies need far less; a
# bound reached leaves out routes it did not reach, never offers one that does not cover.
MAX_CONJUNCTIONS = 64  # disjunctive routes expanded from one rule's condition
MAX_DECIDES = 600  # claims decided again to verify candidates
MAX_MINIMISE = 1500  # claims decided again to minimise them
MAX_CHANGED = 8  # answers of the claim one route may change (their subsets are tried)
MAX_DEPTH = 4  # choices between ways out of denial rules, one after another on one route
MAX_BRANCHES = 4  # ways tried to clear one denial rule, or values tried for one missing fact
MAX_OPEN_PER_ROUTE = 4  # verified candidates kept for one route of a coverage rule

_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "==": "==", "!=": "!="}
_NEGATE = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!=", "!=": "=="}
_DATE_WORDS = {">=": "on or after", ">": "after", "<=": "on or before", "<": "before", "==": "on", "!=": "not on"}


# ---------------------------------------------------------------- the API


def why_not(policy, claim: dict, decision: dict | None = None, as_of: datetime.date | None = None) -> dict:
    """The decision with `why_not` (and, on pending lines, `missing_by_route`) on each
    denied or pending line.

    `policy` is a CompiledPolicy or a Library (each line then names the policy that decided
    it). `decision` is the claim's decision, made here when not given. A malformed claim or
    an `error` decision is returned unchanged.
    """
    if decision is None:
        decision = policy.decide(claim, as_of)
    if not isinstance(decision, dict) or decision.get("outcome") == "error":
        return decision
    lines = decision.get("lines")
    if not isinstance(lines, list):
        return decision
    try:
        read = read_claim(claim)
    except ClaimError:
        return decision
    if len(read.lines) != len(lines):
        return decision  # a decision of another claim
    out_lines = []
    for index, line in enumerate(lines):
        if not isinstance(line, dict) or line.get("outcome") not in ("denied", "pending"):
            out_lines.append(line)
            continue
        compiled = _policy_of(policy, line)
        if compiled is None or not isinstance(read.lines[index], Line) or read.lines[index].hcpcs != line.get("hcpcs"):
            out_lines.append(line)
            continue
        try:
            routes = _LineSearch(policy, compiled, claim, read, index, as_of, decision).routes()
        except FactError:
            out_lines.append(line)  # a fact the policy cannot read: the decision says so
            continue
        added = dict(line)
        added["why_not"] = routes
        if line["outcome"] == "pending":
            added["missing_by_route"] = _missing_by_route(routes, claim)
        out_lines.append(added)
    return {**decision, "lines": out_lines}


def with_facts(claim: dict, facts: dict) -> dict:
    """The claim with `facts` sent as its answers (a copy; the claim is not changed): each in
    the claim's facts, and in place of any line's own answer, which would hide the claim's.

    A line that follows its base is decided with the base line's facts, so a route's facts
    are the claim's, not one line's.
    """
    out = dict(claim)
    given = claim.get("facts")
    out["facts"] = {**(given if isinstance(given, dict) else {}), **facts}
    lines = []
    for line in claim.get("lines") or ():
        own = line.get("facts") if isinstance(line, dict) else None
        if isinstance(own, dict) and any(name in own for name in facts):
            line = {**line, "facts": {**own, **{n: v for n, v in facts.items() if n in own}}}
        lines.append(line)
    out["lines"] = lines
    return out


def describe_routes(routes: list[dict]) -> str:
    """A line's routes in one sentence: `ROUTE: fact value, ...; or ROUTE: needs ...`."""
    return "; or ".join(describe_route(route) for route in routes)


def describe_route(route: dict) -> str:
    """One route: `ROUTE: fact value, ...`, or `ROUTE: needs ...` for one no fact opens."""
    if "closed" in route:
        return f"{route['route']}: {route['closed']}"
    values = ", ".join(f"{name} {_say(value)}" for name, value in route["facts"].items())
    return f"{route['route']}: {values}"


def _say(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _policy_of(policy, line: dict):
    """The compiled policy that decided `line`: the policy itself, or the library's named one."""
    policies = getattr(policy, "policies", None)
    if isinstance(policies, dict):
        return policies.get(line.get("policy"))
    return policy if hasattr(policy, "model") and hasattr(policy, "engine") else None


def _missing_by_route(routes: list[dict], claim: dict) -> list[dict]:
    """For each route that sending facts the claim lacks opens, those facts: a route that
    also changes an answer the claim gives is not one the missing facts open."""
    answers = [claim.get("facts")] + [line.get("facts") for line in claim["lines"] if isinstance(line, dict)]
    sent = {name for given in answers if isinstance(given, dict) for name, value in given.items() if value is not None}
    return [
        {"route": route["route"], "missing": sorted(route["facts"])}
        for route in routes
        if "facts" in route and not sent.intersection(route["facts"])
    ]


def _json(value):
    """A fact value as a claim sends it."""
    if value is NO_EVENT:
        return "none"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------- routes as conjunctions


class _Atom:
    """A condition with no parts to expand, wanted true (or, `negated`, false)."""

    __slots__ = ("cond", "negated", "model", "names")

    def __init__(self, cond, negated: bool, model: Model):
        self.cond = cond
        self.negated = negated
        self.model = model
        self.names = _reads(cond, model)  # the declared facts that can change it


class _OutOfWindow:
    """An item of the policy not in effect on the line's date: no fact opens it."""

    __slots__ = ("clause", "names", "negated")

    def __init__(self, clause: ir.Clause):
        self.clause = clause
        self.names = frozenset()
        self.negated = False


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


_ABSENT = _Absent()  # an item left out on the line's date: its group is decided without it
_TRUE = [((), ())]  # the one empty conjunction: holds as it is


def _reads(cond, model: Model) -> frozenset[str]:
    if isinstance(cond, (ir.Truth, ir.Is, ir.In)):
        return frozenset((cond.name,)) if cond.name in model.facts else frozenset()
    if isinstance(cond, ir.Compare):
        return _operand_facts(cond.left, model) | _operand_facts(cond.right, model)
    if isinstance(cond, ir.Within):
        return _operand_facts(cond.subject, model) | _operand_facts(cond.anchor, model)
    return frozenset()


def _operand_facts(operand, model: Model) -> frozenset[str]:
    if isinstance(operand, ir.FactRef):
        return frozenset((operand.name,)) if operand.name in model.facts else frozenset()
    if isinstance(operand, ir.Arith):
        return _operand_facts(operand.left, model) | _operand_facts(operand.right, model)
    return frozenset()


def _product(lists: list[list], cap: int = MAX_CONJUNCTIONS) -> list:
    out = _TRUE
    for conjunctions in lists:
        out = [(a + b, p + q) for a, p in out for b, q in conjunctions][:cap]
        if not out:
            return []
    return out


class _Expander:
    """Expands conditions into disjunctive routes, as of one day, reading named criteria
    (and, in a library, other policies' criteria) where they are written."""

    def __init__(self, day: datetime.date, library):
        self.day = day
        self.library = library

    def expand(self, cond, negated: bool, model: Model, path: tuple = ()):
        """The conjunctions (atoms, words) whose disjunction is `cond` (or, `negated`, its negation)."""
        if isinstance(cond, ir.Always):
            return [] if negated else _TRUE
        if isinstance(cond, ir.Not):
            inner = self.expand(cond.item, not negated, model, path)
            if inner is _ABSENT:
                return [] if negated else _TRUE  # `not` an item left out holds, as the engine reads it
            return inner
        if isinstance(cond, ir.Clause):
            if not cond.window.contains(self.day):
                return _ABSENT
            return self.expand(cond.condition, negated, model, path + (cond.label,))
        if isinstance(cond, ir.Truth) and cond.name in model.criteria:
            crit = model.criteria[cond.name]
            return self._criteria(crit, crit.title, negated, model)
        if isinstance(cond, ir.CriteriaOf):
            other = self._other(cond.policy)
            if other is not None and cond.name in other.model.criteria:
                crit = other.model.criteria[cond.name]
                return self._criteria(crit, f"{crit.title} ({cond.policy})", negated, other.model)
        if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
            return self._group(cond, negated, model, path)
        return [((_Atom(cond, negated, model),), ())]

    def _criteria(self, crit: ir.Criteria, title: str, negated: bool, model: Model):
        inner = self.expand(crit.condition, negated, model, ())
        if inner is _ABSENT:
            return inner
        word = ("not " if negated else "") + title
        return [(atoms, (word,) + words) for atoms, words in inner]

    def _other(self, policy_id: str):
        policies = getattr(self.library, "policies", None)
        return policies.get(policy_id) if isinstance(policies, dict) else None

    def _group(self, cond, negated: bool, model: Model, path: tuple):
        expanded = [(item, self.expand(item, negated, model, path)) for item in cond.items]
        present = [(item, found) for item, found in expanded if found is not _ABSENT]
        if isinstance(cond, ir.AtLeast):
            count = cond.count if not negated else len(present) - cond.count + 1
            if count <= 0:
                return _TRUE
            out = []
            for chosen in itertools.combinations(present, count):
                words = tuple(w for item, _ in chosen if (w := self._word(item, negated, path, model)))
                out.extend((atoms, words + more) for atoms, more in _product([found for _, found in chosen]))
                if len(out) >= MAX_CONJUNCTIONS:
                    break
            return out[:MAX_CONJUNCTIONS]
        if isinstance(cond, ir.AllOf) != negated:  # all of, or the negation of any of: every item
            return _product([found for _, found in present])
        out = []
        alone = len(present) == 1  # a choice of one is no choice: it is not named
        for item, found in expanded:
            word = None if alone else self._word(item, negated, path, model)
            if found is _ABSENT:
                if isinstance(cond, ir.AnyOf):
                    # Not a route on this date; named, so the reader sees why.
                    out.append(((_OutOfWindow(item),), (word,) if word else ()))
                continue
            out.extend((atoms, ((word,) if word else ()) + words) for atoms, words in found)
        return out[:MAX_CONJUNCTIONS]

    @staticmethod
    def _word(item, negated: bool, path: tuple, model: Model) -> str | None:
        """How a route names the choice it takes at `item`."""
        while isinstance(item, ir.Not):
            item, negated = item.item, not negated
        if isinstance(item, ir.Clause):
            return ("not " if negated else "") + "item " + ".".join(path + (item.label,))
        if isinstance(item, ir.CriteriaOf) or (isinstance(item, ir.Truth) and item.name in model.criteria):
            return None  # named criteria are named by their title as the route enters them
        return _said(item, negated)


def _said(cond, negated: bool) -> str:
    """A condition in words, or its negation: `infusion_hours >= 8 hours` for `not infusion_hours < 8 hours`."""
    if not negated:
        return describe(cond)
    if isinstance(cond, ir.Not):
        return describe(cond.item)
    if isinstance(cond, ir.Compare):
        return describe(ir.Compare(cond.left, _NEGATE[cond.op], cond.right, cond.span))
    if isinstance(cond, ir.Is):
        return describe(ir.Is(cond.name, cond.value, not cond.negated, cond.span))
    return "not " + describe(cond, top=False)


# ---------------------------------------------------------------- what a closed route needs


def _needs(atom) -> str:
    """In words, what an atom no fact can change needs to hold."""
    if isinstance(atom, _OutOfWindow):
        return "needs a date of service " + _window_words(atom.clause.window)
    cond, negated = atom.cond, atom.negated
    no = "no " if negated else "a "
    if isinstance(cond, ir.DiagnosisIn):
        return f"needs {no}diagnosis in " + " or ".join(r.name for r in cond.sets)
    if isinstance(cond, ir.BilledWith):
        text = f"needs {no}line of {targets(cond.codes)}"
        if cond.other_than is not None:
            text += f" other than {targets(cond.other_than)}"
        text += " on the claim"
        if cond.period is not None:
            text += f" or in the member's history within {cond.period.amount:g} {cond.period.unit}"
        return text
    if isinstance(cond, ir.HasModifier):
        return f"needs the line without modifier {cond.modifier}" if negated else f"needs modifier {cond.modifier}"
    if isinstance(cond, ir.LineOutcome):
        text = f"needs {no}line of {targets(cond.codes)} {cond.outcome}"
        if cond.category:
            text += " as " + category_words(cond.category)
        return text + (f" by {cond.by.name}" if cond.by is not None else "")
    if isinstance(cond, ir.DrugIn):
        return f"needs a drug {'not ' if negated else ''}in {targets(cond.codes)}"
    if isinstance(cond, ir.Truth) and cond.name == "supplier_licensed_in_state":
        return "needs a supplier " + ("not " if negated else "") + "licensed in the state where it is located"
    if isinstance(cond, ir.Compare):
        op = _NEGATE[cond.op] if negated else cond.op
        sides = (cond.left, cond.right)
        if any(isinstance(s, ir.FactRef) and s.name == "service_date" for s in sides) and any(
            isinstance(s, ir.DateLiteral) for s in sides
        ):
            literal = next(s for s in sides if isinstance(s, ir.DateLiteral))
            if isinstance(cond.right, ir.FactRef):
                op = _FLIP[op]
            return f"needs a date of service {_DATE_WORDS[op]} {literal.value.isoformat()}"
        return f"needs {describe(ir.Compare(cond.left, op, cond.right, cond.span))}"
    if isinstance(cond, ir.Is):
        return f"needs {describe(ir.Is(cond.name, cond.value, cond.negated != negated, cond.span))}"
    return "needs " + ("not " if negated else "") + describe(cond, top=False)


def _window_words(window: ir.Window) -> str:
    parts = []
    if window.effective is not None:
        parts.append(f"on or after {window.effective.isoformat()}")
    if window.until is not None:
        parts.append(f"before {window.until.isoformat()}")
    return " and ".join(parts)


def _windows_words(windows) -> str:
    said = []
    for window in windows:
        group = window if isinstance(window, tuple) else (window,)
        said.append(" or ".join(_window_words(w) for w in group))
    return "needs a date of service " + " and ".join(s for s in said if s)


# ---------------------------------------------------------------- one line


class _Entry:
    """A rule that can decide the line, and where it is evaluated: `view` is (compiled
    policy, index of the line whose facts it reads, the item it is about, whether the
    member's own base stands in, the day); `extra` holds the facts the view itself needs
    (the item a base serves, or the base the member owns, when the claim does not say)."""

    __slots__ = ("rule", "kind", "windows", "view", "extra", "own")

    def __init__(self, rule, kind, windows, view, extra, own):
        self.rule = rule
        self.kind = kind
        self.windows = windows
        self.view = view
        self.extra = extra
        self.own = own  # a rule of the line itself, not of its base


class _LineSearch:
    """The routes to coverage of one denied or pending line."""

    def __init__(self, top, compiled, claim_json: dict, claim: Claim, index: int, as_of, decision: dict):
        self.top = top  # what decides the claim: the policy, or the library
        self.decision = decision
        self.compiled = compiled
        self.claim_json = claim_json
        self.claim = claim
        self.index = index
        self.as_of = as_of
        self.line = claim.lines[index]
        self.day = self.day_of(index)
        self.library = compiled.engine.library if not hasattr(top, "policies") else top
        self.expander = _Expander(self.day, self.library)
        self.budget = MAX_DECIDES
        self.minimise_budget = MAX_MINIMISE
        self.exhausted = False
        self._decided: dict[frozenset, dict | None] = {}
        self._facts: dict[tuple, dict] = {}
        self._contexts: dict[tuple, LineContext] = {}
        self._status: dict[tuple, dict] = {}
        self._now: dict | None = None  # the decision of the candidate being verified
        self._interpreters: dict[int, Interpreter] = {}
        self._plans: dict[int, list[_Entry]] = {}
        self._closed: str | None = None
        compiled_all = [compiled]
        policies = getattr(self.library, "policies", None)
        if isinstance(policies, dict):
            compiled_all.extend(policies.values())
        self._by_model = {id(c.model): c for c in reversed(compiled_all)}
        self._by_id = {c.id: c for c in compiled_all}
        self.lookback = Lookback(
            tuple((ln.hcpcs, self.day_of(k), ln.seq, ln.units) for k, ln in self._valid()),
            tuple((h.hcpcs, h.service_date, h.units) for h in claim.history),
        )
        self.codes = tuple(ln.hcpcs for _, ln in self._valid())
        # Facts the claim answers, on itself, on any line, or by a default: a route that
        # changes one is not monotone in it.
        self.answered = set(self.facts_of(compiled.model, index))
        self.answered.update(n for n, v in claim.facts.items() if v is not None)
        for _, ln in self._valid():
            self.answered.update(n for n, v in (ln.facts or {}).items() if v is not None)

    def _valid(self):
        return [(k, ln) for k, ln in enumerate(self.claim.lines) if isinstance(ln, Line)]

    def day_of(self, k: int) -> datetime.date:
        return self.as_of or self.claim.lines[k].service_date

    # ------------------------------------------------------------ where the line is decided

    def plan(self, compiled) -> list[_Entry]:
        """Every rule that can decide the line under `compiled`, with its view: the line's
        own rules, and for a base or a dependent the rules its base is decided by."""
        found = self._plans.get(id(compiled))
        if found is not None:
            return found
        model, engine = compiled.model, compiled.engine
        k, line, day = self.index, self.line, self.day
        code = line.hcpcs
        entries: list[_Entry] = []

        def add(code_, subject, base, dependent, virtual, view, extra, own):
            for rule, kind, windows in engine.plan(Kind(code_, subject, base, dependent, bool(virtual))):
                if kind in ("follow", "otherwise", "unknown-served"):
                    continue
                entries.append(_Entry(rule, kind, windows, view, extra, own))

        if in_members(model.bases, code, day):
            for subject, extra in self._subjects(compiled, k, code, False):
                add(code, subject, True, False, False, (compiled, k, subject, False, day), extra, True)
        elif model.follow is not None and in_members(model.dependents, code, day):
            add(code, code, False, True, False, (compiled, k, code, False, day), {}, True)
            served = in_members(model.served, code, day)
            bases = [(q, ln) for q, ln in self._valid() if in_members(model.bases, ln.hcpcs, self.day_of(q))]
            for q, base in bases:
                # The base is asked as of this line's own date of service.
                subjects = [(code, {})] if served else self._subjects(compiled, q, base.hcpcs, False)
                for subject, extra in subjects:
                    add(base.hcpcs, subject, True, False, False, (compiled, q, subject, False, day), extra, False)
            if not bases:
                for owned, owned_extra in self._owned(compiled, k):
                    subjects = [(code, {})] if served else self._subjects(compiled, k, owned, True)
                    for subject, extra in subjects:
                        view = (compiled, k, subject, True, day)
                        add(owned, subject, True, False, True, view, {**owned_extra, **extra}, False)
        else:
            add(code, code, False, False, False, (compiled, k, code, False, day), {}, True)
        self._plans[id(compiled)] = entries
        return entries

    def _subjects(self, compiled, k: int, base_code: str, virtual: bool) -> list[tuple[str, dict]]:
        """The items a base serves, as the engine finds them: the claim's lines of served
        items, else the fact that names one; when the claim says neither, one item of each
        kind the policy's rules tell apart, with that fact set to it."""
        model, engine = compiled.model, compiled.engine
        served = []
        for _, ln in self._valid():
            if ln.hcpcs in model.served and ln.hcpcs not in served:
                served.append(ln.hcpcs)
        if served:
            return [(s, {}) for s in served]
        fact = model.follow.served_fact if model.follow else None
        named = self.facts_of(model, k).get(fact) if fact else None
        if named:
            return [(named, {})]
        if not fact:
            return []
        out, seen = [], set()
        for code in model.served:
            if not in_members(model.served, code, self.day):
                continue
            plan = engine.plan(Kind(base_code, code, True, False, bool(virtual)))
            kinds = tuple(rule.id for rule, _, _ in plan)
            if kinds in seen or not any(kind == "cover" for _, kind, _ in plan):
                continue
            seen.add(kinds)
            out.append((code, {fact: code}))
        return out

    def _owned(self, compiled, k: int) -> list[tuple[str, dict]]:
        """The base the member owns, or, when the claim names none, one base of each kind."""
        model, engine = compiled.model, compiled.engine
        fact = model.follow.owned_fact
        if not fact:
            return []
        owned = self.facts_of(model, k).get(fact)
        if owned:
            return [(owned, {})]
        out, seen = [], set()
        for code in model.bases:
            if not in_members(model.bases, code, self.day):
                continue
            kinds = tuple(rule.id for rule, _, _ in engine.plan(Kind(code, UNKNOWN_SERVED, True, False, True)))
            if kinds not in seen:
                seen.add(kinds)
                out.append((code, {fact: code}))
        return out

    # ------------------------------------------------------------ evaluating on the claim

    def facts_of(self, model: Model, k: int) -> dict:
        """The typed facts line `k` is decided with under `model`'s declarations."""
        key = (id(model), k)
        found = self._facts.get(key)
        if found is None:
            compiled = self._by_model.get(id(model), self.compiled)
            reader = compiled.engine.facts
            found, _ = reader.read_claim_facts(self.claim.facts)
            own = self.claim.lines[k].facts
            if own:
                found, _ = reader.merge_line_facts(found, own, f"lines[{k}].facts")
            self._facts[key] = found
        return found

    def _interpreter(self, model: Model) -> Interpreter:
        found = self._interpreters.get(id(model))
        if found is None:
            found = self._interpreters[id(model)] = Interpreter(model)
        return found

    def _line_status(self, compiled) -> dict:
        """What `S is covered` reads: the claim's lines as the policy decides them, with the
        facts of the candidate being verified (or, before any, the claim's own)."""
        decision = self._now if self._now is not None else self.decision
        key = (id(decision), id(compiled))
        found = self._status.get(key)
        if found is None:
            found = self._status[key] = _status_of(decision, compiled.id)
        return found

    def context(self, view, model: Model, assign: dict) -> LineContext:
        compiled, k, subject, owned, day = view
        key = (view, id(model))
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = prepare_line(self.claim, self.claim.lines[k], k, {}, day, self.codes, {}, self.lookback, None)
            ctx.served = subject
            ctx.owned = owned
            self._contexts[key] = ctx
        # Another policy's criteria read no outcome of this policy's lines.
        ctx.status = self._line_status(compiled) if model is compiled.model else {}
        base = self.facts_of(model, k)
        ctx.facts = {**base, **assign} if assign else base
        ctx.hits = []
        return ctx

    def truth(self, atom, view, assign: dict):
        """True, False, or the frozenset of facts it lacks."""
        if isinstance(atom, _OutOfWindow):
            return False
        ctx = self.context(view, atom.model, assign)
        try:
            value = self._interpreter(atom.model).evaluate(atom.cond, ctx, "why_not")
        except (ArithmeticError, ValueError, TypeError):
            return False  # a date moved out of the calendar, or values that do not compare
        if value is ABSENT:
            value = True
        return logic.not_(value) if atom.negated else value

    def holds(self, cond, model: Model, view, assign: dict):
        ctx = self.context(view, model, assign)
        try:
            value = self._interpreter(model).evaluate(cond, ctx, "why_not")
        except (ArithmeticError, ValueError, TypeError):
            return False
        return True if value is ABSENT else value

    def operand(self, operand, other, model: Model, view, assign: dict):
        """An operand's value with the facts so far; None when a fact it reads is unknown."""
        if isinstance(operand, (ir.Quantity, ir.DateLiteral)):
            return operand.value
        ctx = self.context(view, model, assign)
        if isinstance(operand, ir.LineUnits):
            return ctx.units
        if isinstance(operand, ir.EarlierUnits):
            codes = resolve_targets(
                operand.codes, model.code_sets, model.drug_tables, model.drugs, model.drug_codes, lambda ref: None
            )
            return runtime.earlier_units(ctx, codes, operand.period.amount, operand.period.unit)
        if isinstance(operand, ir.Arith):
            left = self.operand(operand.left, operand.right, model, view, assign)
            right = self.operand(operand.right, operand.left, model, view, assign)
            if left is None or right is None:
                return None
            return runtime.arith(operand.op, left, right, shift_unit(model, operand))
        if not isinstance(operand, ir.FactRef):
            return None
        if operand.name == "age":
            return runtime.age(ctx, other.unit if isinstance(other, ir.Quantity) else None)
        if operand.name == model.owned_name:
            return ctx.owned
        value = ctx.facts.get(operand.name)
        return runtime.builtin(ctx, operand.name) if value is None else value

    # ------------------------------------------------------------ choosing values

    def solve(self, atoms, view, fixed: dict, guards=()) -> dict | None:
        """Values for facts that make every atom hold, leaving the `fixed` facts as they are:
        the new facts, or None when no value found satisfies them all."""
        assign: dict = {}
        for _ in range(2 * len(atoms) + 4):
            facts = {**fixed, **assign}
            unmet = [a for a in atoms if self.truth(a, view, facts) is not True]
            if not unmet:
                return assign
            atom = unmet[0]
            settable = [n for n in sorted(atom.names) if n not in fixed and n not in assign]
            if not settable:
                return None
            chosen = None
            for name in self._order(atom, settable, view, facts):
                for value in self._candidates(name, atom, atoms, view, facts):
                    trial = {**facts, name: value}
                    if self.truth(atom, view, trial) is False:
                        continue
                    # The value must not break what other atoms of the route already have.
                    if any(
                        name in other.names
                        and self.truth(other, view, trial) is False
                        and self.truth(other, view, facts) is not False
                        for other in (*atoms, *guards)
                        if other is not atom
                    ):
                        continue
                    chosen = (name, value)
                    break
                if chosen is not None:
                    break
            if chosen is None:
                return None
            assign[chosen[0]] = chosen[1]
        return None

    def _order(self, atom, names, view, facts) -> list[str]:
        """Facts whose counterpart in a comparison is known first: their value follows from it."""

        def counterpart_known(name: str) -> bool:
            cond = atom.cond
            if isinstance(cond, ir.Compare):
                pair = (cond.left, cond.right)
            elif isinstance(cond, ir.Within):
                pair = (cond.subject, cond.anchor)
            else:
                return True
            for side, other in (pair, pair[::-1]):
                if name in _operand_facts(side, atom.model):
                    return self.operand(other, side, atom.model, view, facts) is not None
            return True

        return sorted(names, key=lambda n: not counterpart_known(n))

    def _candidates(self, name, atom, atoms, view, facts) -> list:
        """Values of `name` to try: those that satisfy `atom` first, then other atoms' boundaries."""
        out: list = []
        for source in (atom, *atoms):
            if name not in source.names:
                continue
            try:
                found = self._boundaries(name, source, view, facts)
            except (ArithmeticError, ValueError, TypeError):
                found = []  # out of the calendar, or values that do not compute
            for value in found:
                if not any(value == seen and type(value) is type(seen) for seen in out):
                    out.append(value)
        return out

    def _boundaries(self, name, atom, view, facts) -> list:
        cond, want = atom.cond, not atom.negated
        model = atom.model
        ftype = model.fact_type(name)
        if ftype is None:
            return []
        if isinstance(cond, ir.Truth):
            return [want]
        if isinstance(cond, ir.Is):
            value = NO_EVENT if ftype.kind == "date" and cond.value == "none" else coerce_value(ftype, cond.value)
            if (not cond.negated) == want:
                return [value]
            return self._others(ftype, (value,))
        if isinstance(cond, ir.In):
            values = tuple(coerce_value(ftype, v) for v in cond.values)
            return list(values) if want else self._others(ftype, values)
        if isinstance(cond, ir.Compare):
            op = cond.op if want else _NEGATE[cond.op]
            if name in _operand_facts(cond.left, model):
                expr, other = cond.left, cond.right
            else:
                expr, other, op = cond.right, cond.left, _FLIP[op]
            target = self.operand(other, expr, model, view, facts)
            if target is None:
                return [self.day] if ftype.kind == "date" else []
            if target is NO_EVENT or target is NOTHING:
                return []
            solved = self._invert(expr, name, target, model, view, facts)
            if solved is None:
                return []
            value, direction = solved
            return _around(value, op if direction > 0 else _FLIP[op], ftype)
        if isinstance(cond, ir.Within):
            return self._within(name, cond, want, ftype, model, view, facts)
        return []

    def _others(self, ftype: ir.FactType, excluded: tuple) -> list:
        """Values of the type other than `excluded`."""
        kind = ftype.kind
        if kind == "bool":
            return [v for v in (True, False) if v not in excluded]
        if kind == "enum":
            return [v for v in ftype.values if v not in excluded]
        if kind in ("int", "number"):
            out = []
            for x in excluded:
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    out.extend((x + 1, x - 1))
            if kind == "int":
                out = [int(v) for v in out if _in_range(int(v), ftype)]
            return [v for v in out if v not in excluded]
        if kind == "date":
            out = [self.day] if NO_EVENT in excluded else []
            for x in excluded:
                if isinstance(x, datetime.date):
                    out.extend((runtime.add_days(x, 1), runtime.add_days(x, -1)))
            return [v for v in out if v not in excluded]
        return []

    def _within(self, name, cond: ir.Within, want: bool, ftype, model, view, facts) -> list:
        amount, unit = cond.amount, cond.unit
        if name in _operand_facts(cond.subject, model):
            expr, known_side, is_subject = cond.subject, cond.anchor, True
        else:
            expr, known_side, is_subject = cond.anchor, cond.subject, False
        known = self.operand(known_side, expr, model, view, facts)
        if known is None:
            return [self.day]
        if known is NO_EVENT or known is NOTHING or not isinstance(known, datetime.date):
            return []
        before = cond.direction == "before"
        # The period is [anchor - N, anchor] (before) or [anchor, anchor + N] (after).
        if is_subject:
            far = runtime.shift(known, -amount if before else amount, unit)
            inside = [known, far]
            outside = [far - _DAY, known + _DAY] if before else [known - _DAY, far + _DAY]
        else:
            far = runtime.shift(known, amount if before else -amount, unit)
            inside = [known, far]
            outside = [known - _DAY, far + _DAY] if before else [known + _DAY, far - _DAY]
        targets_ = inside if want else outside
        out = []
        for target in targets_:
            solved = self._invert(expr, name, target, model, view, facts)
            if solved is not None:
                out.extend(_around(solved[0], "==", ftype))
        if not want and ftype.or_none:
            out.append(NO_EVENT)  # an event that did not happen is in no period
        return out

    def _invert(self, expr, name, target, model, view, facts):
        """The value of fact `name` that makes `expr` come to `target`, and whether `expr`
        grows (+1) or shrinks (-1) with it; None when it cannot be worked out."""
        if isinstance(expr, ir.FactRef):
            return (target, 1) if expr.name == name else None
        if not isinstance(expr, ir.Arith):
            return None
        in_left = name in _operand_facts(expr.left, model)
        inner, other = (expr.left, expr.right) if in_left else (expr.right, expr.left)
        known = self.operand(other, inner, model, view, facts)
        if known is None or known is NO_EVENT or known is NOTHING:
            return None
        unit = shift_unit(model, expr)
        op = expr.op
        sign = 1
        if op == "+":
            sub = _add(target, known, unit, -1)
        elif op == "-" and in_left:
            sub = _add(target, known, unit, +1)
        elif op == "-":
            if unit is not None:
                return None  # a length of time taken from a date: not solved for the length
            if isinstance(known, datetime.date) and isinstance(target, (int, float)):
                sub = runtime.add_days(known, -target)
            else:
                sub = known - target
            sign = -1
        elif op == "*":
            if not known:
                return None
            sub, sign = target / known, (1 if known > 0 else -1)
        elif op == "/":
            if in_left:
                sub, sign = target * known, (1 if known > 0 else -1)
            else:
                if not target:
                    return None
                sub, sign = known / target, (-1 if known > 0 else 1)
        else:
            return None
        solved = self._invert(inner, name, sub, model, view, facts)
        return None if solved is None else (solved[0], solved[1] * sign)

    # ------------------------------------------------------------ verifying

    def covered(self, cand: dict, minimising: bool = False) -> dict | None:
        """The line's decision with the candidate's facts; None once the bound is reached."""
        full = self.decided(cand, minimising)
        lines = full.get("lines") if isinstance(full, dict) else None
        return lines[self.index] if isinstance(lines, list) and len(lines) > self.index else None

    def decided(self, cand: dict, minimising: bool = False) -> dict | None:
        """The claim's decision with the candidate's facts."""
        key = frozenset(cand.items())
        if key in self._decided:
            return self._decided[key]
        # Searching and minimising are bounded apart, so that a long search leaves the
        # candidates it found room to be minimised.
        if minimising:
            if self.minimise_budget <= 0:
                self.exhausted = True
                return None
            self.minimise_budget -= 1
        elif self.budget <= 0:
            return None
        else:
            self.budget -= 1
        sent = {name: _json(value) for name, value in cand.items()}
        found = self.top.decide(with_facts(self.claim_json, sent), self.as_of)
        self._decided[key] = found
        return found

    def search(self, cand: dict, view, guards: tuple, cleared: tuple, depth: int, out: list) -> None:
        """Verify `cand`; while a rule still denies (or cannot decide) the line, clear it."""
        decided = self.covered(cand)
        if decided is None:
            return
        if decided.get("outcome") == "covered":
            out.append((cand, cleared))
            return
        if depth >= MAX_DEPTH or len(out) >= MAX_OPEN_PER_ROUTE:
            return
        self._now = self.decided(cand)
        try:
            blockers = self._blockers(decided, cand, view)
            plans = [(entry, self._branches(entry, cand, guards)) for entry in blockers]
        finally:
            self._now = None
        # The first rule with a way out is cleared; the others are reached again once it is.
        for entry, branches in plans:
            if not branches:
                continue
            # Only a choice deepens the search: a rule with one way out is cleared as it must
            # be. Each step adds facts and changes none, so a path ends either way.
            deeper = depth + (len(branches) > 1)
            for extra, atoms, words in branches:
                step = cleared + ((entry.rule, tuple(extra), words),)
                self.search({**cand, **extra}, view, guards + tuple(atoms), step, deeper, out)
                if len(out) >= MAX_OPEN_PER_ROUTE:
                    return
            return
        if decided.get("outcome") == "pending":
            # Undecided for want of a fact no rule of the line names (another line's outcome
            # waits on it): try its values.
            self._probe(decided, cand, view, guards, cleared, depth, out)

    def _branches(self, entry: _Entry, cand: dict, guards) -> list[tuple[dict, list, tuple]]:
        """The ways out of a rule's decision: facts that, added to `cand`, make its condition
        false, one set per disjunct of its negation. Where there is none, why is recorded."""
        rule, view = entry.rule, entry.view
        negation = self.expander.expand(rule_condition(rule), True, view[0].model)
        if negation is _ABSENT or not negation:
            self._closed = self._closed or _unclearable(rule)
            return []
        out = []
        for atoms, words in negation:
            if len(out) >= MAX_BRANCHES:
                break
            closed, fact_atoms = _split(atoms)
            failed = next((a for a in closed if self.truth(a, view, cand) is False), None)
            if failed is not None:
                self._closed = self._closed or f"{_needs(failed)} ({rule.id})"
                continue
            extra = self.solve(fact_atoms, view, cand, guards)
            if extra:  # none found, or nothing new to try
                out.append((extra, fact_atoms, _choices(words)))
        if len(out) == 1:
            out = [(extra, atoms, ()) for extra, atoms, _ in out]  # the one way out needs no name
        return out

    def _blockers(self, decided: dict, cand: dict, view) -> list[_Entry]:
        """The rules that keep the line from coverage on this route, in the order to clear
        them: for a denial or referral, the rule that decided it; for a pending line, the
        rules before coverage that cannot be decided.

        A route reads its own view (for a base, the item it is covered for) and the line's
        own rules: a base serving several items reports the first item's decision, which
        need not be what stops this route.
        """
        compiled = self._by_id.get(decided.get("policy"), self.compiled)
        entries = [e for e in self.plan(compiled) if e.kind in ("deny", "limit", "refer")]
        entries = [e for e in entries if e.windows is None or all(in_effect(w, e.view[4]) for w in e.windows)]
        if compiled is self.compiled:
            own = (self.index, self.line.hcpcs)
            entries = [e for e in entries if e.view == view or (e.own and e.view[1:3] == own)]
        values = {}

        def value(entry: _Entry):
            if id(entry) not in values:
                values[id(entry)] = self.holds(rule_condition(entry.rule), entry.view[0].model, entry.view, cand)
            return values[id(entry)]

        outcome = decided.get("outcome")
        if outcome in ("denied", "refer"):
            named = [r.get("rule") for r in decided.get("reasons") or () if r.get("policy", compiled.id) == compiled.id]
            # One rule may reach the line on its own and through its base, each read with
            # its own line's facts: the one that holds is the one that decided.
            found = [e for rule_id in named for e in entries if e.rule.id == rule_id and value(e) is True]
            return found or [e for e in entries if value(e) is True]
        if outcome != "pending":
            return []
        # A limit's condition matters only past the limit, which the engine counts first:
        # an undecided limit is a blocker only after the denials and referrals.
        undecided = [e for e in entries if logic.is_unknown(value(e))]
        return sorted(undecided, key=lambda e: e.kind == "limit")

    def _probe(self, decided: dict, cand: dict, view, guards, cleared, depth: int, out: list) -> None:
        """A fact the line still lacks, found by no rule of its own (another line's outcome
        waits on it): each value it can take, tried in turn."""
        for name in decided.get("missing") or ():
            if name in cand:
                continue
            ftype = self.compiled.model.fact_type(name)
            values = _domain(ftype) if ftype is not None else []
            if not values:
                continue
            for value in values[:MAX_BRANCHES]:
                self.search({**cand, name: value}, view, guards, cleared, depth + 1, out)
                if len(out) >= MAX_OPEN_PER_ROUTE:
                    return
            return

    def minimise(self, cand: dict) -> dict | None:
        """Drop facts while the line stays covered, until no strict subset covers it; None
        when the bound on decisions is reached first (the route is then not offered)."""
        while True:
            for name in list(cand):
                trial = {n: v for n, v in cand.items() if n != name}
                if trial and _is_covered(self.covered(trial, minimising=True)):
                    cand = trial
                    break
            else:
                break
        # Giving a fact the claim does not answer a value can only narrow the claims a line
        # is covered for (the logic is three-valued and monotone), so a smaller route exists
        # only by restoring answers the claim gives: those are tried together.
        changed = [n for n in cand if n in self.answered]
        if len(changed) > MAX_CHANGED:
            return None
        for size in range(2, len(changed) + 1):
            for names in itertools.combinations(changed, size):
                trial = {n: v for n, v in cand.items() if n not in names}
                if trial and _is_covered(self.covered(trial, minimising=True)):
                    return self.minimise(trial)
        return None if self.exhausted else cand

    # ------------------------------------------------------------ the routes

    def routes(self) -> list[dict]:
        """The line's routes: open ones (with their facts) first, then closed ones."""
        opened: list[tuple[str, str, dict]] = []
        closed: list[tuple[str, tuple, str]] = []
        for entry in self.plan(self.compiled):
            if entry.kind != "cover" or (entry.own and self._follows()):
                continue  # a dependent is covered with its base, not by its own rules
            rule, view = entry.rule, entry.view
            model = view[0].model
            head = f"{rule.section} ({rule.id})"
            if entry.windows is not None and not all(in_effect(w, view[4]) for w in entry.windows):
                closed.append((head, (), _windows_words(w for w in entry.windows if not in_effect(w, view[4]))))
                continue
            conjunctions = self.expander.expand(rule_condition(rule), False, model)
            if conjunctions is _ABSENT:
                continue
            named = [(_choices(words), atoms) for atoms, words in conjunctions]
            for words, atoms in named:
                self._route(head, words, atoms, entry, named, opened, closed)
        return _prune(opened, closed)

    def _follows(self) -> bool:
        model = self.compiled.model
        return model.follow is not None and in_members(model.dependents, self.line.hcpcs, self.day)

    def _route(self, head: str, words: tuple, atoms, entry: _Entry, named: list, opened: list, closed: list):
        """One conjunction of a coverage rule: closed, or verified and minimised candidates."""
        view = entry.view
        fixed_atoms, fact_atoms = _split(atoms)
        unsure = []
        for atom in fixed_atoms:
            value = self.truth(atom, view, entry.extra)
            if value is False:
                closed.append((head, words, _needs(atom)))
                return
            if value is not True:
                unsure.append(atom)
        assign = self.solve(fact_atoms, view, entry.extra)
        if assign is None:
            return  # the route's own conditions contradict each other
        given = self.facts_of(self.compiled.model, self.index)
        cand = {n: v for n, v in {**entry.extra, **assign}.items() if not _same(given.get(n), v)}
        found: list = []
        self._closed = None
        self.search(cand, view, tuple(fact_atoms), (), 0, found)
        if not found:
            reason = self._closed or (_needs(unsure[0]) if unsure else None)
            if reason:
                closed.append((head, words, reason))
            return
        for cand, cleared in found:
            final = self.minimise(cand)
            if not final or not _is_covered(self.covered(final, minimising=True)):
                continue
            # Minimising may leave the facts of another route of the rule (one the claim
            # already half meets): the route is named by the one its facts satisfy.
            chosen = next((w for w, a in named if all(self.truth(x, view, final) is True for x in a)), None)
            if chosen is None:
                continue  # covered by another rule's route, which names it there
            name = _route_name(head, chosen)
            cleared_words = [_cleared_words(rule, how) for rule, names, how in cleared if set(names) & set(final)]
            text = name + "".join(f"; {w}" for w in dict.fromkeys(cleared_words))
            opened.append((name, text, {n: _json(v) for n, v in sorted(final.items())}))


def _choices(words) -> tuple[str, ...]:
    """A route's words once each; an item is named by its deepest choice (`item 4.b.i`, not
    also `item 4.b`)."""
    words = tuple(dict.fromkeys(words))
    return tuple(w for w in words if not any(other.startswith(w + ".") for other in words))


def _route_name(head: str, words) -> str:
    return head + (": " + "; ".join(words) if words else "")


_DAY = datetime.timedelta(days=1)


def _split(atoms) -> tuple[list, list]:
    fixed = [a for a in atoms if not a.names]
    facts = [a for a in atoms if a.names]
    return fixed, facts


def _same(a, b) -> bool:
    return a is not None and a == b and type(a) is type(b)


def _is_covered(decided: dict | None) -> bool:
    return decided is not None and decided.get("outcome") == "covered"


def _cleared_words(rule: ir.Rule, how: tuple) -> str:
    """`not denied by RULE`, with the way out taken when its negation offers more than one."""
    verb = {"refer": "not referred by", "limit": "not limited by"}.get(rule.kind, "not denied by")
    return f"{verb} {rule.id}" + (f" ({'; '.join(how)})" if how else "")


def _status_of(decision: dict, policy_id: str) -> dict:
    """The claim's lines as `S is covered` reads them: by code, each decision of the policy
    as (outcome, category, missing, deciding rule)."""
    status: dict = {}
    for line in decision.get("lines") or ():
        if not isinstance(line, dict) or not line.get("hcpcs"):
            continue
        for decided in line.get("decisions") or (line,):
            if decided.get("policy", policy_id) != policy_id:
                continue
            if decided.get("outcome") in (None, "not_applicable", "error"):
                continue
            reasons = decided.get("reasons") or ()
            status.setdefault(line["hcpcs"], []).append(
                (
                    decided["outcome"],
                    decided.get("category"),
                    tuple(decided.get("missing", ())),
                    reasons[0].get("rule") if reasons else None,
                )
            )
    return status


def _unclearable(rule: ir.Rule) -> str:
    if rule.kind == "limit":
        return f"needs the line within the limit of {limit_words(rule)} ({rule.id})"
    if rule.kind == "refer":
        return f"referred by {rule.id} whatever the facts"
    return f"denied by {rule.id} whatever the facts"


def _domain(ftype: ir.FactType) -> list:
    if ftype.kind == "bool":
        return [True, False]
    if ftype.kind == "enum":
        return list(ftype.values)
    if ftype.kind == "int" and ftype.low is not None and ftype.high - ftype.low < MAX_BRANCHES:
        return list(range(ftype.low, ftype.high + 1))
    return []


def _in_range(value: int, ftype: ir.FactType) -> bool:
    return ftype.low is None or ftype.low <= value <= ftype.high


def _add(value, amount, unit: str | None, sign: int):
    """`value` plus (or minus) `amount`: a date moved by a length of time, or numbers."""
    if isinstance(value, datetime.date):
        if unit is not None:
            return runtime.shift(value, sign * amount, unit)
        if isinstance(amount, datetime.date):
            raise TypeError("a date added to a date")
        return runtime.add_days(value, sign * amount)
    if isinstance(amount, datetime.date):
        raise TypeError("a number less a date")
    return value + sign * amount


def _step(value) -> float:
    """The smallest change a value is written with: 1 for whole numbers, 0.1 for 0.5."""
    if float(value).is_integer():
        return 1
    exponent = decimal.Decimal(str(value)).as_tuple().exponent
    return 10.0**exponent if isinstance(exponent, int) else 1


def _around(value, op: str, ftype: ir.FactType) -> list:
    """Values of the fact's type that satisfy `fact op value`, nearest the boundary first."""
    kind = ftype.kind
    if kind == "date":
        if not isinstance(value, datetime.date):
            return []
        offsets = {
            ">=": (0, 1, 2, 3),
            ">": (1, 2, 3, 4),
            "<=": (0, -1, -2, -3),
            "<": (-1, -2, -3, -4),
            "==": (0, 1, -1, 2, -2, 3, -3),
            "!=": (1, -1),
        }[op]
        # At the calendar's ends several offsets land on the same day: offer it once.
        return list(dict.fromkeys(runtime.add_days(value, d) for d in offsets))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return []
    if kind == "int":
        found = {
            ">=": [math.ceil(value)],
            ">": [math.floor(value) + 1],
            "<=": [math.floor(value)],
            "<": [math.ceil(value) - 1],
            "==": [int(value)] if float(value).is_integer() else [],
            "!=": [round(value) + 1, round(value) - 1],
        }[op]
        return [v for v in found if _in_range(v, ftype)]
    if kind == "number":
        step = _step(value)
        found = {
            ">=": [value],
            ">": [value + step],
            "<=": [value],
            "<": [value - step],
            "==": [value],
            "!=": [value + step, value - step],
        }[op]
        return [_tidy(v) for v in found]
    return []


def _tidy(value: float):
    value = round(value, 10)
    return int(value) if float(value).is_integer() else value


def _prune(opened: list[tuple[str, str, dict]], closed: list[tuple[str, tuple, str]]) -> list[dict]:
    """Routes without repeats: open routes first, one per set of facts and none containing
    another; then the closed ones, where no route of the same name is open (through another
    base or item), those of one rule closed for one reason said once, by the choices they share."""
    kept: list[tuple[str, dict]] = []
    seen_items: set = set()
    seen_names: set = set()
    for _, text, facts in opened:
        items = frozenset(facts.items())
        names = (text, frozenset(facts))
        if items in seen_items or names in seen_names:
            continue
        seen_items.add(items)
        seen_names.add(names)
        kept.append((text, facts))
    sets = [frozenset(facts.items()) for _, facts in kept]
    out: list[dict[str, Any]] = [
        {"facts": facts, "route": text}
        for i, (text, facts) in enumerate(kept)
        if not any(j != i and other < sets[i] for j, other in enumerate(sets))
    ]
    open_names = {name for name, _, _ in opened}
    groups: dict[tuple[str, str], list[tuple]] = {}
    for head, words, needs in closed:
        if _route_name(head, words) not in open_names:
            groups.setdefault((head, needs), []).append(words)
    for (head, needs), members in groups.items():
        shared = [w for w in members[0] if all(w in other for other in members[1:])]
        out.append({"route": _route_name(head, shared), "closed": needs})
    return out


class WithWhyNot:
    """A policy (or library) whose decisions carry `why_not`: what `medpol eval --why-not`
    decides with, in this process or in workers (it pickles as the policy it wraps)."""

    def __init__(self, policy):
        self.policy = policy
        self.id = policy.id
        self.revision = policy.revision

    @property
    def engine(self) -> WithWhyNot:
        return self

    def decide(self, claim, as_of: datetime.date | None = None) -> dict:
        return why_not(self.policy, claim, self.policy.decide(claim, as_of), as_of)
