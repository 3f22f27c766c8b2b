"""A small builder of claims in the shape of docs/claims-contract.md, section 1.

    claim(line("E0781"), line("J0895", units=8), diagnoses=["E83.111"])

gives a commercial adult member, the ACA 6407 documentation facts present and a licensed
supplier; every keyword overrides one default. Facts given as DROP are removed, so a test
can take away one default fact ("the claim lacks it").
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

DOS = "2026-02-10"  # a date of service after revision 22 took effect (2026-01-25)
ADULT = "1970-03-02"

DROP = object()  # a fact value that removes the fact from the claim

# ACA 6407: face-to-face examination within the six months before the written order,
# documentation received before delivery.
ACA_FACTS: dict[str, Any] = {
    "face_to_face_date": "2025-12-15",
    "written_order_date": "2026-01-05",
    "documentation_received_before_delivery": True,
}

# Criteria set 1: prolonged infusion (at least 8 hours).
SET1: dict[str, Any] = {
    "home_parenteral_necessary": True,
    "pump_necessary_for_safety": True,
    "infusion_hours": 24,
    "prolonged_infusion_efficacy_proven": True,
    "regimen_advantage_proven": True,
}

# Criteria set 2: intermittent infusion (under 8 hours).
SET2: dict[str, Any] = {
    "home_parenteral_necessary": True,
    "pump_necessary_for_safety": True,
    "infusion_hours": 2,
    "no_office_return_required": True,
    "toxicity_requires_controlled_rate": True,
}

_ids = itertools.count(1)

# Every claim this module builds, so that one test can check the reasons of all of them.
BUILT: list[dict[str, Any]] = []


def line(
    hcpcs: str,
    date: str = DOS,
    units: float | None = None,
    modifiers: list[str] | None = None,
    facts: dict[str, Any] | None = None,
    seq: int | None = None,
    pos: str | None = None,
) -> dict[str, Any]:
    """One claim line; `seq` is filled in by `claim` when not given."""
    out: dict[str, Any] = {"hcpcs": hcpcs, "service_date": date}
    if seq is not None:
        out["seq"] = seq
    if units is not None:
        out["units"] = units
    if modifiers is not None:
        out["modifiers"] = list(modifiers)
    if facts is not None:
        out["facts"] = dict(facts)
    if pos is not None:
        out["place_of_service"] = pos
    return out


def hist(hcpcs: str, date: str, units: float = 1) -> dict[str, Any]:
    """One earlier paid line of the member."""
    return {"hcpcs": hcpcs, "service_date": date, "units": units}


def merge(*fact_sets: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """Facts merged left to right; DROP removes a name."""
    out: dict[str, Any] = {}
    for fs in (*fact_sets, facts):
        out.update(fs)
    return out


def claim(
    *lines: dict[str, Any] | str,
    facts: dict[str, Any] | None = None,
    diagnoses: list[str] | tuple = (),
    birth_date: str = ADULT,
    lob: str = "commercial",
    history: list[dict[str, Any]] | tuple = (),
    aca: bool = True,
    licensed: bool | None = None,
    claim_id: str | None = None,
) -> dict[str, Any]:
    """A claim dict per the contract. Lines may be given as bare HCPCS strings (served on DOS)."""
    built_lines = []
    for i, ln in enumerate(lines, start=1):
        ln = line(ln) if isinstance(ln, str) else copy.deepcopy(ln)
        ln.setdefault("seq", i)
        built_lines.append(ln)
    all_facts = merge(ACA_FACTS if aca else {}, facts or {})
    all_facts = {k: v for k, v in all_facts.items() if v is not DROP}
    n = next(_ids)
    out: dict[str, Any] = {
        "id": claim_id or f"T-{n}",
        "member": {"id": f"M-{n}", "birth_date": birth_date, "line_of_business": lob},
        "diagnoses": list(diagnoses),
        "lines": built_lines,
        "facts": all_facts,
    }
    if history:
        out["history"] = [dict(h) for h in history]
    if licensed is not None:
        out["supplier"] = {"licensed_in_state": licensed}
    BUILT.append(out)
    return out
