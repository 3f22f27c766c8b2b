"""Hypothesis strategies for claims under the encoded policies."""

from __future__ import annotations

import datetime

from hypothesis import strategies as st

CODES = [
    "E0776",
    "E0779",
    "E0780",
    "E0781",
    "E0791",
    "E1399",
    "K0455",
    "E0784",
    "A4221",
    "A4222",
    "A4223",
    "A4224",
    "A4225",
    "A4305",
    "A4306",
    "A4602",
    "A9270",
    "K0552",
    "K0601",
    "A4244",
    "A5120",
    "J7999",
    "Q9977",
    "J0895",
    "J9190",
    "J9200",
    "J9065",
    "J2270",
    "J1170",
    "J2175",
    "J0133",
    "J0289",
    "J1570",
    "J1250",
    "J1325",
    "J3285",
    "J1457",
    "J2278",
    "J1559",
    "J7340",
    "J9039",
    "J7356",
    "J1817",
    "J1644",
    "99213",
]
DIAGNOSES = [
    "C91.00",
    "C9101",
    "E83.111",
    "C22.0",
    "C18.9",
    "I50.9",
    "I27.0",
    "I27.21",
    "E83.52",
    "D80.3",
    "G61.81",
    "G20.A1",
    "I26.99",
    "Z00.00",
]
DAYS = [
    datetime.date(2026, 1, 24),
    datetime.date(2026, 1, 25),
    datetime.date(2026, 2, 28),
    datetime.date(2026, 3, 1),
    datetime.date(2025, 12, 1),
    datetime.date(2026, 1, 31),
]

FACT_VALUES = {
    "bool": st.booleans(),
    "int": st.integers(min_value=0, max_value=12),
    "number": st.sampled_from([0, 0.05, 0.1, 2, 3, 7.9, 8, 12, 25, 26, 30, 31]),
    "date": st.sampled_from([d.isoformat() for d in DAYS] + ["2025-06-01", "2025-07-20"]),
    "code": st.sampled_from(["J9039", "J0895", "J1325", "E0781", "K0455"]),
}


def fact_strategy(model, values_of=FACT_VALUES, per_line: bool = False):
    entries = {}
    for name, fact in model.facts.items():
        if fact.per_line != per_line and per_line:
            continue
        kind = fact.type.kind
        if kind == "enum":
            values = st.sampled_from(list(fact.type.values))
        elif kind == "int" and fact.type.low is not None:
            values = st.integers(min_value=fact.type.low, max_value=fact.type.high)
        else:
            values = values_of[kind]
        if model.follow is not None and name == model.follow.owned_fact:
            values = st.sampled_from(sorted(model.bases))  # the member's own base item
        if kind == "date" and fact.type.or_none:
            values = st.one_of(values, st.just("none"))
        entries[name] = values
    names = sorted(entries)
    return st.lists(st.sampled_from(names), unique=True, max_size=len(names)).flatmap(
        lambda chosen: st.fixed_dictionaries({n: entries[n] for n in chosen})
    )


@st.composite
def claims(draw, model):
    n = draw(st.integers(min_value=1, max_value=5))
    lines = []
    for seq in range(1, n + 1):
        line = {
            "seq": seq,
            "hcpcs": draw(st.sampled_from(CODES)),
            "service_date": draw(st.sampled_from(DAYS)).isoformat(),
            "units": draw(st.sampled_from([1, 2, 4, 5, 140, 875, 900])),
        }
        if draw(st.booleans()):
            line["modifiers"] = draw(st.lists(st.sampled_from(["RR", "NU", "JW", "KX"]), max_size=2))
        if draw(st.integers(0, 4)) == 0:
            line["facts"] = {"compounded": draw(st.booleans())}
        lines.append(line)
    history = [
        {
            "hcpcs": draw(st.sampled_from(["J9039", "J1457"])),
            "service_date": draw(st.sampled_from(DAYS)).isoformat(),
            "units": draw(st.sampled_from([35, 400, 875])),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    # A member is born before every line served (a later birth date is an error of its own).
    first = min(line["service_date"] for line in lines)
    births = [b for b in ["1970-03-02", "2025-12-30", "2026-01-01", "2025-05-10"] if b <= first]
    return {
        "id": "gen",
        "member": {
            "id": "m",
            "birth_date": draw(st.sampled_from(births)),
            "line_of_business": draw(st.sampled_from(["commercial", "commercial", "medicaid", "medicare"])),
        },
        "supplier": {"licensed_in_state": draw(st.booleans())},
        "diagnoses": draw(st.lists(st.sampled_from(DIAGNOSES), max_size=2)),
        "lines": lines,
        "facts": draw(fact_strategy(model)),
        "history": history,
    }


GLUCOSE_CODES = [
    "E0607", "E2100", "E2101", "A4253", "A4259", "A4256", "A4258", "A4233", "A4245", "A4250", "A4255",
    "E0620", "A4257", "E2102", "E2103", "A4238", "A4239", "E0784", "99213",
]  # fmt: skip
GLUCOSE_DAYS = [
    datetime.date(2022, 3, 31),
    datetime.date(2022, 6, 30),
    datetime.date(2022, 7, 1),
    datetime.date(2022, 12, 31),
    datetime.date(2026, 2, 28),
    datetime.date(2026, 3, 10),
    datetime.date(2026, 5, 31),
    datetime.date(2026, 8, 31),
]
GLUCOSE_FACT_VALUES = {
    "bool": st.booleans(),
    "int": st.sampled_from([20, 100, 199, 200, 400]),
    "number": st.sampled_from([1, 3, 4, 6, 0.5]),
    "date": st.sampled_from(["2025-08-31", "2025-09-10", "2026-01-15", "2026-02-28", "2026-03-20", "2026-08-31"]),
    "code": st.sampled_from(["E2102"]),
}


@st.composite
def glucose_claims(draw, model):
    """Claims under the glucose monitors policy: limits, windows and history at their edges."""
    n = draw(st.integers(min_value=1, max_value=4))
    lines = []
    for seq in draw(st.permutations(list(range(1, n + 1)))):
        line = {
            "seq": seq,
            "hcpcs": draw(st.sampled_from(GLUCOSE_CODES)),
            "service_date": draw(st.sampled_from(GLUCOSE_DAYS)).isoformat(),
            "units": draw(st.sampled_from([1, 2, 3, 4, 7])),
        }
        if draw(st.integers(0, 2)) == 0:
            line["facts"] = draw(fact_strategy(model, GLUCOSE_FACT_VALUES, per_line=True))
        lines.append(line)
    history = [
        {
            "hcpcs": draw(st.sampled_from(["A4253", "A4259", "A4239", "E2103", "A4258"])),
            "service_date": draw(st.sampled_from(GLUCOSE_DAYS)).isoformat(),
            "units": draw(st.sampled_from([1, 2, 6])),
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "id": "gen",
        "member": {"id": "m", "birth_date": "1956-04-11", "line_of_business": "medicare"},
        "diagnoses": draw(st.lists(st.sampled_from(["E11.9", "E10.A1", "O24.4", "O24.1", "Z00.00"]), max_size=2)),
        "lines": lines,
        "facts": draw(fact_strategy(model, GLUCOSE_FACT_VALUES)),
        "history": history,
    }


# A drug of each situation the infusion pump policy covers, with a diagnosis that indicates it
# (None: the situation rests on facts alone).
INDICATIONS = [
    ("J9039", "C91.00"),
    ("J0895", "E83.111"),
    ("J9190", "C18.9"),
    ("J2270", None),
    ("J1170", None),
    ("J0133", None),
    ("J0287", None),
    ("J1250", "I50.9"),
    ("J1325", "I27.0"),
    ("J1457", "E83.52"),
    ("J2278", None),
    ("J1559", "G61.81"),
    ("J7340", "G20.A1"),
    ("J7356", "G20.A1"),
]


@st.composite
def indicated_pump_claims(draw, model):
    """Claims for a pump and the drug it serves, with the drug's diagnosis and some of the
    facts its criteria read: lines that most often miss coverage by a few facts."""
    drug, diagnosis = draw(st.sampled_from(INDICATIONS))
    day = draw(st.sampled_from(DAYS)).isoformat()
    lines = [{"seq": 1, "hcpcs": draw(st.sampled_from(["E0781", "E0779", "E0780", "K0455"])), "service_date": day}]
    facts = draw(fact_strategy(model))
    if draw(st.booleans()):
        lines.append({"seq": 2, "hcpcs": drug, "service_date": day, "units": draw(st.sampled_from([1, 140, 900]))})
    else:
        facts["pump_drug"] = drug
    if draw(st.booleans()):
        lines.append({"seq": len(lines) + 1, "hcpcs": draw(st.sampled_from(["A4222", "K0552"])), "service_date": day})
    if draw(st.booleans()):
        facts.update(face_to_face_date="2025-12-15", written_order_date="2026-01-05")
        facts["documentation_received_before_delivery"] = True
    return {
        "id": "gen",
        "member": {
            "id": "m",
            "birth_date": draw(st.sampled_from(["1970-03-02", "2025-12-30"])),
            "line_of_business": "commercial",
        },
        "diagnoses": [diagnosis] if diagnosis and draw(st.integers(0, 3)) else [],
        "lines": lines,
        "facts": facts,
    }


@st.composite
def policy_claims(draw, model):
    """A claim for any policy: lines of the codes it governs, facts of the types it declares,
    served on dates around its revision's effective date."""
    codes = sorted(model.governed)
    effective = model.policy.revision.effective if model.policy.revision else datetime.date(2026, 1, 1)
    days = [effective + datetime.timedelta(days=d) for d in (0, 30, 200, 400)]
    n = draw(st.integers(min_value=1, max_value=3))
    lines = [
        {
            "seq": seq,
            "hcpcs": draw(st.sampled_from(codes)),
            "service_date": draw(st.sampled_from(days)).isoformat(),
            "units": draw(st.sampled_from([1, 1, 2, 3])),
        }
        for seq in range(1, n + 1)
    ]
    dx = sorted({lo for ds in model.diagnosis_sets.values() for lo, _, _ in ds.ranges})[:8]
    facts = draw(fact_strategy(model, {**FACT_VALUES, "date": st.sampled_from([d.isoformat() for d in days])}))
    return {
        "id": "gen",
        "member": {"id": "m", "birth_date": "1950-01-01", "line_of_business": "medicare"},
        "diagnoses": draw(st.lists(st.sampled_from(dx), max_size=2)) if dx else [],
        "lines": lines,
        "facts": facts,
    }
