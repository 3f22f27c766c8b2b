"""Generate the compiled decision of a kind of line: its plan's rules as straight-line Python.

The engine decides a line by walking its plan (compiler.plan): the rules that can reach
the line, in precedence order, the first that holds deciding. Here that walk is written
out once per kind of line, for the line's code: each rule's effective windows tested inline
against the date, its predicate called by name, what a rule kind does with the answer
written for that kind alone, and the decision built where it is decided. What a plan does
not need (the coverage rules tried, for an `otherwise`; the rules a dependent's own cover
held, for a `follow`; a partly paid line, for an `excess` limit) is not kept at all.

The function reads like the plan, rule by rule (`medpol compile --show-python` prints one
per code the policy governs): a reviewer can follow a code's decision beside the policy.
The work of a decision shared by every kind of line (a dependent asking its base, a limit
counting units, a pending decision settled against the rules that could not be evaluated)
is the claim run's (medpol.engine.decide), called by name.

As in compiler.generate, nothing an author wrote is spliced into the code: names are
identifiers made of letters, digits and underscores, and rules, reasons, windows' dates and
rule keys arrive as data in the function's namespace.
"""

from __future__ import annotations

import ast
import keyword

from medpol.compiler.generate import identifier
from medpol.compiler.plan import OTHER, UNKNOWN_SERVED, Kind, Step, decided_by, rule_key
from medpol.dsl import ir

# Names the decision functions use for their own state.
_LOCALS = {"run", "p", "ctx", "day", "unknown", "own_covers", "tried", "not_yet", "partial", "value", "decided"}
_LOCALS |= {"allowed", "reasons", "hits", "h", "REASONS", "FAILED"}


def function_name(kind: Kind) -> str:
    """`decide_J9039`; a base for the item it serves, `decide_E0781_for_J9039`."""
    name = f"decide_{_code_name(kind.code)}"
    if kind.owned:
        name += "_owned"
    if kind.base:
        name += "_for_" + ("unknown" if kind.subject == UNKNOWN_SERVED else _code_name(kind.subject))
    return name


def _code_name(code: str) -> str:
    return "other_code" if code == OTHER else identifier(code)


def describe(kind: Kind, policy_name: str) -> str:
    if kind.code == OTHER or kind.subject == OTHER:
        kind = kind._replace(
            code="a code no rule names" if kind.code == OTHER else kind.code,
            subject="an item no rule names" if kind.subject == OTHER else kind.subject,
        )
    if kind.owned:
        what = f"the member's own {kind.code}, standing in for a base line"
    elif kind.base and kind.subject == UNKNOWN_SERVED:
        what = f"{kind.code} as a base, the item it serves not said"
    elif kind.base:
        what = f"{kind.code} as a base serving {kind.subject}"
    elif kind.dependent:
        what = f"a line of {kind.code}, which follows its base"
    else:
        what = f"a line of {kind.code}"
    return f"{what}, under {policy_name}"


class DecisionGenerator:
    """Writes decision functions; the data they read is gathered in `data` as it is named."""

    def __init__(self, policy: ir.Policy, served_fact: str | None, reasons: dict[str, dict], predicates: dict):
        self.policy = policy
        self.served_fact = served_fact
        self.where = repr(policy.path.rsplit("/", 1)[-1])[1:-1].replace("#", "")
        self.reasons = reasons
        self.predicates = predicates
        self._records: dict[str, bool] = {}  # by rule id: records_hits
        self.data: dict[str, object] = {}
        self._keys: dict[tuple, str] = {}
        self.taken = set(_LOCALS)

    # ------------------------------------------------------------ names

    def datum(self, kind: str, key, value, label: str) -> str:
        found = self._keys.get((kind, key))
        if found is None:
            base = identifier(f"{kind}_{label}")
            found, n = base, 2
            while found in self.taken or keyword.iskeyword(found):
                found, n = f"{base}_{n}", n + 1
            self.taken.add(found)
            self._keys[(kind, key)] = found
            self.data[found] = value
        return found

    def rule(self, rule: ir.Rule) -> str:
        return self.datum("RULE", rule.id, rule, rule.id)

    def reason(self, rule_id: str) -> str:
        return self.datum("REASON", rule_id, self.reasons[rule_id], rule_id)

    def records_hits(self, rule: ir.Rule) -> bool:
        """Whether the rule's condition holds numbered items (in it or in the criteria it
        meets), which its predicate records as it goes, for the decision's reasons. A rule
        with none needs no list of them."""
        found = self._records.get(rule.id)
        if found is None:
            criteria = {c.name: c.condition for c in self.policy.criteria}
            todo, seen, found = [*rule.requires, rule.condition], set(), False
            while todo and not found:
                for node in ir.walk(todo.pop()):
                    if isinstance(node, ir.Clause):
                        found = True
                        break
                    if isinstance(node, ir.Truth) and node.name in criteria and node.name not in seen:
                        seen.add(node.name)
                        todo.append(criteria[node.name])
            self._records[rule.id] = found
        return found

    def predicate(self, rule: ir.Rule) -> str:
        """The rule's predicate, by the name it has in the predicates module (`rule_J_blinatumomab`)."""
        fn = self.predicates[rule.id]
        name = getattr(fn, "__name__", "")
        if name.isidentifier() and name.startswith("rule_") and self.data.get(name, fn) is fn:
            self.data[name] = fn
            self.taken.add(name)
            return name
        return self.datum("rule", rule.id, fn, rule.id)

    def day(self, day) -> str:
        return self.datum("DAY", day.isoformat(), day, day.isoformat())

    def key(self, rule: ir.Rule) -> str:
        return self.datum("KEY", rule.id, rule_key(rule), rule.id)

    # ------------------------------------------------------------ code

    def window_test(self, windows: tuple) -> str:
        """All of the windows hold on `day`; a tuple of windows holds if one of them does."""
        tests = []
        for window in windows:
            if isinstance(window, tuple):
                options = [self._one(w) for w in window]
                if "True" in options:
                    tests.append("True")
                else:
                    tests.append(options[0] if len(options) == 1 else "(" + " or ".join(options) + ")")
            else:
                tests.append(self._one(window))
        tests = [t for t in tests if t != "True"] or ["True"]
        return " and ".join(tests)

    def _one(self, window: ir.Window) -> str:
        if window.effective is not None and window.until is not None:
            return f"({self.day(window.effective)} <= day < {self.day(window.until)})"
        if window.effective is not None:
            return f"{self.day(window.effective)} <= day"
        if window.until is not None:
            return f"day < {self.day(window.until)}"
        return "True"

    def function(self, kind: Kind, steps: tuple[Step, ...]) -> tuple[str, list[tuple[int, int]]]:
        """The source of one decision function, and (source line, policy line) pairs."""
        lines: list[tuple[str, int | None]] = []

        def w(indent: int, text: str, line: int | None = None) -> None:
            lines.append(("    " * indent + text, line))

        kinds = {step.kind for step in steps}
        keeps_tried = "otherwise" in kinds  # an `otherwise` names the coverage rules that failed
        keeps_own = kind.dependent and "follow" in kinds
        keeps_partial = any(s.kind == "limit" and s.rule.limit.excess for s in steps)
        w(0, f"def {function_name(kind)}(run, p, ctx, day):")
        w(1, f"# {_words(describe(kind, self.policy.title or self.policy.id))}: {len(steps)} rules in precedence order")
        w(1, "unknown = []  # (rule key, facts lacking) of the rules that could not be evaluated")
        # Coverage rules not in effect on the line's date are named too, when any has a window.
        keeps_not_yet = keeps_tried and any(s.kind == "cover" and s.windows is not None for s in steps)
        if keeps_tried:
            w(1, "tried = []  # the coverage rules that failed")
        if keeps_not_yet:
            w(1, "not_yet = []  # the coverage rules not in effect on the day")
        if keeps_own:
            w(1, "own_covers = []  # a dependent's own coverage rules that held, for its reasons")
        if keeps_partial:
            w(1, "partial = None  # (allowed units, limit rule) of the smallest allowance so far")
        settled = False  # an `otherwise` in effect every day decides whatever is left
        for step in steps:
            rule = step.rule
            line = rule.span.line or None
            w(1, "")
            when = _window_words(step.windows)
            w(1, f"# {step.kind} {_words(rule.id)}{when}  {self.where}:{line}" if line else f"# {step.kind}")
            indent = 1
            if step.windows is not None:
                w(1, f"if {self.window_test(step.windows)}:", line)
                indent = 2
            body = self._step(kind, step, keeps_tried, keeps_own, keeps_partial, keeps_not_yet)
            for depth, text in body:
                w(indent + depth, text, line if text and not text.startswith("#") else None)
            if step.windows is not None and keeps_tried and step.kind == "cover":
                windows = self.datum("WINDOWS", (rule.id, step.windows), step.windows, rule.id)
                w(1, "else:")
                w(2, f"not_yet.append(({self.rule(rule)}, {windows}))")
            if step.kind == "otherwise" and step.windows is None:
                settled = True
                break
        if not settled:
            w(1, "")
            w(1, "if unknown:")
            w(2, "return run.settle(None, unknown)")
            w(1, "return {'outcome': 'not_applicable'}")
        source = "\n".join(text.rstrip() for text, _ in lines) + "\n"
        pairs = [(n, line) for n, (_, line) in enumerate(lines, 1) if line is not None]
        return source, pairs

    def _step(
        self, kind: Kind, step: Step, keeps_tried: bool, keeps_own: bool, keeps_partial: bool, keeps_not_yet: bool
    ):
        """The statements of one step, as (indent, text) under its window test."""
        rule = step.rule
        out: list[tuple[int, str]] = []
        if step.kind == "follow":
            out.append((0, f"decided = run.follow_base(p, {self.rule(rule)}, {'own_covers' if keeps_own else '[]'})"))
            out.append((0, "if decided['outcome'] == 'pending':"))
            out.append((1, "unknown.append((('pending-base',), frozenset(decided['missing'])))"))
            out.append((0, "elif not unknown:"))
            out.append((1, "return decided"))
            out.append((0, "else:"))
            out.append((1, "return run.settle(decided, unknown)"))
            return out
        if step.kind == "otherwise":
            reason = self.reason(rule.id)
            tried = " + [REASONS[r] for r in tried]" if keeps_tried else ""
            self.data["REASONS"] = self.reasons
            reasons = f"[{reason}]{tried}"
            out.append((0, f"decided = {{{_fields(decided_by(rule))}, 'reasons': {reasons}}}"))
            failed = "FAILED.of_covers(tried, ctx)" if keeps_tried else "[]"
            if keeps_not_yet:
                failed = f"FAILED.of_windows(not_yet) + {failed}"
            out.extend(self._settled(failed))
            return out
        if step.kind == "unknown-served":
            served = self.datum("NEEDS", "served", frozenset((self.served_fact,)), "served_fact")
            out.append((0, "# the rule decides a base by the item it serves, and the claim does not say which"))
            out.append((0, f"unknown.append(({self.key(rule)}, {served}))"))
            return out
        if step.kind == "limit":
            return self._limit(step, keeps_partial)
        hits = self.records_hits(rule)
        if hits:
            out.append((0, "ctx.hits = hits = []"))
        out.append((0, f"value = {self.predicate(rule)}(ctx)"))
        if step.kind == "cover" and kind.dependent:
            # A dependent is covered with its base, not on its own: what held goes to its reasons.
            if keeps_own:
                out.append((0, "if value is True:"))
                out.append((1, f"own_covers.append(({rule.id!r}, {'hits' if hits else '()'}))"))
            if keeps_tried:
                out.append((0, "elif value is False:" if keeps_own else "if value is False:"))
                out.append((1, f"tried.append({rule.id!r})"))
            if not keeps_own and not keeps_tried:
                out.append((0, "# a dependent is covered with its base: this rule decides nothing alone"))
            return out
        out.append((0, "if value is True:"))
        out.extend((1 + d, t) for d, t in self._decided(rule, partial=keeps_partial))
        out.append((0, "elif value is not False:"))
        out.append((1, f"unknown.append(({self.key(rule)}, value))"))
        if step.kind == "cover" and keeps_tried:
            out.append((0, "else:"))
            out.append((1, f"tried.append({rule.id!r})"))
        return out

    def _decided(self, rule: ir.Rule, partial: bool, excess_all: bool = False) -> list[tuple[int, str]]:
        """A holding rule decides: the decision, built once, settled against earlier unknowns."""
        reason = self.reason(rule.id)
        self.data["REASONS"] = self.reasons
        decided = decided_by(rule)
        if self.records_hits(rule):
            out = [
                (0, f"reasons = [{reason}]"),
                (0, "if hits:"),
                (1, "reasons += [REASONS[h] for h in hits]"),
                (0, f"decided = {{{_fields(decided)}, 'reasons': reasons}}"),
            ]
        else:
            out = [(0, f"decided = {{{_fields(decided)}, 'reasons': [{reason}]}}")]
        if excess_all:
            out.append((0, "decided.update(allowed_units=0, denied_units=p.line.units)"))
        if decided["outcome"] == "covered" and partial:
            out.append((0, "if partial is not None:"))
            out.append((1, "decided.update(run.paid_in_part(p, *partial))"))
        if decided["outcome"] == "denied":
            # A denial names its failed criteria once it stands: naming them costs an evaluation.
            out.extend(self._settled(f"FAILED.of_holding({self.rule(rule)}, ctx)"))
        else:
            out.extend(self._settled(None))
        return out

    def _settled(self, failed: str | None) -> list[tuple[int, str]]:
        """Return the decision: at once when no rule before it was unknown, else settled
        against those (run.settle), which asks for a denial's failed criteria only if it stands."""
        if failed is None:
            return [(0, "if not unknown:"), (1, "return decided"), (0, "return run.settle(decided, unknown)")]
        self.data["FAILED"] = None  # bound by the engine: its FailedCriteria
        return [
            (0, "if not unknown:"),
            (1, f"decided['failed'] = {failed}"),
            (1, "return decided"),
            (0, f"return run.settle(decided, unknown, lambda: {failed})"),
        ]

    def _limit(self, step: Step, keeps_partial: bool) -> list[tuple[int, str]]:
        rule = step.rule
        out = [
            (0, "# count first: the limit's condition matters only for a line past the limit"),
            (0, f"allowed = run.allowance({self.rule(rule)}, p, ctx)"),
            (0, "if isinstance(allowed, frozenset):"),
            (1, f"unknown.append(({self.key(rule)}, allowed))"),
            (0, "elif allowed is not None:"),
            *([(1, "ctx.hits = hits = []")] if self.records_hits(rule) else []),
            (1, f"value = {self.predicate(rule)}(ctx)"),
        ]
        if rule.limit.excess:
            # Only the excess is denied: a line with units left goes on to be decided for the rest.
            out.append((1, "if value is True and allowed > 0:"))
            out.append((2, "if partial is None or allowed < partial[0]:"))
            out.append((3, f"partial = (allowed, {self.rule(rule)})"))
            out.append((1, "elif value is True:"))
        else:
            out.append((1, "if value is True:"))
        out.extend((2 + d, t) for d, t in self._decided(rule, partial=keeps_partial, excess_all=rule.limit.excess))
        out.append((1, "elif value is not False:"))
        out.append((2, f"unknown.append(({self.key(rule)}, value))"))
        return out


def _fields(decided: dict) -> str:
    """The decision's fields as a dict display's items: author-written words only through repr."""
    return ", ".join(f"{key!r}: {value!r}" for key, value in decided.items())


def _window_words(windows) -> str:
    if windows is None:
        return ""
    parts = []
    for window in windows:
        for w in window if isinstance(window, tuple) else (window,):
            if w.effective and w.until:
                parts.append(f"{w.effective.isoformat()} to {w.until.isoformat()}")
            elif w.effective:
                parts.append(f"from {w.effective.isoformat()}")
            elif w.until:
                parts.append(f"until {w.until.isoformat()}")
    return ", in effect " + "; ".join(parts) if parts else ""


def _words(text) -> str:
    return repr(str(text))[1:-1]


def predicates_called(decisions: str, predicates: str) -> str:
    """The functions of the predicates module (`predicates`) that the decision functions
    in `decisions` call, and those they call in turn, in the module's order: with them, a
    code's decision reads whole, down to each fact it tests."""
    module = ast.parse(predicates)
    defined = {node.name: node for node in module.body if isinstance(node, ast.FunctionDef)}

    def calls(tree) -> set[str]:
        return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}

    wanted: set[str] = set()
    todo = [name for name in calls(ast.parse(decisions)) if name in defined]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo.extend(c for c in calls(defined[name]) if c in defined and c not in wanted)
    lines = predicates.splitlines()
    return "\n\n\n".join(
        "\n".join(lines[node.lineno - 1 : node.end_lineno]) for name, node in defined.items() if name in wanted
    )
