"""Three-valued logic: how the parts of a condition combine when a claim lacks some facts.

A condition holds (True), fails (False) or is unknown. Unknown is the frozenset of the facts
it lacks, never empty, so that a pending decision can name what to ask for: combining two
unknowns joins what each lacks. A part settles the whole where it can (one False fails an
all-of whatever the others are), so an unknown part matters only where it could change the
outcome.
"""

from __future__ import annotations

from collections.abc import Iterable


def is_unknown(value) -> bool:
    """Neither held nor failed: the value names the facts it lacks."""
    return value is not True and value is not False


def not_(value):
    """What `not` makes of a value: unknown stays unknown, lacking the same facts."""
    if value is True:
        return False
    if value is False:
        return True
    return value


def all_of(values: Iterable):
    """All of: False wins, then unknown (with every missing fact), then True."""
    missing: set[str] = set()
    for value in values:
        if value is False:
            return False
        if value is not True:
            missing.update(value)
    return frozenset(missing) if missing else True


def any_of(values: Iterable):
    """Any of: True wins, then unknown (with every missing fact), then False."""
    missing: set[str] = set()
    for value in values:
        if value is True:
            return True
        if value is not False:
            missing.update(value)
    return frozenset(missing) if missing else False


def at_least(count: int, values: Iterable):
    """At least `count` of: True once `count` hold; False once too few can still hold;
    otherwise unknown, lacking what every undecided part lacks."""
    values = list(values)
    held = sum(1 for value in values if value is True)
    unknown = [value for value in values if is_unknown(value)]
    if held >= count:
        return True
    if held + len(unknown) < count:
        return False
    return frozenset().union(*unknown)
