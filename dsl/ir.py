"""The typed IR of a policy: frozen attrs nodes that every later stage reads.

Nodes keep the span of the text they came from, so checks, generated code and
decisions can point back at the policy line. Validation is not done here: the
checker (compiler/check.py) reports problems, the IR only records what was written.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import attrs


@attrs.frozen
class Span:
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def width(self) -> int:
        if self.end_line != self.line:
            return 1
        return max(1, self.end_column - self.column)


NO_SPAN = Span(0, 0, 0, 0)


@attrs.frozen
class Window:
    """An effective-date window: in effect from `effective` (inclusive) until `until` (exclusive)."""

    effective: datetime.date | None = None
    until: datetime.date | None = None
    span: Span = attrs.field(default=NO_SPAN, eq=False)

    def contains(self, day: datetime.date) -> bool:
        if self.effective is not None and day < self.effective:
            return False
        if self.until is not None and day >= self.until:
            return False
        return True

    @property
    def always(self) -> bool:
        return self.effective is None and self.until is None


ALWAYS = Window()


@attrs.frozen
class Passage:
    """A quotation of the policy text; `...` marks words left out."""

    text: str
    span: Span = attrs.field(eq=False)


# ---------------------------------------------------------------- header


@attrs.frozen
class Revision:
    number: str
    dated: datetime.date
    effective: datetime.date
    prepared_by: str | None
    approved_by: str | None
    reviewed: str | None
    description: tuple[Passage, ...]
    span: Span = attrs.field(eq=False)
    note: str | None = None


@attrs.frozen
class HistoryRow:
    revision: str
    dated: str
    description: str
    prepared_by: str | None
    approved_by: str | None
    reviewed: str | None
    effective: str | None
    span: Span = attrs.field(eq=False)


# ---------------------------------------------------------------- facts


@attrs.frozen
class FactType:
    kind: str  # bool | int | number | date | code | enum | text
    unit: str | None = None
    values: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    or_none: bool = False  # a date that may be "none": the record shows no such event
    # The words a reader sees for each `one of` value, in the order of `values` (None where
    # the author gave none); empty when no value has any.
    labels: tuple[str | None, ...] = ()

    def label(self, value: str) -> str | None:
        """The author's words for a `one of` value, if they gave any."""
        if self.labels and value in self.values:
            return self.labels[self.values.index(value)]
        return None

    def describe(self) -> str:
        if self.kind == "date" and self.or_none:
            return "date or none"
        if self.kind == "enum":
            return "one of " + ", ".join(self.values)
        if self.kind == "number" and self.unit:
            return f"number ({self.unit})"
        if self.kind == "int" and self.low is not None:
            return f"int {self.low} to {self.high}"
        return self.kind


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT = _NoDefault()


@attrs.frozen
class Fact:
    name: str
    type: FactType
    question: str | None
    per_line: bool = False
    default: object = NO_DEFAULT
    span: Span = attrs.field(default=NO_SPAN, eq=False)

    @property
    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT


# ---------------------------------------------------------------- tables


@attrs.frozen
class Ref:
    """A name or code written where a set of codes is expected."""

    name: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class CodeEntry:
    """A HCPCS code, or an ICD-10-CM code or range; `last` is set for a range."""

    code: str
    description: str | None = None
    last: str | None = None
    window: Window = ALWAYS
    span: Span = attrs.field(default=NO_SPAN, eq=False)


@attrs.frozen
class CodeSet:
    name: str
    title: str
    kind: str  # codes | diagnoses
    entries: tuple[CodeEntry | Ref, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Drug:
    name: str
    codes: tuple[str, ...]  # empty: the drug is declared in an earlier table
    vial_units: float | None
    window: Window
    span: Span = attrs.field(eq=False)


@attrs.frozen
class DrugTable:
    name: str
    title: str
    drugs: tuple[Drug, ...]
    span: Span = attrs.field(eq=False)


# ---------------------------------------------------------------- conditions


@attrs.frozen
class AllOf:
    items: tuple[Condition, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class AnyOf:
    items: tuple[Condition, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class AtLeast:
    count: int
    items: tuple[Condition, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Not:
    item: Condition
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Clause:
    """A numbered item of the policy, cited on its own, with its own effective window."""

    label: str
    name: str
    window: Window
    passages: tuple[Passage, ...]
    condition: AllOf
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Truth:
    """A bool fact, a built-in bool, or a named set of criteria."""

    name: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class CriteriaOf:
    """Another policy's named criteria (`meets basic_coverage of manual-wheelchair-bases`),
    read with the claim's facts as of the line's date."""

    name: str
    policy: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Is:
    name: str
    value: object
    negated: bool
    span: Span = attrs.field(eq=False)


@attrs.frozen
class In:
    name: str
    values: tuple[object, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class FactRef:
    name: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class LineUnits:
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Quantity:
    value: float
    unit: str | None
    span: Span = attrs.field(eq=False)


@attrs.frozen
class DateLiteral:
    value: datetime.date
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Period:
    """A look back of `amount` `unit`s ending on the line's date of service."""

    amount: float
    unit: str
    span: Span = attrs.field(default=NO_SPAN, eq=False)


@attrs.frozen
class EarlierUnits:
    """The units of `codes` billed before this line within `period`: on the claim and in history."""

    codes: Targets
    period: Period
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Arith:
    """`left op right` with units: a date plus or minus a length of time, or numbers."""

    op: str  # + - * /
    left: Operand
    right: Operand
    span: Span = attrs.field(eq=False)


Operand = "FactRef | LineUnits | Quantity | DateLiteral | EarlierUnits | Arith"


@attrs.frozen
class Compare:
    left: Operand
    op: str
    right: Operand
    span: Span = attrs.field(eq=False)


@attrs.frozen
class DiagnosisIn:
    sets: tuple[Ref, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Targets:
    """The codes a rule decides: codes, code sets, drugs, drug tables, less exceptions."""

    include: tuple[Ref, ...]
    exclude: tuple[Ref, ...] = ()
    all_lines: bool = False
    span: Span = attrs.field(default=NO_SPAN, eq=False)


@attrs.frozen
class BilledWith:
    """A line of `codes` on the claim, or with a `period`, also in the member's history within it."""

    codes: Targets
    other_than: Targets | None
    span: Span = attrs.field(eq=False)
    period: Period | None = None


@attrs.frozen
class DrugIn:
    """The item the line is about: its own code, or for a base line the item it serves."""

    codes: Targets
    span: Span = attrs.field(eq=False)


@attrs.frozen
class LineOutcome:
    """Another line of the claim with one of `codes` was decided `outcome` (and `category`),
    by the rule `by` when it is named."""

    codes: Targets
    outcome: str  # covered | denied
    category: str | None
    span: Span = attrs.field(eq=False)
    by: Ref | None = None


@attrs.frozen
class HasModifier:
    modifier: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Within:
    """`subject within N months before|after anchor`: both dates known, subject in that period.

    `before`: anchor - N <= subject <= anchor; `after`: anchor <= subject <= anchor + N.
    """

    subject: Operand
    amount: float
    unit: str
    direction: str  # before | after
    anchor: Operand
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Always:
    span: Span = attrs.field(default=NO_SPAN, eq=False)


Condition = (
    AllOf
    | AnyOf
    | AtLeast
    | Not
    | Clause
    | Truth
    | Is
    | In
    | Compare
    | DiagnosisIn
    | BilledWith
    | DrugIn
    | LineOutcome
    | HasModifier
    | Within
    | CriteriaOf
    | Always
)


def children(cond) -> tuple:
    """The conditions written directly inside `cond`: the items of `all of`, `any of` and
    `at least N of`, what a `not` negates, a numbered item's condition. A leaf has none.

    A `meets` of named criteria is a leaf here: its criteria are a separate part of the
    policy, and a reader that follows them must look them up itself.
    """
    if isinstance(cond, (AllOf, AnyOf, AtLeast)):
        return cond.items
    if isinstance(cond, Not):
        return (cond.item,)
    if isinstance(cond, Clause):
        return (cond.condition,)
    return ()


def walk(cond) -> Iterator:
    """Every condition in `cond`, itself included, outermost first and in the order written."""
    yield cond
    for child in children(cond):
        yield from walk(child)


def clauses(cond) -> Iterator[Clause]:
    """Every numbered item inside `cond`, outermost first and in the order written."""
    return (c for c in walk(cond) if isinstance(c, Clause))


# ---------------------------------------------------------------- rules


@attrs.frozen
class Limit:
    """At most `amount` `unit` in a period, counted over the claim and the member's history.

    `period` is `rolling` (the `length` `length_unit` ending on the line's date of service),
    `calendar_month`, `calendar_quarter`, `calendar_year`, or `line` (the line alone).
    """

    amount: float | Arith | FactRef | LineUnits | Quantity
    unit: str  # units | vials | days
    period: str
    length: float | None = None
    length_unit: str | None = None
    each: bool = False  # every code counted on its own
    excess: bool = False  # only the units past the limit are denied


@attrs.frozen
class Rule:
    id: str
    kind: str  # refer | deny | limit | cover | otherwise | follow
    section: str  # the title of the section it sits in, for citations
    passages: tuple[Passage, ...]
    targets: Targets
    condition: Condition
    category: str | None = None
    refer_to: str | None = None
    refer_policy: str | None = None  # `refer ... to policy ID`: a policy of the library
    refer_span: Span = attrs.field(default=NO_SPAN, eq=False)
    limit: Limit | None = None
    window: Window = ALWAYS
    requires: tuple[Condition, ...] = ()  # from the enclosing sections' `require`
    shows: tuple[Ref, ...] = ()  # facts shown in an explanation that do not decide
    # the relation between base items and their dependents (kind `follow`) only
    bases: Targets | None = None  # `administer`: base items decided by the items they serve
    served_fact: str | None = None  # names the served item when none is billed
    dependents: Targets | None = None  # `follow`: covered when their base is covered
    base_noun: str | None = None  # the author's word for a base (`the pump`)
    owned_fact: str | None = None  # names the base the member owns when none is billed
    span: Span = attrs.field(default=NO_SPAN, eq=False)

    @property
    def precedence_key(self) -> tuple[str, str | None]:
        if self.kind == "deny":
            return ("deny", self.category)
        if self.kind in ("limit", "cover", "otherwise", "refer"):
            return (self.kind, None)
        return ("cover", None)  # a follow rule decides alongside coverage


@attrs.frozen
class Criteria:
    name: str
    title: str
    passages: tuple[Passage, ...]
    condition: AllOf
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Section:
    id: str
    title: str
    passages: tuple[Passage, ...]
    requires: tuple[Condition, ...]
    rules: tuple[Rule, ...]
    sections: tuple[Section, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class PrecedenceStep:
    kind: str
    category: str | None
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Policy:
    id: str
    title: str
    path: str
    language: int
    source: str | None
    revision: Revision | None
    description: tuple[Passage, ...]
    precedence: tuple[PrecedenceStep, ...]
    facts: tuple[Fact, ...]
    code_sets: tuple[CodeSet, ...]
    drug_tables: tuple[DrugTable, ...]
    criteria: tuple[Criteria, ...]
    sections: tuple[Section, ...]
    history: tuple[HistoryRow, ...]
    span: Span = attrs.field(default=NO_SPAN, eq=False)
    language_span: Span = attrs.field(default=NO_SPAN, eq=False)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule, in file order."""
        out: list[Rule] = []

        def walk(section: Section) -> None:
            out.extend(section.rules)
            for sub in section.sections:
                walk(sub)

        for section in self.sections:
            walk(section)
        return tuple(out)
