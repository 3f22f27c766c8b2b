"""Calendar arithmetic the policy relies on: ages in completed months, periods before a date."""

from __future__ import annotations

import datetime

import pytest

from medpol.compiler.runtime import LineContext, age, period_start, shift, within
from medpol.engine.decide import _period

D = datetime.date


def ctx(born: datetime.date, day: datetime.date) -> LineContext:
    return LineContext({}, day, (), (), (), 1, born, "commercial", True, None, {})


@pytest.mark.parametrize(
    "born,day,months",
    [
        (D(2025, 12, 25), D(2026, 1, 24), 0),
        (D(2025, 12, 25), D(2026, 1, 25), 1),
        (D(2026, 1, 31), D(2026, 2, 27), 0),
        (D(2026, 1, 31), D(2026, 2, 28), 1),  # no February 31st: the month ends on the 28th
        (D(2024, 2, 29), D(2025, 2, 28), 12),
        (D(1970, 3, 2), D(2026, 3, 1), 671),
    ],
)
def test_age_counts_completed_calendar_months(born, day, months):
    assert age(ctx(born, day), "months") == months
    assert age(ctx(born, day), "years") == months // 12


@pytest.mark.parametrize(
    "earlier,later,held",
    [
        (D(2025, 7, 5), D(2026, 1, 5), True),  # exactly six months before
        (D(2025, 7, 4), D(2026, 1, 5), False),
        (D(2026, 1, 5), D(2026, 1, 5), True),  # the same day
        (D(2026, 1, 6), D(2026, 1, 5), False),  # after the order
        (D(2025, 8, 31), D(2026, 2, 28), True),
    ],
)
def test_face_to_face_within_six_months_before_the_order(earlier, later, held):
    assert within(earlier, 6, "months", "before", later) is held


# ------------------------------------------------------------ the calendar's ends


@pytest.mark.parametrize(
    "day,amount,unit,moved",
    [
        (D(9999, 12, 1), 1, "months", D.max),
        (D(9999, 6, 1), 2, "years", D.max),
        (D(1, 2, 1), -3, "months", D.min),
        (D(9999, 12, 30), 2, "days", D.max),
        (D(1, 1, 2), -5, "weeks", D.min),
        (D(2026, 3, 10), -36500, "months", D.min),  # a length of time past the calendar
        (D(2026, 3, 10), 10**20, "days", D.max),  # more days than a timedelta holds
        (D(2026, 3, 31), -1, "months", D(2026, 2, 28)),  # inside the calendar, as before
    ],
)
def test_a_date_moved_past_the_calendar_stops_at_its_end(day, amount, unit, moved):
    assert shift(day, amount, unit) == moved


def test_periods_and_ages_at_the_calendar_ends():
    assert period_start(D(1, 1, 5), 90, "days") == D.min
    assert period_start(D(1, 3, 5), 6, "months") == D.min
    assert period_start(D(2026, 3, 10), 90, "days") == D(2025, 12, 11)
    assert age(ctx(D(9999, 11, 30), D.max), "month") == 1
    assert within(D(9999, 12, 31), 30, "days", "after", D(9999, 12, 20))


def test_calendar_periods_end_on_the_last_day_of_their_month():
    assert _period("calendar_month", None, None, D(9999, 12, 15)) == (D(9999, 12, 1), D.max)
    assert _period("calendar_quarter", None, None, D(9999, 11, 2)) == (D(9999, 10, 1), D.max)
    assert _period("calendar_month", None, None, D(2024, 2, 10)) == (D(2024, 2, 1), D(2024, 2, 29))
    assert _period("calendar_quarter", None, None, D(2026, 5, 2)) == (D(2026, 4, 1), D(2026, 6, 30))
