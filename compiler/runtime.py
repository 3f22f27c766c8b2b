"""What conditions read at run time: the line's context and three-valued helpers.

Both the reference interpreter and the generated predicates evaluate against a
`LineContext` and share these helpers, so they can differ only in how they walk
the conditions. A truth value is `True`, `False`, or a frozenset of the fact names
whose absence leaves it unknown.
"""

from __future__ import annotations

import calendar
import datetime
import functools
from typing import Any

import msgspec

from medpol.compiler.logic import all_of, not_  # noqa: F401 - generated code reads them from here
from medpol.compiler.resolve import DiagnosisSet, Members, in_members

Truth = "bool | frozenset[str]"


class Lookback:
    """The claim's lines and the member's history, as look-back conditions read them.

    The engine passes an object with the same two attributes that builds them lazily.
    """

    __slots__ = ("lines", "history")

    def __init__(self, lines=(), history=()):
        self.lines = lines
        self.history = history


NO_LOOKBACK = Lookback()


class LineContext(msgspec.Struct, eq=False):
    """Everything a condition may read about one line, decided as of `day`.

    A Struct: the engine makes one for every line it decides, and a Struct is built in C.
    Compared and hashed by identity, as a plain object would be.
    """

    facts: Any
    day: datetime.date
    dx: Any
    codes: Any
    modifiers: Any
    units: Any
    birth_date: datetime.date
    line_of_business: str
    licensed: bool
    place_of_service: str | None
    status: Any  # HCPCS -> list of (outcome, missing) of lines already decided
    seq: int = 0
    # What conditions that look back over a period read: `.lines`, (code, day, seq, units)
    # of the claim's lines, and `.history`, (code, day, units) of the member's earlier
    # claims. Built only when such a condition asks.
    lookback: Any = NO_LOOKBACK
    hits: list = msgspec.field(default_factory=list)  # clause ids that held, for a decision's reasons
    served: str | None = None  # the item this line is about; None when the claim does not say
    owned: bool = False  # the member's own base item stands in for a base line


class _Valueless:
    """A value that takes part in no period and no comparison: every test on it is false.

    NO_EVENT is the value of a `date or none` fact whose record shows no such event;
    NOTHING is an arithmetic result with no value (a division by zero).
    """

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        return self.name  # pickles as the module's own constant


NO_EVENT = _Valueless("NO_EVENT")
NOTHING = _Valueless("NOTHING")


# The built-in facts a line's context holds, by the attribute that holds each: generated
# code reads the attribute itself, the interpreter goes through `builtin`.
BUILTIN_ATTRIBUTES = {
    "line_of_business": "line_of_business",
    "supplier_licensed_in_state": "licensed",
    "place_of_service": "place_of_service",
    "service_date": "day",
}


def builtin(ctx: LineContext, name: str):
    attribute = BUILTIN_ATTRIBUTES.get(name)
    return getattr(ctx, attribute) if attribute is not None else None


def age(ctx: LineContext, unit: str | None) -> int:
    """Whole calendar months or years completed on the day of service."""
    born, day = ctx.birth_date, ctx.day
    months = (day.year - born.year) * 12 + (day.month - born.month)
    # A month is completed on the same day of the month, or on the month's last day
    # when it has no such day (born January 31: one month old on February 28).
    if day.day < born.day and day.day < last_day_of_month(day.year, day.month):
        months -= 1
    if unit in ("month", "months"):
        return months
    return months // 12


# Date arithmetic saturates at the calendar's first and last day (years 1 and 9999): a
# date moved past either end is that end. A length of time a policy gives, or a date a
# claim gives, can reach past them (`within 36500 months`, a date in the year 9999); a
# comparison with the end then answers as it would with the true date, except on that
# very day.
FIRST_DAY, LAST_DAY = datetime.date.min, datetime.date.max


def last_day_of_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def months_before(day: datetime.date, months: int) -> datetime.date:
    """The same day of the month `months` earlier, clamped to the month's end."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    if year < FIRST_DAY.year:
        return FIRST_DAY
    if year > LAST_DAY.year:
        return LAST_DAY
    return datetime.date(year, month, min(day.day, last_day_of_month(year, month)))


def add_days(day: datetime.date, days: float) -> datetime.date:
    """`day` moved by `days`, saturating at the calendar's ends."""
    try:
        return day + datetime.timedelta(days=days)
    except OverflowError:  # past the calendar, or a number of days no timedelta holds
        return LAST_DAY if days > 0 else FIRST_DAY


# Cached: conditions over periods ask it of the same few hundred dates of service and
# documentation dates over and over.
@functools.lru_cache(maxsize=4096)
def shift(day: datetime.date, amount: float, unit: str) -> datetime.date:
    """`day` moved by `amount` days, weeks, months or years (months clamp to the month's end)."""
    if unit in ("month", "months"):
        return months_before(day, -int(amount))
    if unit in ("year", "years"):
        return months_before(day, -int(amount) * 12)
    if unit in ("week", "weeks"):
        return add_days(day, amount * 7)
    return add_days(day, amount)


def within(subject, amount: float, unit: str, direction: str, anchor) -> bool:
    """`subject` falls in the `amount` `unit`s before (or after) `anchor`, both ends included."""
    if subject is NO_EVENT or anchor is NO_EVENT or subject is NOTHING or anchor is NOTHING:
        return False
    if direction == "before":
        return shift(anchor, -amount, unit) <= subject <= anchor
    return anchor <= subject <= shift(anchor, amount, unit)


def arith(op: str, a, b, shift_unit: str | None = None):
    """`a op b` for known operands; `shift_unit` is set when a date moves by a length of time."""
    if a is NO_EVENT or b is NO_EVENT:
        return NO_EVENT
    if a is NOTHING or b is NOTHING:
        return NOTHING
    if shift_unit is not None:
        return shift(a, b if op == "+" else -b, shift_unit)
    if op == "+":
        return a + b
    if op == "-":
        diff = a - b
        return diff.days if isinstance(diff, datetime.timedelta) else diff
    if op == "*":
        return a * b
    return a / b if b else NOTHING


_COMPARE = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def compare(op: str, a, b) -> bool:
    """A comparison of known operands; an event that did not happen compares with nothing."""
    if a is NO_EVENT or b is NO_EVENT or a is NOTHING or b is NOTHING:
        return False
    return _COMPARE[op](a, b)


def period_start(day: datetime.date, amount: float, unit: str) -> datetime.date:
    """The first day of the look-back period of `amount` `unit`s that ends on `day`.

    N days are the day and the N - 1 days before it; N months are the days after the
    same day N months earlier, through the day.
    """
    if unit in ("day", "days"):
        return add_days(day, 1 - int(amount))
    if unit in ("week", "weeks"):
        return add_days(day, 1 - int(amount * 7))
    start = shift(day, -amount, unit)
    return start if start == FIRST_DAY else add_days(start, 1)


def earlier_units(ctx: LineContext, codes: Members, amount: float, unit: str) -> float:
    """Units of `codes` billed before this line within the period: on this claim and in history."""
    day = ctx.day
    start = period_start(day, amount, unit)
    total = 0
    for code, served, units in ctx.lookback.history:
        if start <= served <= day and in_members(codes, code, served):
            total += units
    mine = (day, ctx.seq)
    for code, served, seq, units in ctx.lookback.lines:
        if start <= served and (served, seq) < mine and in_members(codes, code, served):
            total += units
    return total


def dx_in(ctx: LineContext, sets: tuple[DiagnosisSet, ...]) -> bool:
    day = ctx.day
    for code in ctx.dx:
        for s in sets:
            if s.contains(code, day):
                return True
    return False


def served_in(ctx: LineContext, codes: Members, unknown: frozenset):
    """The line's item (for a base line, the item it serves) is one of `codes`."""
    if ctx.served is None:
        return unknown
    return in_members(codes, ctx.served, ctx.day)


def billed_with(ctx: LineContext, codes: Members, other_than: Members | None, period=None) -> bool:
    """A line of `codes` on the claim; with a period, also a history line served within it."""
    day = ctx.day
    for code in ctx.codes:
        if in_members(codes, code, day) and (other_than is None or not in_members(other_than, code, day)):
            return True
    if period is not None:
        start = period_start(day, *period)
        for code, served, _units in ctx.lookback.history:
            if (
                start <= served <= day
                and in_members(codes, code, served)
                and (other_than is None or not in_members(other_than, code, served))
            ):
                return True
    return False


def line_outcome(ctx: LineContext, codes: Members, outcome: str, category: str | None, rule: str | None = None):
    """Whether another line of `codes` on the claim was decided `outcome` (and `category`, by `rule`).

    Unknown, with the facts it lacks, while such a line is pending; the engine decides the
    lines a condition reads before the lines that read them.
    """
    missing: set[str] = set()
    for code, decided in ctx.status.items():
        if code not in codes:
            continue
        for got, got_category, lacking, got_rule in decided:
            if got == outcome and (category is None or got_category == category) and (rule is None or got_rule == rule):
                return True
            if got == "pending":
                missing.update(lacking)
    return frozenset(missing) if missing else False


def criteria_of(ctx: LineContext, policy: str, name: str):
    """Another policy's named criteria, asked of the library the claim is decided in.

    The library evaluates them with the claim's facts, read as that policy declares them,
    as of this line's date. Outside a library (a policy compiled on its own) they cannot
    be read, so they are unknown under their qualified name.
    """
    run = ctx.lookback
    ask = getattr(run, "criteria_of", None)
    if ask is None:
        return frozenset((f"{policy}.{name}",))
    return ask(policy, name, ctx)


def negate(value):
    """Three-valued not of an item's value; an item not in effect (None) is left out, so
    its negation holds."""
    if value is True:
        return False
    if value is False or value is None:
        return True
    return value


def missing_of(values: dict) -> frozenset:
    """The names among `values` (fact name -> value read) whose value is missing."""
    return frozenset(name for name, value in values.items() if value is None)
