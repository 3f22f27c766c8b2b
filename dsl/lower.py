"""Lower a parse tree into the typed IR, bottom-up, keeping every node's span."""

from __future__ import annotations

import datetime
import math

import attrs
from lark import Token, Transformer, Tree, v_args

from medpol.dsl import ir
from medpol.dsl.diagnostics import Diagnostic, PolicyError
from medpol.dsl.parser import parse


def _span(meta) -> ir.Span:
    if getattr(meta, "empty", True):
        return ir.NO_SPAN
    return ir.Span(meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(tok: Token) -> ir.Span:
    return ir.Span(tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok))


def unquote(tok: Token) -> str:
    body = str(tok)[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@attrs.frozen
class EnumValue:
    """A `one of` value as written: its name and the words a reader sees for it."""

    name: str
    label: str | None


@attrs.frozen
class _Language:
    """`medpol N`: the language version the policy is written in."""

    number: int
    span: ir.Span


@attrs.frozen
class _Header:
    """`policy ID "Title"` with its source, revision and description."""

    id: str
    title: str
    span: ir.Span
    source: str | None
    revision: ir.Revision | None
    description: tuple


@attrs.frozen
class _Block:
    """A top-level block of rows of one kind (facts, the change history, the precedence)."""

    kind: type
    items: tuple


# What a policy holds at its top level, by the kind of record each block lowers to.
_TOP_LEVEL = (ir.Fact, ir.HistoryRow, ir.PrecedenceStep, ir.CodeSet, ir.DrugTable, ir.Criteria, ir.Section)


class _Problems(list):
    """Lowering problems (bad dates, bad numbers) collected while transforming."""


# Names the language gives a meaning to; a policy cannot declare them again.
CATEGORY_WORDS = {
    "not_reasonable_and_necessary": "not reasonable and necessary",
    "incorrect_coding": "incorrect coding",
    "not_covered": "not covered",
}


@v_args(meta=True)
class _Lower(Transformer):
    def __init__(self, path: str):
        super().__init__()
        self.path = path
        self.problems: list[Diagnostic] = []

    # ------------------------------------------------------------ helpers

    def _date(self, tok: Token) -> datetime.date:
        try:
            return datetime.date.fromisoformat(str(tok))
        except ValueError:
            self.problems.append(
                Diagnostic(
                    self.path, tok.line, tok.column, "bad-date", f"`{tok}` is not a calendar date", width=len(tok)
                )
            )
            return datetime.date(1, 1, 1)

    def _number(self, tok: Token) -> float | int:
        text = str(tok)
        try:
            value = float(text) if "." in text else int(text)
            # A number past a float's range is refused as well: float() reads it as `inf`,
            # which has no literal in generated Python, and a whole number that large
            # cannot be read as a float where amounts are worked out (OverflowError).
            if math.isinf(float(value)):
                raise ValueError(text)
            return value
        except (ValueError, OverflowError):
            self.problems.append(
                Diagnostic(
                    self.path,
                    tok.line,
                    tok.column,
                    "bad-number",
                    f"`{text[:20]}...` has too many digits",
                    width=min(len(text), 20),
                )
            )
            return 0

    def _int(self, tok: Token) -> int:
        value = self._number(tok)
        if not isinstance(value, int):
            self.problems.append(
                Diagnostic(
                    self.path, tok.line, tok.column, "expected-int", f"`{tok}` must be a whole number", width=len(tok)
                )
            )
            return int(value)
        return value

    # ------------------------------------------------------------ header

    def start(self, meta, children):
        # Each top-level block lowers to a record of its own kind (its IR node, or a block
        # of rows); the policy gathers them by kind, in the order written.
        language = _Language(1, ir.NO_SPAN)
        header = None
        found: dict[type, list] = {kind: [] for kind in _TOP_LEVEL}
        for child in children:
            if isinstance(child, _Language):
                language = child
            elif isinstance(child, _Header):
                header = child
            elif isinstance(child, _Block):
                found[child.kind].extend(child.items)
            elif child is not None:
                found[type(child)].append(child)
        facts, history, precedence = found[ir.Fact], found[ir.HistoryRow], found[ir.PrecedenceStep]
        code_sets, drug_tables = found[ir.CodeSet], found[ir.DrugTable]
        criteria, sections = found[ir.Criteria], found[ir.Section]
        sections = self._default_categories(sections)
        return ir.Policy(
            id=header.id,
            title=header.title,
            path=self.path,
            language=language.number,
            source=header.source,
            revision=header.revision,
            description=header.description,
            precedence=tuple(precedence),
            facts=tuple(facts),
            code_sets=tuple(code_sets),
            drug_tables=tuple(drug_tables),
            criteria=tuple(criteria),
            sections=tuple(sections),
            history=tuple(history),
            span=header.span,
            language_span=language.span,
        )

    def language(self, meta, children):
        return _Language(self._int(children[0]), _tok_span(children[0]))

    def policy_header(self, meta, children):
        given = {name: value for name, value in children[2:]}
        return _Header(
            id=str(children[0]),
            title=unquote(children[1]),
            span=_tok_span(children[0]),
            source=given.get("source"),
            revision=given.get("revision"),
            description=tuple(given.get("description", ())),
        )

    def source(self, meta, children):
        return ("source", unquote(children[0]))

    def description(self, meta, children):
        return ("description", tuple(children))

    def passage(self, meta, children):
        # The quote's own span: the rule's line break after it is no part of what is quoted.
        return ir.Passage(unquote(children[0]), _tok_span(children[0]))

    def prepared_by(self, meta, children):
        return ("prepared_by", unquote(children[0]))

    def approved_by(self, meta, children):
        return ("approved_by", unquote(children[0]))

    def note(self, meta, children):
        return ("note", unquote(children[0]))

    def reviewed(self, meta, children):
        return ("reviewed", unquote(children[0]))

    def history_effective(self, meta, children):
        return ("effective", unquote(children[0]))

    def revision(self, meta, children):
        number, dated, effective, *rest = children
        attrs_: dict = {"prepared_by": None, "approved_by": None, "reviewed": None, "note": None}
        passages = []
        for item in rest:
            if item is None:
                continue
            if isinstance(item, ir.Passage):
                passages.append(item)
            else:
                attrs_[item[0]] = item[1]
        return (
            "revision",
            ir.Revision(
                number=str(number),
                dated=self._date(dated),
                effective=self._date(effective),
                description=tuple(passages),
                span=_span(meta),
                **attrs_,
            ),
        )

    def change_history(self, meta, children):
        return _Block(ir.HistoryRow, tuple(children))

    def history_row(self, meta, children):
        revision, dated, description, *rest = children
        attrs_: dict = {"prepared_by": None, "approved_by": None, "reviewed": None, "effective": None}
        for item in rest:
            if item is not None:
                attrs_[item[0]] = item[1]
        return ir.HistoryRow(
            revision=unquote(revision),
            dated=unquote(dated),
            description=unquote(description),
            span=_span(meta),
            **attrs_,
        )

    # ------------------------------------------------------------ precedence

    def precedence(self, meta, children):
        return _Block(ir.PrecedenceStep, tuple(children))

    def precedence_step(self, meta, children):
        kind, category = children[0]
        return ir.PrecedenceStep(kind, category, _span(meta))

    def kind_refer(self, meta, children):
        return ("refer", None)

    def kind_deny(self, meta, children):
        return ("deny", children[0])

    def kind_limit(self, meta, children):
        return ("limit", None)

    def kind_cover(self, meta, children):
        return ("cover", None)

    def kind_otherwise(self, meta, children):
        return ("otherwise", None)

    def not_reasonable_and_necessary(self, meta, children):
        return "not_reasonable_and_necessary"

    def incorrect_coding(self, meta, children):
        return "incorrect_coding"

    def not_covered(self, meta, children):
        return "not_covered"

    # ------------------------------------------------------------ facts

    def facts(self, meta, children):
        return _Block(ir.Fact, tuple(children))

    def fact(self, meta, children):
        name, ftype, *rest = children
        if isinstance(ftype, tuple):  # a `one of` list, with the options written after it
            ftype, options = ftype
            rest = options + rest
        per_line = False
        default = ir.NO_DEFAULT
        question = None
        for item in rest:
            if item is None:
                continue
            if isinstance(item, ir.Passage):
                question = item.text if question is None else question + " " + item.text
            elif item == "per_line":
                per_line = True
            elif isinstance(item, tuple) and item[0] == "default":
                default = item[1]
        return ir.Fact(str(name), ftype, question, per_line, default, _tok_span(name))

    def type_bool(self, meta, children):
        return ir.FactType("bool")

    def type_int(self, meta, children):
        low, high = children
        if low is None:
            return ir.FactType("int")
        return ir.FactType("int", low=self._int(low), high=self._int(high))

    def type_number(self, meta, children):
        return ir.FactType("number", unit=children[0])

    def type_date(self, meta, children):
        return ir.FactType("date", or_none=children[0] is not None)

    def or_none(self, meta, children):
        return True

    def type_code(self, meta, children):
        return ir.FactType("code")

    def type_enum(self, meta, children):
        named = [c for c in children if isinstance(c, EnumValue)]
        options = [c for c in children if not isinstance(c, EnumValue)]
        values = tuple(value.name for value in named)
        labels = tuple(value.label for value in named) if any(value.label for value in named) else ()
        return (ir.FactType("enum", values=values, labels=labels), options)

    def enum_value(self, meta, children):
        name, label = children
        return EnumValue(str(name), unquote(label) if label is not None else None)

    def per_line(self, meta, children):
        return "per_line"

    def default(self, meta, children):
        return ("default", children[0])

    def literal(self, meta, children):
        tok = children[0]
        if tok.type == "STRING":
            return unquote(tok)
        if tok.type == "NUMBER":
            return self._number(tok)
        if tok.type == "DATE":
            return self._date(tok)
        return str(tok)

    def true(self, meta, children):
        return True

    def false(self, meta, children):
        return False

    def none(self, meta, children):
        return None

    def unit(self, meta, children):
        return str(children[0])

    # ------------------------------------------------------------ tables

    def codes(self, meta, children):
        name, title, *entries = children
        # Rows of bare codes arrive as lists, like the one-line `= A, B` form.
        flat = []
        for entry in entries:
            if isinstance(entry, list):
                flat.extend(entry)
            else:
                flat.append(entry)
        return ir.CodeSet(str(name), unquote(title), "codes", tuple(flat), _tok_span(name))

    def code_entry(self, meta, children):
        code, description, *windows = children
        return ir.CodeEntry(str(code), unquote(description), window=self._window(windows), span=_tok_span(code))

    def code_list(self, meta, children):
        out = []
        for tok in children:
            if tok.type == "CODE":
                out.append(ir.CodeEntry(str(tok), span=_tok_span(tok)))
            else:
                out.append(ir.Ref(str(tok), _tok_span(tok)))
        return out

    def diagnoses(self, meta, children):
        name, title, *lines = children
        flat = []
        for line in lines:
            flat.extend(line)
        return ir.CodeSet(str(name), unquote(title), "diagnoses", tuple(flat), _tok_span(name))

    def dx_line(self, meta, children):
        return children[0]

    def dx_list(self, meta, children):
        return list(children)

    def dx_entry(self, meta, children):
        code, last, *windows = children
        return ir.CodeEntry(
            str(code), last=str(last) if last is not None else None, window=self._window(windows), span=_tok_span(code)
        )

    def drugs(self, meta, children):
        name, title, *drugs = children
        return ir.DrugTable(str(name), unquote(title), tuple(drugs), _tok_span(name))

    def drug(self, meta, children):
        name, *rest = children
        codes, vial, windows = [], None, []
        for item in rest:
            if item is None:
                continue
            if isinstance(item, Token) and item.type == "CODE":
                codes.append(str(item))
            elif isinstance(item, tuple) and item[0] == "vial":
                vial = item[1]
            else:
                windows.append(item)
        return ir.Drug(str(name), tuple(codes), vial, self._window(windows), _tok_span(name))

    def vial(self, meta, children):
        return ("vial", self._number(children[0]))

    def effective(self, meta, children):
        return ("effective", self._date(children[0]), _span(meta))

    def until(self, meta, children):
        return ("until", self._date(children[0]), _span(meta))

    def _window(self, windows) -> ir.Window:
        effective = until = None
        span = ir.NO_SPAN
        for window in windows:
            if window is None:
                continue
            kind, day, span_ = window
            span = span_ if span is ir.NO_SPAN else span
            if kind == "effective":
                effective = day
            else:
                until = day
        return ir.Window(effective, until, span)

    def criteria(self, meta, children):
        name, title, *rest = children
        passages = tuple(c for c in rest if isinstance(c, ir.Passage))
        conditions = tuple(c for c in rest if not isinstance(c, ir.Passage))
        return ir.Criteria(str(name), unquote(title), passages, ir.AllOf(conditions, _span(meta)), _tok_span(name))

    # ------------------------------------------------------------ sections and rules

    def section(self, meta, children):
        sid, title, *items = children
        passages = tuple(i for i in items if isinstance(i, ir.Passage))
        requires = tuple(i[1] for i in items if isinstance(i, tuple) and i[0] == "require")
        rules = tuple(i for i in items if isinstance(i, ir.Rule))
        sections = tuple(i for i in items if isinstance(i, ir.Section))
        title_text = unquote(title)
        # A rule inherits its section's requirements and title; nested sections pass
        # theirs down, so "situations A - J require criteria set 1 or 2" is said once.
        rules = tuple(
            ir.Rule(**{**_fields(r), "section": r.section or title_text, "requires": _required(r, requires)})
            for r in rules
        )
        sections = tuple(_with_requires(s, requires) for s in sections)
        return ir.Section(str(sid), title_text, passages, requires, rules, sections, _tok_span(sid))

    def require(self, meta, children):
        return ("require", children[0])

    def rule(self, meta, children):
        rid, *items = children
        passages, windows, decisions, shows = [], [], [], []
        for item in items:
            if isinstance(item, ir.Passage):
                passages.append(item)
            elif isinstance(item, tuple) and item[0] == "show":
                shows.extend(item[1])
            elif isinstance(item, tuple) and item[0] == "window":
                windows.append(item[1])
            else:
                decisions.append(item)
        if not decisions:
            self.problems.append(
                Diagnostic(
                    self.path,
                    rid.line,
                    rid.column,
                    "rule-without-decision",
                    f"rule `{rid}` decides nothing",
                    help="add `cover ...`, `deny ... as ...`, `refer ...` or `limit ...`",
                    width=len(rid),
                )
            )
            return None
        base = {
            "id": str(rid),
            "section": "",
            "passages": tuple(passages),
            "shows": tuple(shows),
            "window": self._window(windows),
            "span": _tok_span(rid),
        }
        follow = [d for d in decisions if d.get("kind") in ("administer", "follow")]
        if follow:
            merged = {"kind": "follow", "targets": ir.Targets((), span=base["span"]), "condition": ir.Always()}
            for d in follow:
                merged.update({k: v for k, v in d.items() if k != "kind"})
            if len(decisions) > len(follow):
                self._extra_decision(rid, decisions[len(follow)])
            return ir.Rule(**base, **merged)
        if len(decisions) > 1:
            self._extra_decision(rid, decisions[1])
        decision = {k: v for k, v in decisions[0].items() if k != "span"}
        return ir.Rule(**base, **decision)

    def _extra_decision(self, rid, decision):
        span = decision.get("span", ir.NO_SPAN)
        self.problems.append(
            Diagnostic(
                self.path,
                span.line or rid.line,
                span.column or rid.column,
                "two-decisions",
                f"rule `{rid}` makes more than one decision",
                help="give each decision a rule of its own",
            )
        )

    def show(self, meta, children):
        return ("show", [ir.Ref(str(c), _tok_span(c)) for c in children])

    def rule_window(self, meta, children):
        return ("window", children[0])

    def refer(self, meta, children):
        targets, to, condition = children
        rule = {"kind": "refer", "targets": targets, "condition": condition, "span": _span(meta)}
        if to.type == "POLICY_ID":
            rule.update(refer_to=str(to), refer_policy=str(to), refer_span=_tok_span(to))
        else:
            rule["refer_to"] = unquote(to)
        return rule

    def _default_categories(self, sections: list[ir.Section]) -> list[ir.Section]:
        """Give a denial written without a category the policy's own (its `otherwise` rule's)."""
        rules = [r for s in sections for r in _section_rules(s)]
        uncategorised = [r for r in rules if r.kind == "deny" and r.category is None]
        if not uncategorised:
            return sections
        default = next((r.category for r in rules if r.kind == "otherwise"), None)
        if default is None:
            for rule in uncategorised:
                self.problems.append(
                    Diagnostic(
                        self.path,
                        rule.span.line,
                        rule.span.column,
                        "missing-category",
                        f"rule `{rule.id}` denies without a category, and the policy has no `otherwise` rule",
                        help="write `deny ... as not reasonable and necessary` (or another category), "
                        "or give the policy an `otherwise deny as ...` rule whose category it takes",
                        width=rule.span.width,
                    )
                )
            return sections
        return [_with_category(s, default) for s in sections]

    def deny(self, meta, children):
        targets, category, condition = children
        return {"kind": "deny", "targets": targets, "category": category, "condition": condition, "span": _span(meta)}

    def cover(self, meta, children):
        targets, condition = children
        return {"kind": "cover", "targets": targets, "condition": condition, "span": _span(meta)}

    def otherwise(self, meta, children):
        return {
            "kind": "otherwise",
            "targets": ir.Targets((), all_lines=True, span=_span(meta)),
            "category": children[0],
            "condition": ir.Always(_span(meta)),
            "span": _span(meta),
        }

    def limit(self, meta, children):
        each, targets, amount, unit, period, excess, category, condition = children
        kind, length, length_unit = period
        if isinstance(amount, Token):
            amount = self._number(amount)
        return {
            "kind": "limit",
            "targets": targets,
            "category": category or "not_reasonable_and_necessary",
            "limit": ir.Limit(amount, unit, kind, length, length_unit, each is not None, excess is not None),
            "condition": condition,
            "span": _span(meta),
        }

    def each(self, meta, children):
        return True

    def excess(self, meta, children):
        return True

    def per_units(self, meta, children):
        return "units"

    def per_vials(self, meta, children):
        return "vials"

    def per_days(self, meta, children):
        return "days"

    def calendar_month(self, meta, children):
        return ("calendar_month", None, None)

    def calendar_quarter(self, meta, children):
        return ("calendar_quarter", None, None)

    def calendar_year(self, meta, children):
        return ("calendar_year", None, None)

    def rolling(self, meta, children):
        return ("rolling", self._number(children[0]), children[1])

    def per_line_period(self, meta, children):
        return ("line", None, None)

    def administer(self, meta, children):
        bases, served, fact = children
        return {"kind": "administer", "bases": bases, "targets": served, "served_fact": str(fact)}

    def follow(self, meta, children):
        dependents, noun, fact = children
        return {"kind": "follow", "dependents": dependents, "base_noun": str(noun), "owned_fact": str(fact)}

    def all_lines(self, meta, children):
        exclude = tuple(_as_ref(e) for e in (children[0] or ()))
        return ir.Targets((), exclude, True, _span(meta))

    def targets(self, meta, children):
        include, exclude = children
        refs = tuple(_as_ref(e) for e in include)
        excl = tuple(_as_ref(e) for e in (exclude or ()))
        return ir.Targets(refs, excl, False, _span(meta))

    # ------------------------------------------------------------ conditions

    def always(self, meta, children):
        return ir.Always(_span(meta))

    def unless(self, meta, children):
        return ir.Not(children[0], _span(meta))

    def all_of(self, meta, children):
        return ir.AllOf(tuple(children), _span(meta))

    def any_of(self, meta, children):
        return ir.AnyOf(tuple(children), _span(meta))

    def at_least(self, meta, children):
        count, *items = children
        return ir.AtLeast(self._int(count), tuple(items), _span(meta))

    def none_of(self, meta, children):
        return ir.Not(ir.AnyOf(tuple(children), _span(meta)), _span(meta))

    def clause(self, meta, children):
        label, name, *rest = children
        windows = [r for r in rest if isinstance(r, tuple)]
        passages = tuple(r for r in rest if isinstance(r, ir.Passage))
        conditions = tuple(r for r in rest if not isinstance(r, (tuple, ir.Passage)))
        return ir.Clause(
            str(label), str(name), self._window(windows), passages, ir.AllOf(conditions, _span(meta)), _span(meta)
        )

    def or_(self, meta, children):
        return children[0] if len(children) == 1 else ir.AnyOf(tuple(children), _span(meta))

    def and_(self, meta, children):
        return children[0] if len(children) == 1 else ir.AllOf(tuple(children), _span(meta))

    def not_(self, meta, children):
        return ir.Not(children[0], _span(meta))

    def truth(self, meta, children):
        return ir.Truth(str(children[0]), _span(meta))

    def is_(self, meta, children):
        return ir.Is(str(children[0]), self._value(children[1]), False, _span(meta))

    def is_not(self, meta, children):
        return ir.Is(str(children[0]), self._value(children[1]), True, _span(meta))

    def in_(self, meta, children):
        return ir.In(str(children[0]), tuple(self._value(v) for v in children[1:]), _span(meta))

    def _value(self, value):
        if isinstance(value, Token):
            if value.type == "STRING":
                return unquote(value)
            if value.type == "NUMBER":
                return self._number(value)
            return str(value)
        return value

    def compare(self, meta, children):
        left, op, right = children
        return ir.Compare(left, str(op), right, _span(meta))

    def ref(self, meta, children):
        return ir.FactRef(str(children[0]), _span(meta))

    def line_units(self, meta, children):
        return ir.LineUnits(_span(meta))

    def date_literal(self, meta, children):
        return ir.DateLiteral(self._date(children[0]), _span(meta))

    def period(self, meta, children):
        amount, unit = children
        return ir.Period(self._number(amount), unit, _span(meta))

    def earlier_units(self, meta, children):
        codes, period = children
        return ir.EarlierUnits(ir.Targets(tuple(_as_ref(c) for c in codes), span=_span(meta)), period, _span(meta))

    def _arith(self, op, meta, children):
        left, right = children
        return ir.Arith(op, left, right, _span(meta))

    def add(self, meta, children):
        return self._arith("+", meta, children)

    def subtract(self, meta, children):
        return self._arith("-", meta, children)

    def multiply(self, meta, children):
        return self._arith("*", meta, children)

    def divide(self, meta, children):
        return self._arith("/", meta, children)

    def quantity(self, meta, children):
        number, unit = children
        return ir.Quantity(self._number(number), unit, _span(meta))

    def diagnosis_in(self, meta, children):
        return ir.DiagnosisIn(tuple(ir.Ref(str(c), _tok_span(c)) for c in children), _span(meta))

    def billed_with(self, meta, children):
        codes, other, period = children
        return ir.BilledWith(
            ir.Targets(tuple(_as_ref(c) for c in codes), span=_span(meta)),
            ir.Targets(tuple(_as_ref(c) for c in other), span=_span(meta)) if other else None,
            _span(meta),
            period,
        )

    def drug_in(self, meta, children):
        return ir.DrugIn(ir.Targets(tuple(_as_ref(c) for c in children[0]), span=_span(meta)), _span(meta))

    def line_outcome(self, meta, children):
        code, (outcome, category, rule) = children
        targets = ir.Targets((ir.Ref(str(code), _tok_span(code)),), span=_tok_span(code))
        return ir.LineOutcome(targets, outcome, category, _span(meta), rule)

    def outcome_covered(self, meta, children):
        return ("covered", None, children[0])

    def outcome_denied(self, meta, children):
        return ("denied", children[0], children[1])

    def decided_by(self, meta, children):
        return ir.Ref(str(children[0]), _tok_span(children[0]))

    def criteria_of(self, meta, children):
        return ir.CriteriaOf(str(children[0]), str(children[1]), _span(meta))

    def has_modifier(self, meta, children):
        return ir.HasModifier(str(children[0]), _span(meta))

    def within_before(self, meta, children):
        subject, amount, unit, anchor = children
        return ir.Within(subject, self._number(amount), unit, "before", anchor, _span(meta))

    def within_after(self, meta, children):
        subject, amount, unit, anchor = children
        return ir.Within(subject, self._number(amount), unit, "after", anchor, _span(meta))


def _as_ref(entry) -> ir.Ref:
    if isinstance(entry, ir.Ref):
        return entry
    return ir.Ref(entry.code, entry.span)


def _fields(rule: ir.Rule) -> dict:
    return {f.name: getattr(rule, f.name) for f in rule.__attrs_attrs__}


def _required(rule: ir.Rule, requires: tuple) -> tuple:
    # A section's requirements are conditions of coverage: they narrow `cover` rules
    # and leave denials, referrals and limits as written.
    return requires + rule.requires if rule.kind == "cover" else rule.requires


def _section_rules(section: ir.Section):
    yield from section.rules
    for sub in section.sections:
        yield from _section_rules(sub)


def _with_category(section: ir.Section, category: str) -> ir.Section:
    rules = tuple(
        ir.Rule(**{**_fields(r), "category": category}) if r.kind == "deny" and r.category is None else r
        for r in section.rules
    )
    subs = tuple(_with_category(s, category) for s in section.sections)
    return ir.Section(section.id, section.title, section.passages, section.requires, rules, subs, section.span)


def _with_requires(section: ir.Section, requires: tuple) -> ir.Section:
    if not requires:
        return section
    rules = tuple(ir.Rule(**{**_fields(r), "requires": _required(r, requires)}) for r in section.rules)
    subs = tuple(_with_requires(s, requires) for s in section.sections)
    return ir.Section(
        section.id, section.title, section.passages, requires + section.requires, rules, subs, section.span
    )


# How deep a policy's blocks and expressions may nest (the encoded policies reach 13). Each
# level is a level of recursion when the tree is lowered, checked and interpreted, and
# `not` or arithmetic a level of brackets in the generated Python, which refuses more than
# 200: a condition nested deeper than this is refused with a diagnostic instead.
MAX_DEPTH = 100


def _too_deep(tree: Tree, path: str) -> Diagnostic | None:
    """The first node nested deeper than MAX_DEPTH, as a diagnostic (found without recursion)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
            # A caret where the node starts, the width of its first token if it has one there
            # (the rest of the node, thousands of levels long, would be as long as the line).
            first = node
            while isinstance(first, Tree) and first.children:
                first = first.children[0]
            starts_here = isinstance(first, Token) and (first.line, first.column) == (line, column)
            width = len(first) if starts_here else 1
            return Diagnostic(
                path,
                line,
                column,
                "too-deep",
                "this is nested too deeply to compile",
                width=width,
                help=f"blocks, brackets, `not` and arithmetic may nest {MAX_DEPTH} levels in all; "
                "name a part of the condition as `criteria`",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


def lower(tree: Tree, path: str = "<policy>", text: str | None = None) -> ir.Policy:
    """Turn a parse tree into the IR; raise PolicyError if a literal is malformed."""
    deep = _too_deep(tree, path)
    if deep is not None:
        raise PolicyError([deep], {path: text} if text is not None else {})
    transformer = _Lower(path)
    policy = transformer.transform(tree)
    if transformer.problems:
        raise PolicyError(transformer.problems, {path: text} if text is not None else {})
    return policy


def read(text: str, path: str = "<policy>") -> ir.Policy:
    """Parse and lower a policy's text."""
    return lower(parse(text, path), path, text)
