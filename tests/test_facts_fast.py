"""A claim's facts read the common way (each common answer recognized without a call) are
read exactly as the full check reads them: the same facts, in the same order, the same
warnings, the same error, whatever the values given."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medpol.api import load_policy
from medpol.engine.facts import FactError, FactReader

ROOT = Path(__file__).resolve().parent.parent
READERS = {path.stem: load_policy(path).engine.facts for path in sorted((ROOT / "policies").glob("*.policy"))}


def lookalikes(reader: FactReader):
    """Values that pass each kind of fact's check, and values that come close to passing."""
    values = [
        st.booleans(),
        st.integers(-3, 400),
        st.integers(2**63, 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, 3.0, 8.5, 1e308, math.inf, -math.inf]),
        st.none(),
        st.sampled_from(["none", "2026-01-05", "2026-02-30", "2026-1-5", "20260105", "2026-01-05T00:00:00", ""]),
        st.dates(datetime.date(1990, 1, 1), datetime.date(2030, 12, 31)).map(lambda d: d.isoformat()),
        st.dates(datetime.date(1990, 1, 1), datetime.date(2030, 12, 31)),  # an object, not text
        st.text(max_size=6),
        st.lists(st.booleans(), max_size=2),
    ]
    words = sorted({value for ftype in reader.types.values() for value in ftype.values})
    if words:
        values.append(st.sampled_from(words))
    names = sorted(reader.types) + ["not_a_fact", "Compounded"]
    return st.dictionaries(st.sampled_from(names), st.one_of(values), max_size=8)


def full_check(reader: FactReader, facts: dict) -> tuple[dict, list[str]]:
    out, warnings = dict(reader.defaults), []
    for name, value in facts.items():
        reader._read(name, value, "facts", out, warnings)
    return out, warnings


def read(reader: FactReader, read_facts, facts: dict):
    try:
        out, warnings = read_facts(facts)
    except FactError as err:
        return ("error", err.field, err.message)
    return (list(out.items()), warnings)


@pytest.mark.parametrize("name", sorted(READERS))
def test_the_common_way_reads_facts_as_the_full_check(name):
    reader = READERS[name]

    @settings(max_examples=300, deadline=None)
    @given(facts=lookalikes(reader))
    def agree(facts):
        assert read(reader, reader.read_claim_facts, facts) == read(reader, lambda f: full_check(reader, f), facts)

    agree()
