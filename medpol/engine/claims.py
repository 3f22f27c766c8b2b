"""Claims: validate and normalize one decoded JSON claim per the claims contract."""

from __future__ import annotations

import calendar
import datetime
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

__all__ = [
    "Claim",
    "ClaimError",
    "HistoryLine",
    "Line",
    "LineError",
    "diagnosis",
    "known_procedure_code",
    "procedure_code",
    "read_claim",
    "read_date",
]

LINES_OF_BUSINESS = frozenset({"commercial", "medicare", "medicaid"})

_CLAIM_KEYS = frozenset({"id", "member", "supplier", "diagnoses", "lines", "facts", "history"})
_MEMBER_KEYS = frozenset({"id", "birth_date", "line_of_business"})
_SUPPLIER_KEYS = frozenset({"licensed_in_state"})
_LINE_KEYS = frozenset({"seq", "hcpcs", "modifiers", "service_date", "units", "place_of_service", "facts"})
_HISTORY_KEYS = frozenset({"hcpcs", "service_date", "units"})

# Checked on the stripped, uppercased code as given, so a dot is only accepted where
# ICD-10-CM puts it (after the category); removing it then yields the contract's
# [A-Z][0-9][0-9A-Z]{1,5}. Explicit ASCII classes because \d also matches other scripts.
_ICD10_AS_GIVEN = re.compile(r"[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?")

_MISSING = "required field is missing"
_Fail = Callable[[str, str], "ClaimError"]
_DESCRIBE_LIMIT = 40


# The records a claim is read into. Immutable, and built in C: a batch builds several
# for every claim, and a frozen attrs class would set each field through a Python call.
_RECORD = {"frozen": True, "gc": False}


class Line(msgspec.Struct, **_RECORD):
    """One valid claim line."""

    seq: int
    hcpcs: str
    modifiers: tuple[str, ...]
    service_date: datetime.date
    units: float | int
    place_of_service: str | None
    facts: Mapping[str, Any]


class LineError(msgspec.Struct, **_RECORD):
    """A claim line that broke the contract; the claim's other lines are still decided."""

    seq: int
    hcpcs: str | None
    field: str
    message: str


class HistoryLine(msgspec.Struct, **_RECORD):
    """An earlier paid line of the same member."""

    hcpcs: str
    service_date: datetime.date
    units: float | int


class Claim(msgspec.Struct, **_RECORD):
    """One claim, validated and normalized; `lines` keeps the input order."""

    id: str
    member_id: str
    birth_date: datetime.date
    line_of_business: str
    supplier_licensed_in_state: bool
    diagnoses: tuple[str, ...]
    diagnoses_as_given: tuple[str, ...]
    lines: tuple[Line | LineError, ...]
    facts: Mapping[str, Any]
    history: tuple[HistoryLine, ...]
    ignored_fields: tuple[str, ...]


class ClaimError(Exception):
    """The claim as a whole breaks the contract; `field` is a dotted path into the claim."""

    def __init__(self, field: str, message: str, claim_id: str | None = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.claim_id = claim_id

    def __reduce__(self) -> tuple[type[ClaimError], tuple[str, str, str | None]]:
        # The default rebuilds from self.args (one string) and would fail in the parent of a
        # worker process that raised it.
        return type(self), (self.field, self.message, self.claim_id)


def read_claim(obj: object) -> Claim:
    """Validate and normalize one decoded JSON claim; raise ClaimError if it is unusable.

    A Claim already read (medpol.engine.contract.decode_claim reads one from JSON bytes) is returned as it is.
    """
    if obj.__class__ is Claim:
        return obj  # type: ignore[return-value]
    if not isinstance(obj, dict):
        raise ClaimError("claim", f"expected an object, got {_describe(obj)}")
    claim_id = obj.get("id")
    # Keep whatever string id there is so the caller can echo it even in an error decision.
    echo_id = claim_id if isinstance(claim_id, str) else None

    def fail(field: str, message: str) -> ClaimError:
        return ClaimError(field, message, echo_id)

    if claim_id is None and "id" not in obj:
        raise fail("id", _MISSING)
    if not isinstance(claim_id, str) or not claim_id:
        raise fail("id", _expected("a non-empty string", claim_id))

    ignored: list[str] = []
    if not _CLAIM_KEYS.issuperset(obj):
        _collect_unknown(obj, _CLAIM_KEYS, "", ignored)

    member = _required(obj, "member", "member", fail)
    if not isinstance(member, dict):
        raise fail("member", _expected("an object", member))
    if not _MEMBER_KEYS.issuperset(member):
        _collect_unknown(member, _MEMBER_KEYS, "member.", ignored)
    member_id = _required(member, "id", "member.id", fail)
    if not isinstance(member_id, str) or not member_id:
        raise fail("member.id", _expected("a non-empty string", member_id))
    birth_date = read_date(_required(member, "birth_date", "member.birth_date", fail))
    if birth_date is None:
        raise fail("member.birth_date", _date_problem(member["birth_date"]))
    lob = _required(member, "line_of_business", "member.line_of_business", fail)
    if not isinstance(lob, str):
        raise fail("member.line_of_business", _expected("a string", lob))
    if lob not in LINES_OF_BUSINESS:
        raise fail(
            "member.line_of_business",
            f"{_show(lob)} is not a line of business (expected commercial, medicare or medicaid)",
        )

    licensed = True
    if "supplier" in obj:
        supplier = obj["supplier"]
        if not isinstance(supplier, dict):
            raise fail("supplier", _expected("an object", supplier))
        if not _SUPPLIER_KEYS.issuperset(supplier):
            _collect_unknown(supplier, _SUPPLIER_KEYS, "supplier.", ignored)
        if "licensed_in_state" in supplier:
            licensed = supplier["licensed_in_state"]
            if not isinstance(licensed, bool):
                raise fail("supplier.licensed_in_state", _expected("true or false", licensed))

    given = _required(obj, "diagnoses", "diagnoses", fail)
    if not isinstance(given, list):
        raise fail("diagnoses", _expected("a list", given))
    diagnoses = []
    for i, code in enumerate(given):
        norm = _DIAGNOSES.get(code) if code.__class__ is str else None
        if norm is not None:
            diagnoses.append(norm)
            continue
        if not isinstance(code, str):
            raise fail(f"diagnoses[{i}]", _expected("a string", code))
        norm = diagnosis(code)
        if norm is None:
            raise fail(
                f"diagnoses[{i}]",
                f"{_show(code)} is not an ICD-10-CM code (expected a form like C91.02 or C9102)",
            )
        diagnoses.append(norm)

    raw_lines = _required(obj, "lines", "lines", fail)
    if not isinstance(raw_lines, list):
        raise fail("lines", _expected("a list", raw_lines))
    if not raw_lines:
        raise fail("lines", "a claim needs at least one line")
    lines: list[Line | LineError] = []
    seen_seq: dict[int, int] = {}
    for i, raw in enumerate(raw_lines):
        if not isinstance(raw, dict):
            # No seq to echo, so the decision falls back on the 1-based position.
            lines.append(LineError(i + 1, None, f"lines[{i}]", _expected("an object", raw)))
            continue
        seq = raw.get("seq")
        if seq.__class__ is not int and (not isinstance(seq, int) or isinstance(seq, bool)):
            if seq is None and "seq" not in raw:
                raise fail(f"lines[{i}].seq", _MISSING)
            raise fail(f"lines[{i}].seq", _expected("an integer", seq))
        if seq in seen_seq:
            field = f"lines[{i}].seq"
            raise fail(field, f"{_show(seq)} is already the seq of lines[{seen_seq[seq]}]")
        seen_seq[seq] = i
        if not _LINE_KEYS.issuperset(raw):
            _collect_unknown(raw, _LINE_KEYS, f"lines[{i}].", ignored)
        lines.append(_read_line(raw, i, seq))

    for i, line in enumerate(lines):
        # A member is not served before being born: the birth date (or the line's) is wrong.
        if line.__class__ is Line and line.service_date < birth_date:
            raise fail(
                "member.birth_date",
                f"{_show(member['birth_date'])} is after the date of service of lines[{i}] ({line.service_date})",
            )

    # A fresh dict rather than a shared read-only one: MappingProxyType cannot be pickled,
    # and batches may be decided in worker processes.
    facts: Mapping[str, Any] = {}
    if "facts" in obj:
        facts = obj["facts"]
        if not isinstance(facts, dict):
            raise fail("facts", _expected("an object", facts))

    history: list[HistoryLine] = []
    if "history" in obj:
        raw_history = obj["history"]
        if not isinstance(raw_history, list):
            raise fail("history", _expected("a list", raw_history))
        for i, raw in enumerate(raw_history):
            history.append(_read_history(raw, i, ignored, fail))

    return Claim(
        id=claim_id,
        member_id=member_id,
        birth_date=birth_date,
        line_of_business=lob,
        supplier_licensed_in_state=licensed,
        diagnoses=tuple(diagnoses),
        diagnoses_as_given=tuple(given),
        lines=tuple(lines),
        facts=facts,
        history=tuple(history),
        ignored_fields=tuple(ignored),
    )


def diagnosis(code: str) -> str | None:
    """The ICD-10-CM code as the contract spells it (uppercase, no dot), or None if `code` is not one."""
    found = _DIAGNOSES.get(code)
    if found is not None:
        return found
    norm = code.strip().upper()
    # isascii because str.upper() maps a few non-ASCII letters (ı, ſ) onto ASCII ones.
    if not code.isascii() or _ICD10_AS_GIVEN.fullmatch(norm) is None:
        return None
    found = norm.replace(".", "")
    _remember(_DIAGNOSES, code, found)
    return found


def _remember(cache: dict, given: str, value) -> None:
    # Bounded: cleared when full, so a stream of distinct values cannot grow it for ever.
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[given] = value


def _read_line(raw: dict, i: int, seq: int) -> Line | LineError:
    hcpcs = raw.get("hcpcs")
    hcpcs = _CODES.get(hcpcs) if hcpcs.__class__ is str else None
    if hcpcs is None:
        hcpcs = procedure_code(raw.get("hcpcs"))
    if hcpcs is None:
        problem = _code_problem(raw.get("hcpcs", _ABSENT))
        return LineError(seq, None, f"lines[{i}].hcpcs", problem)

    service_date = raw.get("service_date")
    service_date = _DATES.get(service_date) if service_date.__class__ is str else None
    if service_date is None:
        service_date = read_date(raw.get("service_date"))
    if service_date is None:
        problem = _date_problem(raw.get("service_date", _ABSENT))
        return LineError(seq, hcpcs, f"lines[{i}].service_date", problem)

    units = raw.get("units", 1)
    # Whole non-negative units are nearly every line; only the rest pay for the full check.
    if units.__class__ is not int or units < 0:
        problem = _units_problem(units)
        if problem is not None:
            return LineError(seq, hcpcs, f"lines[{i}].units", problem)

    modifiers: tuple[str, ...] = ()
    if "modifiers" in raw:
        given = raw["modifiers"]
        if not isinstance(given, list):
            field = f"lines[{i}].modifiers"
            return LineError(seq, hcpcs, field, _expected("a list", given))
        for j, modifier in enumerate(given):
            if not isinstance(modifier, str):
                field = f"lines[{i}].modifiers[{j}]"
                return LineError(seq, hcpcs, field, _expected("a string", modifier))
        modifiers = tuple(given)

    place = None
    if "place_of_service" in raw:
        place = raw["place_of_service"]
        if not isinstance(place, str):
            field = f"lines[{i}].place_of_service"
            return LineError(seq, hcpcs, field, _expected("a string", place))

    facts: Mapping[str, Any] = {}
    if "facts" in raw:
        facts = raw["facts"]
        if not isinstance(facts, dict):
            field = f"lines[{i}].facts"
            return LineError(seq, hcpcs, field, _expected("an object", facts))

    return Line(seq, hcpcs, modifiers, service_date, units, place, facts)


def _read_history(raw: object, i: int, ignored: list[str], fail: _Fail) -> HistoryLine:
    if not isinstance(raw, dict):
        raise fail(f"history[{i}]", _expected("an object", raw))
    if not _HISTORY_KEYS.issuperset(raw):
        _collect_unknown(raw, _HISTORY_KEYS, f"history[{i}].", ignored)
    hcpcs = procedure_code(raw.get("hcpcs"))
    if hcpcs is None:
        raise fail(f"history[{i}].hcpcs", _code_problem(raw.get("hcpcs", _ABSENT)))
    service_date = read_date(raw.get("service_date"))
    if service_date is None:
        problem = _date_problem(raw.get("service_date", _ABSENT))
        raise fail(f"history[{i}].service_date", problem)
    # An earlier claim's units are counted against limits, so they must be said, not assumed.
    units = raw.get("units", _ABSENT)
    problem = _MISSING if units is _ABSENT else _units_problem(units)
    if problem is not None:
        raise fail(f"history[{i}].units", problem)
    return HistoryLine(hcpcs, service_date, units)


class _Absent:
    """Marks a field that is not in the object, as opposed to one that is JSON null."""

    __slots__ = ()


_ABSENT: Any = _Absent()


def _required(obj: dict, key: str, field: str, fail: _Fail) -> Any:
    value = obj.get(key, _ABSENT)
    if value is _ABSENT:
        raise fail(field, _MISSING)
    return value


def procedure_code(value: object) -> str | None:
    """The uppercased procedure code, or None if `value` is not one (see _code_problem)."""
    # isascii because str.isalnum() also accepts letters and digits of other scripts;
    # isalnum() is false for "" too.
    if isinstance(value, str) and value.isascii() and value.isalnum():
        code = _CODES.get(value)
        if code is None:
            code = value.upper()
            _remember(_CODES, value, code)
        return code
    return None


def _code_problem(value: object) -> str:
    if value is _ABSENT:
        return _MISSING
    if not isinstance(value, str):
        return _expected("a string", value)
    return f"{_show(value)} is not a procedure code (expected letters and digits only)"


# A batch repeats the same few hundred dates, procedure and diagnosis codes over and over;
# a dict hit is several times cheaper than checking and parsing. Each holds only values
# that passed, and is cleared when full to bound memory.
_DATES: dict[str, datetime.date] = {}
_CODES: dict[str, str] = {}
_DIAGNOSES: dict[str, str] = {}
_CACHE_LIMIT = 100_000
# A code already met as the contract spells it, or None (then ask procedure_code): one
# look-up for a reader of many claims. The cache is cleared, never replaced, so it stays valid.
known_procedure_code = _CODES.get


def read_date(value: object) -> datetime.date | None:
    """The date `value` spells as strict YYYY-MM-DD, or None (see date_problem)."""
    if not isinstance(value, str):
        return None
    date = _DATES.get(value)
    if date is not None:
        return date
    # fromisoformat alone would also accept 20260302 and 2026-W10-1.
    if len(value) != 10 or value[4] != "-" or value[7] != "-":
        return None
    try:
        date = datetime.date.fromisoformat(value)
    except ValueError:
        return None
    _remember(_DATES, value, date)
    return date


_SHAPED = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTHS = ("January February March April May June July August September October November December").split()


def date_problem(value: object) -> str:
    """Why `value` is not a date, in words: a day that does not exist is told apart from a typo."""
    if value is _ABSENT:
        return _MISSING
    if not isinstance(value, str):
        return _expected("a date string (YYYY-MM-DD)", value)
    if not value:
        return "an empty value is not a date (expected YYYY-MM-DD)"
    shaped = _SHAPED.fullmatch(value)
    if shaped is not None:
        year, month, day = (int(part) for part in shaped.groups())
        if not 1 <= month <= 12:
            return f"{_show(value)} is not a date: there is no month {month}"
        if year >= 1:
            last = calendar.monthrange(year, month)[1]
            if not 1 <= day <= last:
                return f"{_show(value)} is not a date: {_MONTHS[month - 1]} {year} has {last} days"
    return f"{_show(value)} is not a date (expected YYYY-MM-DD)"


_date_problem = date_problem


def _units_problem(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _expected("a number", value)
    # JSON has no NaN or infinity, but Python's json module accepts them anyway.
    if isinstance(value, float) and not math.isfinite(value):
        return f"{_show(value)} is not a finite number"
    if value < 0:
        return f"{_show(value)} is negative (units must be 0 or more)"
    return None


def _collect_unknown(obj: dict, known: frozenset[str], prefix: str, out: list[str]) -> None:
    out.extend(f"{prefix}{key}" for key in obj if key not in known)


def _expected(what: str, value: object) -> str:
    return f"expected {what}, got {_describe(value)}"


def _describe(value: object) -> str:
    """The JSON type of `value`, with the value itself when it is a short scalar."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"boolean {_show(value)}"
    if isinstance(value, (int, float)):
        return f"number {_show(value)}"
    if isinstance(value, str):
        return f"string {_show(value)}"
    return f"a {type(value).__name__}"


def _show(value: str | float | bool) -> str:
    """A scalar of user input in backticks, JSON-spelled and shortened to stay on one line.

    Only scalars: dumping a container could be slow or hit the recursion limit.
    """
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value)
        except ValueError:
            # An int past sys.get_int_max_str_digits() cannot be turned into a string.
            text = "a number too long to show"
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("`", "'")
    if len(text) > _DESCRIBE_LIMIT:
        text = text[: _DESCRIBE_LIMIT - 1] + "…"
    return f"`{text}`"
