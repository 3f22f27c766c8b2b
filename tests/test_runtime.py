"""Calendar arithmetic the policy relies on: ages in completed months, periods before a date."""

from __future__ import annotations

import datetime

import pytest

from medpol.compiler.runtime import LineContext, age, within

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
