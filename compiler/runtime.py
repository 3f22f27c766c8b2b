"""What conditions read at run time: the line's context and three-valued helpers.

Both the reference interpreter and the generated predicates evaluate against a
`LineContext` and share these helpers, so they can differ only in how they walk
the conditions. A truth value is `True`, `False`, or a frozenset of the fact names
whose absence leaves it unknown.
"""

from __future__ import annotations

import datetime

from compiler.resolve import DiagnosisSet, Members, in_members

Truth = "bool | frozenset[str]"


class LineContext:
    """Everything a condition may read about one line, decided as of `day`."""

    __slots__ = (
        "facts",
        "day",
        "dx",
        "codes",
        "modifiers",
        "units",
        "birth_date",
        "line_of_business",
        "licensed",
        "place_of_service",
        "status",
        "hits",
        "drug",
        "owned",
    )

    def __init__(
        self, facts, day, dx, codes, modifiers, units, birth_date, line_of_business, licensed, place_of_service, status
    ):
        self.facts = facts
        self.day = day
        self.dx = dx
        self.codes = codes
        self.modifiers = modifiers
        self.units = units
        self.birth_date = birth_date
        self.line_of_business = line_of_business
        self.licensed = licensed
        self.place_of_service = place_of_service
        self.status = status  # HCPCS -> list of (outcome, missing) of lines already decided
        self.hits = []  # clause ids that held, for the reasons of a decision
        self.drug = None  # the drug this line is about; None when the claim does not say
        self.owned = False  # the member's own pump stands in for a pump line


def builtin(ctx: LineContext, name: str):
    if name == "line_of_business":
        return ctx.line_of_business
    if name == "supplier_licensed_in_state":
        return ctx.licensed
    if name == "place_of_service":
        return ctx.place_of_service
    if name == "pump_owned":
        return ctx.owned
    return None


def age(ctx: LineContext, unit: str | None) -> int:
    """Whole calendar months or years completed on the day of service."""
    born, day = ctx.birth_date, ctx.day
    months = (day.year - born.year) * 12 + (day.month - born.month)
    # A month is completed on the same day of the month, or on the month's last day
    # when it has no such day (born January 31: one month old on February 28).
    if day.day < born.day and (day + datetime.timedelta(days=1)).month == day.month:
        months -= 1
    if unit in ("month", "months"):
        return months
    return months // 12


def months_before(day: datetime.date, months: int) -> datetime.date:
    """The same day of the month `months` earlier, clamped to the month's end."""
    total = day.year * 12 + (day.month - 1) - months
    year, month = divmod(total, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return datetime.date(year, month, candidate)
        except ValueError:
            continue
    raise ValueError(day)


def within_before(earlier, amount: float, unit: str, later) -> bool:
    """`earlier` falls in the period of `amount` units preceding `later` (inclusive)."""
    if earlier > later:
        return False
    if unit in ("month", "months"):
        return earlier >= months_before(later, int(amount))
    if unit in ("year", "years"):
        return earlier >= months_before(later, int(amount) * 12)
    if unit in ("week", "weeks"):
        return (later - earlier).days <= amount * 7
    return (later - earlier).days <= amount


def dx_in(ctx: LineContext, sets: tuple[DiagnosisSet, ...]) -> bool:
    day = ctx.day
    for code in ctx.dx:
        for s in sets:
            if s.contains(code, day):
                return True
    return False


def drug_in(ctx: LineContext, codes: Members, unknown: frozenset):
    if ctx.drug is None:
        return unknown
    return in_members(codes, ctx.drug, ctx.day)


def billed_with(ctx: LineContext, codes: Members, other_than: Members | None) -> bool:
    day = ctx.day
    for code in ctx.codes:
        if in_members(codes, code, day) and (other_than is None or not in_members(other_than, code, day)):
            return True
    return False


def line_covered(ctx: LineContext, code: str):
    decided = ctx.status.get(code)
    if not decided:
        return False
    missing: set[str] = set()
    for outcome, lacking in decided:
        if outcome == "covered":
            return True
        if outcome == "pending":
            missing.update(lacking)
    return frozenset(missing) if missing else False


def all_of(values):
    """Three-valued and: False wins, then unknown (with every missing name), then True."""
    missing: set[str] = set()
    for v in values:
        if v is False:
            return False
        if v is not True:
            missing.update(v)
    return frozenset(missing) if missing else True


def not_(value):
    if value is True:
        return False
    if value is False:
        return True
    return value
