"""The claims contract (docs/claims-contract.md, section 1) as typed data: msgspec Structs.

The Structs are the contract's schema in code. They decode and validate a claim straight
from its JSON bytes in one pass (`decode_claim`), and the JSON Schema they imply
(`claim_schema`) is what medpol.service.schema and docs/claims.schema.json publish.

The decoder is the fast path, not the judge: it accepts only a plain, valid claim, and
returns None for anything else (a missing or mistyped field, an unknown field, a line in
error, facts given as a FHIR QuestionnaireResponse, an integer past 64 bits). Such a claim
goes to the detailed reader (medpol.engine.claims.read_claim), which names the field and the line
in its error and warns of unknown fields, so that decisions and messages are the same
whichever reads the claim.
"""

from __future__ import annotations

import datetime
import operator
from typing import Annotated, Any, Literal

import msgspec

from medpol.engine.claims import Claim, HistoryLine, Line, diagnosis, known_procedure_code, procedure_code

__all__ = ["ClaimIn", "claim_schema", "decode_claim"]

# msgspec reads an integer of any length; orjson, which parses the claims the decoder
# refuses, reads one past 64 bits as a float. So the decoder takes only the integers of a
# signed 64-bit word and leaves the rest to the detailed reader (the published schema
# leaves these bounds out: they are the decoder's, not the contract's).
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
Int = Annotated[int, msgspec.Meta(ge=_INT_MIN, le=_INT_MAX)]
# A date is YYYY-MM-DD: msgspec reads RFC 3339 full dates, that form and no other.
Date = Annotated[datetime.date, msgspec.Meta(extra_json_schema={"pattern": r"^\d{4}-\d{2}-\d{2}$"})]
FactValue = Annotated[
    bool | Int | float | str | None,
    msgspec.Meta(
        description="true/false, a number, a date (YYYY-MM-DD, or `none` for no such event), a HCPCS code, "
        "one of the fact's declared values, or null for an answer not known"
    ),
]
Facts = dict[str, FactValue]
Units = Annotated[Int | float, msgspec.Meta(extra_json_schema={"minimum": 0, "default": 1})]

# Unknown fields are refused here so that the detailed reader, which ignores them with a
# warning, sees them (the published schema lets them through: see claim_schema). Decoded
# claims hold no reference cycles, so the Structs stay out of the garbage collector's way.
_STRUCT = {"forbid_unknown_fields": True, "kw_only": True, "gc": False}


class Member(msgspec.Struct, **_STRUCT):
    id: str
    birth_date: Date
    line_of_business: Literal["commercial", "medicare", "medicaid"]


class Supplier(msgspec.Struct, **_STRUCT):
    licensed_in_state: bool = True


class LineIn(msgspec.Struct, **_STRUCT):
    seq: Annotated[Int, msgspec.Meta(description="line number, unique in the claim")]
    hcpcs: Annotated[str, msgspec.Meta(description="HCPCS Level II code")]
    modifiers: list[str] = []
    service_date: Date
    units: Units = 1
    place_of_service: str | msgspec.UnsetType = msgspec.UNSET
    facts: Annotated[Facts, msgspec.Meta(description="facts about this line only; they override claim facts")] = {}


class HistoryIn(msgspec.Struct, **_STRUCT):
    hcpcs: str
    service_date: Date
    units: Int | float


class ClaimIn(msgspec.Struct, **_STRUCT):
    """One claim (docs/claims-contract.md, section 1). Unknown top-level fields are ignored."""

    id: Annotated[str, msgspec.Meta(description="claim identifier, echoed in the decision")]
    member: Member
    supplier: Supplier = msgspec.field(default_factory=Supplier)
    diagnoses: list[Annotated[str, msgspec.Meta(description="ICD-10-CM, with or without the dot")]]
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1)]
    facts: Annotated[
        Facts,
        msgspec.Meta(
            description="clinical and documentation facts, or a FHIR QuestionnaireResponse answering the "
            "policy's Questionnaire (medpol fhir questionnaire)"
        ),
    ] = {}
    history: list[HistoryIn] = []


_DECODER = msgspec.json.Decoder(ClaimIn)
_SEQ = operator.attrgetter("seq")
_UNSET = msgspec.UNSET


def decode_claim(raw: bytes) -> Claim | None:
    """The claim in `raw` (one JSON document), decoded, validated and normalized as
    read_claim would, or None if it is not a plain valid claim (read it in detail then)."""
    try:
        c = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    member = c.member
    # Facts that are a QuestionnaireResponse are read as the facts it answers (medpol.service.fhir).
    if not c.id or not member.id or "resourceType" in c.facts:
        return None
    diagnoses = []
    for code in c.diagnoses:
        norm = diagnosis(code)
        if norm is None:
            return None
        diagnoses.append(norm)
    birth_date = member.birth_date
    given = c.lines
    if len(set(map(_SEQ, given))) < len(given):
        return None  # a seq given twice: the detailed reader says which
    lines = []
    for line in given:
        hcpcs = known_procedure_code(line.hcpcs) or procedure_code(line.hcpcs)
        units = line.units
        if hcpcs is None or line.service_date < birth_date or units < 0:
            return None
        place = line.place_of_service
        lines.append(
            Line(
                line.seq,
                hcpcs,
                tuple(line.modifiers),
                line.service_date,
                units,
                None if place is _UNSET else place,
                line.facts,
            )
        )
    history = []
    for past in c.history:
        hcpcs = procedure_code(past.hcpcs)
        if hcpcs is None or past.units < 0:
            return None
        history.append(HistoryLine(hcpcs, past.service_date, past.units))
    return Claim(
        id=c.id,
        member_id=member.id,
        birth_date=birth_date,
        line_of_business=member.line_of_business,
        supplier_licensed_in_state=c.supplier.licensed_in_state,
        diagnoses=tuple(diagnoses),
        diagnoses_as_given=tuple(c.diagnoses),
        lines=tuple(lines),
        facts=c.facts,
        history=tuple(history),
        ignored_fields=(),
    )


def claim_schema() -> dict:
    """The JSON Schema of a claim, as the Structs imply it, inlined into one object.

    Two widenings make it the contract rather than the fast decoder: unknown fields are
    allowed (the reader ignores them, with a warning), and `facts` may also be a FHIR
    QuestionnaireResponse (read as the facts it answers).
    """
    (ref,), components = msgspec.json.schema_components([ClaimIn], ref_template="#/$defs/{name}")
    schema = {"title": "Claim", **_inline(ref, components)}
    facts = schema["properties"]["facts"]
    description = facts.pop("description")
    questionnaire = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"const": "QuestionnaireResponse"}},
    }
    schema["properties"]["facts"] = {"description": description, "oneOf": [facts, questionnaire]}
    return schema


_LEFT_OUT = (("additionalProperties", False), ("required", []), ("minimum", _INT_MIN), ("maximum", _INT_MAX))


def _inline(node: Any, components: dict) -> Any:
    """`node` with every $ref replaced by its definition, written as a reader would: without
    the title and the `additionalProperties: false` msgspec gives each Struct, an empty
    `required`, or an `anyOf` of bare types where a list of types says the same."""
    if isinstance(node, list):
        return [_inline(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inline(components[node["$ref"].rsplit("/", 1)[1]], components)
    out: dict = {}
    for key, value in node.items():
        if (key, value) in _LEFT_OUT or key == "title":
            continue
        if key in ("default", "const", "enum"):
            out[key] = value
        elif key == "anyOf" and all(set(option) == {"type"} for option in _inline(value, components)):
            types = [option["type"] for option in value]
            if "number" in types:
                types.remove("integer")  # an integer is a number
            out["type"] = types[0] if len(types) == 1 else types
        else:
            out[key] = _inline(value, components)
    return out
