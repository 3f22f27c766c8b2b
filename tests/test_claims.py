"""Tests for medpol.engine.claims: reading one claim per the claims contract."""

from __future__ import annotations

import copy
import datetime
import math
import pickle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpol.engine.claims import Claim, ClaimError, HistoryLine, Line, LineError, read_claim

VALID: dict[str, Any] = {
    "id": "ex-iv-pole-with-stationary-pump",
    "member": {
        "id": "M-1",
        "birth_date": "1970-03-02",
        "line_of_business": "commercial",
    },
    "diagnoses": ["E83.111"],
    "lines": [
        {"seq": 1, "hcpcs": "E0791", "modifiers": ["RR"], "service_date": "2026-03-02"},
        {"seq": 2, "hcpcs": "E0776", "service_date": "2026-03-02", "units": 1},
    ],
    "facts": {"face_to_face_date": "2025-12-15"},
}

_DELETE = object()


def claim(*changes: tuple[str, Any]) -> dict[str, Any]:
    """A deep copy of VALID with each (dotted path, value) applied; _DELETE removes the key."""
    obj = copy.deepcopy(VALID)
    for path, value in changes:
        _apply(obj, _split(path), value)
    return obj


def _split(path: str) -> list[str | int]:
    """`lines[0].units` -> ["lines", 0, "units"]."""
    steps: list[str | int] = []
    for part in path.split("."):
        name, *indexes = part.split("[")
        if name:
            steps.append(name)
        steps.extend(int(index.rstrip("]")) for index in indexes)
    return steps


def _apply(obj: Any, steps: list[str | int], value: Any) -> None:
    *parents, last = steps
    for step in parents:
        obj = obj[step]
    if value is _DELETE:
        del obj[last]
    else:
        obj[last] = value


def _check_message_style(message: str) -> None:
    assert message
    assert not message[0].isupper()
    assert not message.endswith(".")
    assert "\n" not in message


# --- valid claims -------------------------------------------------------------------------


def test_valid_claim_round_trip():
    c = read_claim(claim())
    assert c == Claim(
        id="ex-iv-pole-with-stationary-pump",
        member_id="M-1",
        birth_date=datetime.date(1970, 3, 2),
        line_of_business="commercial",
        supplier_licensed_in_state=True,
        diagnoses=("E83111",),
        diagnoses_as_given=("E83.111",),
        lines=(
            Line(
                seq=1,
                hcpcs="E0791",
                modifiers=("RR",),
                service_date=datetime.date(2026, 3, 2),
                units=1,
                place_of_service=None,
                facts={},
            ),
            Line(
                seq=2,
                hcpcs="E0776",
                modifiers=(),
                service_date=datetime.date(2026, 3, 2),
                units=1,
                place_of_service=None,
                facts={},
            ),
        ),
        facts={"face_to_face_date": "2025-12-15"},
        history=(),
        ignored_fields=(),
    )


def test_read_claim_does_not_modify_its_input():
    obj = claim()
    read_claim(obj)
    assert obj == VALID


def test_defaults():
    obj = claim(("facts", _DELETE))
    c = read_claim(obj)
    assert c.lines[0].units == 1
    assert isinstance(c.lines[0].units, int)
    assert c.supplier_licensed_in_state is True
    assert c.facts == {}
    assert c.history == ()
    assert c.lines[0].facts == {}
    assert c.lines[1].modifiers == ()
    assert c.lines[0].place_of_service is None


def test_optional_fields_given():
    c = read_claim(
        claim(
            ("supplier", {"licensed_in_state": False}),
            ("lines[0].units", 2.5),
            ("lines[0].place_of_service", "12"),
            ("lines[0].facts", {"compounded": True}),
            ("lines[1].hcpcs", "e0776"),
            ("lines[1].units", 0),
            (
                "history",
                [{"hcpcs": "j9039", "service_date": "2026-01-05", "units": 35}],
            ),
        )
    )
    assert c.supplier_licensed_in_state is False
    assert c.lines[0].units == 2.5
    assert c.lines[0].place_of_service == "12"
    assert c.lines[0].facts == {"compounded": True}
    assert c.lines[1].hcpcs == "E0776"
    assert c.lines[1].units == 0
    assert c.history == (HistoryLine("J9039", datetime.date(2026, 1, 5), 35),)


def test_history_units_are_required():
    """An earlier claim's units count against limits: a history entry without them is malformed."""
    with pytest.raises(ClaimError) as err:
        read_claim(claim(("history", [{"hcpcs": "J1457", "service_date": "2026-01-05"}])))
    assert err.value.field == "history[0].units"


def test_cpt_code_accepted():
    c = read_claim(claim(("lines[0].hcpcs", "99213")))
    assert c.lines[0].hcpcs == "99213"


def test_empty_diagnoses_and_empty_supplier_allowed():
    c = read_claim(claim(("diagnoses", []), ("supplier", {})))
    assert c.diagnoses == ()
    assert c.diagnoses_as_given == ()
    assert c.supplier_licensed_in_state is True


def test_lines_keep_input_order():
    c = read_claim(claim(("lines[0].seq", 7), ("lines[1].seq", 3)))
    assert [line.seq for line in c.lines] == [7, 3]


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        pytest.param("C91.02", "C9102", id="with-dot"),
        pytest.param("C9102", "C9102", id="without-dot"),
        pytest.param("c91.02", "C9102", id="lower-case"),
        pytest.param("  C91.02 ", "C9102", id="surrounding-spaces"),
        pytest.param("G20", "G20", id="category-only"),
        pytest.param("D81.810", "D81810", id="six-characters"),
        pytest.param("T36.0X1A", "T360X1A", id="seven-characters"),
        pytest.param("E83.111", "E83111", id="letter-digit-digit"),
    ],
)
def test_diagnosis_normalization(given, normalized):
    c = read_claim(claim(("diagnoses", [given])))
    assert c.diagnoses == (normalized,)
    assert c.diagnoses_as_given == (given,)


def test_diagnoses_keep_order_and_originals():
    c = read_claim(claim(("diagnoses", ["C91.00", "I50", "i27.0"])))
    assert c.diagnoses == ("C9100", "I50", "I270")
    assert c.diagnoses_as_given == ("C91.00", "I50", "i27.0")


def test_ignored_fields_reported():
    c = read_claim(
        claim(
            ("submitted_at", "2026-03-03T10:00:00Z"),
            ("payer", {"id": "P"}),
            ("member.plan", "gold"),
            ("supplier", {"npi": "123"}),
            ("lines[1].note", "x"),
            ("history", [{"hcpcs": "E0791", "service_date": "2026-01-01", "units": 1, "paid": 10}]),
        )
    )
    assert c.ignored_fields == (
        "submitted_at",
        "payer",
        "member.plan",
        "supplier.npi",
        "lines[1].note",
        "history[0].paid",
    )
    assert all(isinstance(line, Line) for line in c.lines)


def test_unknown_fact_names_are_not_ignored_fields():
    c = read_claim(claim(("facts", {"anything": 1}), ("lines[0].facts", {"other": 2})))
    assert c.ignored_fields == ()


# --- claim-level errors -------------------------------------------------------------------

CLAIM_ERRORS = [
    pytest.param((("id", _DELETE),), "id", id="id-missing"),
    pytest.param((("id", 12),), "id", id="id-number"),
    pytest.param((("id", None),), "id", id="id-null"),
    pytest.param((("id", ""),), "id", id="id-empty"),
    pytest.param((("member", _DELETE),), "member", id="member-missing"),
    pytest.param((("member", "M-1"),), "member", id="member-not-object"),
    pytest.param((("member.id", _DELETE),), "member.id", id="member-id-missing"),
    pytest.param((("member.id", 1),), "member.id", id="member-id-number"),
    pytest.param((("member.birth_date", _DELETE),), "member.birth_date", id="birth-date-missing"),
    pytest.param(
        (("member.birth_date", "1970-13-02"),),
        "member.birth_date",
        id="birth-date-month-13",
    ),
    pytest.param(
        (("member.birth_date", "19700302"),),
        "member.birth_date",
        id="birth-date-basic-iso",
    ),
    pytest.param(
        (("member.birth_date", "1970-3-2"),),
        "member.birth_date",
        id="birth-date-unpadded",
    ),
    pytest.param((("member.birth_date", 19700302),), "member.birth_date", id="birth-date-number"),
    pytest.param(
        (("member.line_of_business", _DELETE),),
        "member.line_of_business",
        id="lob-missing",
    ),
    pytest.param(
        (("member.line_of_business", "tricare"),),
        "member.line_of_business",
        id="lob-unknown",
    ),
    pytest.param(
        (("member.line_of_business", "Medicare"),),
        "member.line_of_business",
        id="lob-capitalized",
    ),
    pytest.param(
        (("member.line_of_business", ["medicare"]),),
        "member.line_of_business",
        id="lob-list",
    ),
    pytest.param((("supplier", True),), "supplier", id="supplier-not-object"),
    pytest.param(
        (("supplier", {"licensed_in_state": "yes"}),),
        "supplier.licensed_in_state",
        id="licensed-string",
    ),
    pytest.param(
        (("supplier", {"licensed_in_state": 1}),),
        "supplier.licensed_in_state",
        id="licensed-number",
    ),
    pytest.param((("diagnoses", _DELETE),), "diagnoses", id="diagnoses-missing"),
    pytest.param((("diagnoses", "C91.02"),), "diagnoses", id="diagnoses-string"),
    pytest.param((("diagnoses", ["I50", 50]),), "diagnoses[1]", id="diagnosis-number"),
    pytest.param((("diagnoses", ["I50", "150"]),), "diagnoses[1]", id="diagnosis-bad-format"),
    pytest.param((("diagnoses", ["C9"]),), "diagnoses[0]", id="diagnosis-too-short"),
    pytest.param((("diagnoses", ["C91.02345"]),), "diagnoses[0]", id="diagnosis-too-long"),
    pytest.param((("diagnoses", ["C9.102"]),), "diagnoses[0]", id="diagnosis-misplaced-dot"),
    pytest.param((("diagnoses", ["C91 02"]),), "diagnoses[0]", id="diagnosis-inner-space"),
    pytest.param((("diagnoses", ["C91.0ſ"]),), "diagnoses[0]", id="diagnosis-non-ascii"),
    pytest.param((("lines", _DELETE),), "lines", id="lines-missing"),
    pytest.param((("lines", {"seq": 1}),), "lines", id="lines-not-list"),
    pytest.param((("lines", []),), "lines", id="lines-empty"),
    pytest.param((("lines[1].seq", _DELETE),), "lines[1].seq", id="seq-missing"),
    pytest.param((("lines[1].seq", "2"),), "lines[1].seq", id="seq-string"),
    pytest.param((("lines[1].seq", 2.0),), "lines[1].seq", id="seq-float"),
    pytest.param((("lines[1].seq", True),), "lines[1].seq", id="seq-bool"),
    pytest.param((("lines[1].seq", 1),), "lines[1].seq", id="seq-duplicate"),
    pytest.param((("facts", ["a"]),), "facts", id="facts-not-object"),
    pytest.param((("history", {"hcpcs": "E0791"}),), "history", id="history-not-list"),
    pytest.param((("history", ["E0791"]),), "history[0]", id="history-entry-not-object"),
    pytest.param(
        (("history", [{"service_date": "2026-01-01"}]),),
        "history[0].hcpcs",
        id="history-hcpcs-missing",
    ),
    pytest.param(
        (("history", [{"hcpcs": "E0791"}]),),
        "history[0].service_date",
        id="history-date-missing",
    ),
    pytest.param(
        (
            (
                "history",
                [
                    {"hcpcs": "E0791", "service_date": "2026-01-01", "units": 1},
                    {"hcpcs": "E0791", "service_date": "2026-02-01", "units": "2"},
                ],
            ),
        ),
        "history[1].units",
        id="history-units-string",
    ),
    pytest.param(
        (("history", [{"hcpcs": "E0791", "service_date": "2026-01-01", "units": -1}]),),
        "history[0].units",
        id="history-units-negative",
    ),
]


@pytest.mark.parametrize(("changes", "field"), CLAIM_ERRORS)
def test_claim_level_error(changes, field):
    with pytest.raises(ClaimError) as info:
        read_claim(claim(*changes))
    error = info.value
    assert error.field == field
    assert str(error) == f"{field}: {error.message}"
    _check_message_style(error.message)
    given_id = claim(*changes).get("id")
    assert error.claim_id == (given_id if isinstance(given_id, str) else None)


@pytest.mark.parametrize(
    "value",
    [None, 1, "claim", ["a"], True],
    ids=["null", "number", "string", "list", "bool"],
)
def test_claim_not_an_object(value):
    with pytest.raises(ClaimError) as info:
        read_claim(value)
    assert info.value.field == "claim"
    assert info.value.claim_id is None


def test_claim_error_keeps_claim_id_for_echo():
    with pytest.raises(ClaimError) as info:
        read_claim(claim(("member", _DELETE)))
    assert info.value.claim_id == "ex-iv-pole-with-stationary-pump"


def test_date_message_quotes_input():
    with pytest.raises(ClaimError) as info:
        read_claim(claim(("member.birth_date", "2026-13-01")))
    assert info.value.message == "`2026-13-01` is not a date: there is no month 13"
    assert str(info.value) == ("member.birth_date: `2026-13-01` is not a date: there is no month 13")


def test_claim_error_pickles():
    # Batches may be decided in worker processes, which pickle what they raise.
    error = ClaimError("lines", "a claim needs at least one line", "C-1")
    copied = pickle.loads(pickle.dumps(error))
    assert (copied.field, copied.message, copied.claim_id) == (
        "lines",
        error.message,
        "C-1",
    )
    assert str(copied) == str(error)


def test_claim_pickles():
    c = read_claim(claim(("lines[1].units", "x")))
    assert pickle.loads(pickle.dumps(c)) == c


# --- line-level errors --------------------------------------------------------------------

LINE_ERRORS = [
    pytest.param("service_date", _DELETE, "lines[1].service_date", id="date-missing"),
    pytest.param("service_date", "2026-02-30", "lines[1].service_date", id="date-feb-30"),
    pytest.param("service_date", "2026-03-02T00:00", "lines[1].service_date", id="date-time"),
    pytest.param("service_date", "20260302", "lines[1].service_date", id="date-basic-iso"),
    pytest.param("service_date", "2026-W10-1", "lines[1].service_date", id="date-week"),
    pytest.param("service_date", None, "lines[1].service_date", id="date-null"),
    pytest.param("units", "1", "lines[1].units", id="units-string"),
    pytest.param("units", True, "lines[1].units", id="units-bool"),
    pytest.param("units", -1, "lines[1].units", id="units-negative"),
    pytest.param("units", -0.5, "lines[1].units", id="units-negative-float"),
    pytest.param("units", math.nan, "lines[1].units", id="units-nan"),
    pytest.param("units", math.inf, "lines[1].units", id="units-infinite"),
    pytest.param("units", None, "lines[1].units", id="units-null"),
    pytest.param("hcpcs", _DELETE, "lines[1].hcpcs", id="hcpcs-missing"),
    pytest.param("hcpcs", "", "lines[1].hcpcs", id="hcpcs-empty"),
    pytest.param("hcpcs", 776, "lines[1].hcpcs", id="hcpcs-number"),
    pytest.param("hcpcs", "E07-76", "lines[1].hcpcs", id="hcpcs-punctuation"),
    pytest.param("hcpcs", " E0776", "lines[1].hcpcs", id="hcpcs-space"),
    pytest.param("modifiers", "RR", "lines[1].modifiers", id="modifiers-string"),
    pytest.param("modifiers", ["RR", 1], "lines[1].modifiers[1]", id="modifier-number"),
    pytest.param("facts", [], "lines[1].facts", id="facts-list"),
    pytest.param("place_of_service", 12, "lines[1].place_of_service", id="pos-number"),
]


@pytest.mark.parametrize(("key", "value", "field"), LINE_ERRORS)
def test_line_level_error_keeps_other_lines(key, value, field):
    c = read_claim(claim((f"lines[1].{key}", value)))
    first, second = c.lines
    assert first == read_claim(claim()).lines[0]
    assert isinstance(second, LineError)
    assert second.seq == 2
    assert second.field == field
    assert second.hcpcs == (None if key == "hcpcs" else "E0776")
    _check_message_style(second.message)


def test_line_error_message_names_the_input():
    c = read_claim(claim(("lines[0].service_date", "2026-02-30")))
    assert c.lines[0] == LineError(
        1,
        "E0791",
        "lines[0].service_date",
        "`2026-02-30` is not a date: February 2026 has 28 days",
    )


def test_dates_parse_the_same_on_repeat():
    # Dates are cached across claims; a second read must give the same answer.
    first = read_claim(claim(("lines[0].service_date", "2024-02-29")))
    second = read_claim(claim(("lines[0].service_date", "2024-02-29")))
    assert first.lines[0].service_date == second.lines[0].service_date
    assert first.lines[0].service_date == datetime.date(2024, 2, 29)
    bad = read_claim(claim(("lines[0].service_date", "2023-02-29")))
    assert isinstance(bad.lines[0], LineError)


def test_line_not_an_object():
    c = read_claim(claim(("lines[0]", "E0791")))
    first, second = c.lines
    assert first == LineError(1, None, "lines[0]", first.message)
    assert isinstance(second, Line)
    _check_message_style(first.message)


def test_line_errors_do_not_stop_later_lines_or_history():
    c = read_claim(
        claim(
            ("lines[0].units", "two"),
            ("history", [{"hcpcs": "E0791", "service_date": "2026-01-01", "units": 1}]),
        )
    )
    assert isinstance(c.lines[0], LineError)
    assert isinstance(c.lines[1], Line)
    assert len(c.history) == 1


# --- never anything but a Claim or a ClaimError -------------------------------------------

_FIELD_NAMES = [
    "id",
    "member",
    "birth_date",
    "line_of_business",
    "supplier",
    "licensed_in_state",
    "diagnoses",
    "lines",
    "seq",
    "hcpcs",
    "modifiers",
    "service_date",
    "units",
    "place_of_service",
    "facts",
    "history",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from(["2026-03-02", "1970-02-29", "C91.02", "E0781", "commercial", ""])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=20,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into obj, containers included."""
    found = [prefix] if prefix else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            found.extend(_paths(value, (*prefix, index)))
    return found


_RICH = claim(
    ("supplier", {"licensed_in_state": True}),
    ("lines[0].units", 2),
    ("lines[0].place_of_service", "12"),
    ("lines[0].facts", {"compounded": False}),
    ("history", [{"hcpcs": "J9039", "service_date": "2026-01-05", "units": 35}]),
)
_MUTABLE_PATHS = _paths(_RICH)


@st.composite
def mutated_claims(draw: st.DrawFn) -> Any:
    obj = copy.deepcopy(_RICH)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_MUTABLE_PATHS))
        try:
            parent = obj
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()):
                parent[path[-1]] = draw(json_values)
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            # An earlier mutation already replaced part of this path.
            continue
    return obj


def _check_outcome(obj: Any) -> None:
    try:
        result = read_claim(obj)
    except ClaimError as error:
        assert str(error) == f"{error.field}: {error.message}"
        assert error.claim_id is None or isinstance(error.claim_id, str)
        _check_message_style(error.message)
        return
    assert isinstance(result, Claim)
    assert isinstance(obj, dict)
    assert len(result.lines) == len(obj["lines"]) > 0
    assert len(result.diagnoses) == len(result.diagnoses_as_given)
    for line in result.lines:
        assert isinstance(line, (Line, LineError))
        if isinstance(line, LineError):
            _check_message_style(line.message)
        else:
            assert line.hcpcs.isupper() or line.hcpcs.isdigit()
            assert not isinstance(line.units, bool) and line.units >= 0


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_only_gives_claim_or_claim_error(obj):
    _check_outcome(obj)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_claims())
def test_mutated_claim_only_gives_claim_or_claim_error(obj):
    _check_outcome(obj)


def test_a_birth_date_after_a_date_of_service_is_an_error_naming_it():
    with pytest.raises(ClaimError) as info:
        read_claim(claim(("member.birth_date", "2026-06-01")))
    assert info.value.field == "member.birth_date"
    assert "is after the date of service of lines[0]" in info.value.message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-02-29", "February 2026 has 28 days"),
        ("2025-04-31", "April 2025 has 30 days"),
        ("2026-00-10", "there is no month 0"),
        ("26-02-01", "expected YYYY-MM-DD"),
    ],
)
def test_a_date_that_does_not_exist_is_told_apart_from_a_misspelt_one(text, says):
    from medpol.engine.claims import date_problem

    assert date_problem(text) == f"`{text}` is not a date" + (": " if "YYYY" not in says else " (") + says + (
        ")" if "YYYY" in says else ""
    )
