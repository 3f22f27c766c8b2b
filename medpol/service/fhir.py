"""FHIR in and out: Questionnaires of a policy's facts, Claims and QuestionnaireResponses read
as claims, decisions written as ClaimResponses.

FHIR version: R4B (4.3.0), as the `fhir.resources` package (the `fhir` extra) models it under
`fhir.resources.R4B`; R4B is R4 with technical corrections, and the four resources used here
(Questionnaire, QuestionnaireResponse, Claim, ClaimResponse) have the same elements in both.
Every resource read is validated by `fhir.resources` first, and every resource written is
validated before it leaves.

- `questionnaire(policy)`: one Questionnaire per policy revision (SDC style), one item per fact
  the policy declares, linkId the fact's name, text its question; the item type follows the
  fact's type (boolean, integer with its range, decimal with its unit, date, choice with the
  `one of` values as answerOption, string for a HCPCS code or text). No enableWhen is written:
  which facts matter depends on the claim's codes, diagnoses and dates as much as on other
  answers, so it is not derived from the answers alone.
- `facts_from_response(qr, types)`: a QuestionnaireResponse as a claim's `facts`, answers
  matched by linkId; an answer of the wrong type is an error naming the fact.
- `claim_from_fhir(resource, types)`: a Claim (alone, or in a Bundle with its Patient,
  Coverage and QuestionnaireResponse) as a contract claim.
- `claim_response(decision)`: a decision as a ClaimResponse, one adjudication per item with its
  X12 claim adjustment reason code (CARC), the reasons' passages as processNote.

`FhirClaims` wraps a policy (or library) so that `medpol eval` and `medpol serve` read either
shape: a claim that is plain JSON is decided as it is, untouched.
"""

from __future__ import annotations

import datetime
from typing import Any

from medpol.compiler.words import outcome_words
from medpol.engine.errors import error_decision

FHIR_VERSION = "4.3.0"  # R4B
SDC_PROFILE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire"
UNIT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
MIN_EXTENSION = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_EXTENSION = "http://hl7.org/fhir/StructureDefinition/maxValue"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
UCUM = "http://unitsofmeasure.org"
SOPT = "https://nahdo.org/sopt"  # Source of Payment Typology
DEFAULT_BASE = "urn:medpol"
LINES_OF_BUSINESS = ("commercial", "medicare", "medicaid")

_UCUM = {"hours": "h", "days": "d", "months": "mo", "mmHg": "mm[Hg]", "mg/dl": "mg/dL", "percent": "%"}

# Outcome (and denial category) -> X12 CARC: code, what the code says.
CARC_CODES = {
    "denied:not_reasonable_and_necessary": (
        "50",
        "These are non-covered services because this is not deemed a 'medical necessity' by the payer.",
    ),
    "denied:not_covered": ("96", "Non-covered charge(s)."),
    "denied:incorrect_coding": ("16", "Claim/service lacks information or has submission/billing error(s)."),
    "covered:in_part": (
        "151",
        "Payment adjusted because the payer deems the information submitted does not support "
        "this many/frequency of services.",
    ),
    "pending": ("16", "Claim/service lacks information or has submission/billing error(s)."),
    "refer": (
        "109",
        "Claim/service not covered by this payer/contractor. You must send the claim/service to the "
        "correct payer/contractor.",
    ),
    "error": ("16", "Claim/service lacks information or has submission/billing error(s)."),
}


class FhirUnavailable(Exception):
    """The `fhir` extra is not installed."""

    def __init__(self):
        super().__init__("FHIR needs the fhir extra: pip install 'medpol[fhir]'")


class FhirError(Exception):
    """A FHIR resource that cannot be read as a claim: the field, and why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _model(name: str):
    """The R4B model class of a resource, e.g. `Claim`; None for a name R4 does not define."""
    import importlib

    try:
        importlib.import_module("fhir.resources.R4B")
    except ImportError:
        raise FhirUnavailable() from None
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{name.lower()}")
    except ImportError:
        return None
    return getattr(module, name, None)


def validate(resource: dict, field: str | None = None) -> dict:
    """Check a resource with `fhir.resources` (R4B); raise FhirError naming the first problems."""
    name = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(name, str) or not name.isalpha():
        raise FhirError(field or "resourceType", "not a FHIR resource: `resourceType` is missing")
    cls = _model(name)
    if cls is None:
        raise FhirError(field or "resourceType", f"`{name[:40]}` is not a FHIR R4 resource")
    from pydantic import ValidationError

    try:
        cls.model_validate(resource)
    except ValidationError as err:
        problems = []
        for e in err.errors()[:3]:
            where = ".".join(str(part) for part in e["loc"] if part != "resourceType")
            problems.append(f"{where}: {e['msg']}" if where else e["msg"])
        more = len(err.errors()) - len(problems)
        raise FhirError(
            field or name,
            "not a valid FHIR " + name + ": " + "; ".join(problems) + (f" (and {more} more)" if more else ""),
        ) from None
    except (ValueError, TypeError) as err:
        raise FhirError(field or name, f"not a valid FHIR {name}: {err}") from None
    except RecursionError:
        # fhir.resources validates each level of nesting (an extension's extensions, an item's
        # items) with Python calls of its own: a few hundred levels exhaust the stack.
        raise FhirError(field or name, f"not a valid FHIR {name}: nested too deeply to be read") from None
    return resource


# ------------------------------------------------------------------ fact types


def _policies(policy) -> list:
    inner = getattr(policy, "policy", None)  # WithWhyNot and FhirClaims wrap one
    if inner is not None and not hasattr(policy, "model"):
        return _policies(inner)
    if hasattr(policy, "policies"):
        return list(policy.policies.values())
    return [policy]


def fact_types(policy) -> dict:
    """Every fact a policy (or each policy of a library) reads: name -> FactType. A policy
    that reads another policy's criteria reads that policy's facts too, typed as it declares them."""
    found: dict = {}
    for p in _policies(policy):
        for name, fact in p.model.facts.items():
            found.setdefault(name, fact.type)
        for fact, _owner in read_elsewhere(p):
            found.setdefault(fact.name, fact.type)
    return found


def _others(policy) -> dict:
    """The policies beside `policy` in its library, by id (empty for a policy read alone)."""
    library = getattr(getattr(policy, "engine", None), "library", None)
    return dict(getattr(library, "policies", None) or {})


def read_elsewhere(policy) -> list[tuple[Any, tuple[str, str]]]:
    """The facts `policy` reads through other policies' criteria (`meets NAME of ID`) and does
    not declare itself: (fact as the other policy declares it, ("ID:NAME", the criteria's title
    and policy in words)), in the order the criteria read them, each fact once."""
    from medpol.dsl import ir

    others = _others(policy)
    own = policy.model.facts
    found: dict[str, tuple[Any, tuple[str, str]]] = {}
    seen: set[tuple[str, str]] = set()

    def operands(operand):
        if isinstance(operand, ir.FactRef):
            yield operand.name
        elif isinstance(operand, ir.Arith):
            yield from operands(operand.left)
            yield from operands(operand.right)

    def visit(model, cond, where: tuple[str, str]) -> None:
        for node in ir.walk(cond):
            names: list[str] = []
            if isinstance(node, (ir.Truth, ir.Is, ir.In)):
                names = [node.name]
            elif isinstance(node, ir.Compare):
                names = [*operands(node.left), *operands(node.right)]
            elif isinstance(node, ir.CriteriaOf):
                read(node.policy, node.name)
            for name in names:
                if name in model.facts and name not in own:
                    found.setdefault(name, (model.facts[name], where))
                elif isinstance(node, ir.Truth) and name in model.criteria:
                    read(model.policy.id, name)

    def read(pid: str, name: str) -> None:
        other = others.get(pid)
        if other is None or (pid, name) in seen or name not in other.model.criteria:
            return
        seen.add((pid, name))
        criteria = other.model.criteria[name]
        where = f"{pid}:{name}", f"{criteria.title or name} ({other.model.policy.title})"
        visit(other.model, criteria.condition, where)

    for model_cond in _criteria_reads(policy.model):
        read(model_cond.policy, model_cond.name)
    return list(found.values())


def _criteria_reads(model) -> list:
    from medpol.compiler.link import references

    return [ref for ref in references(model) if ref.kind == "criteria"]


# ------------------------------------------------------------------ Questionnaire


def canonical(policy_id: str, base: str | None = None) -> str:
    base = (base or DEFAULT_BASE).rstrip("/")
    if base.startswith("urn:"):
        return f"{base}:questionnaire:{policy_id}"
    return f"{base}/Questionnaire/{policy_id}"


def _value_system(policy_id: str, fact: str, base: str | None) -> str:
    return f"{canonical(policy_id, base)}{':' if (base or DEFAULT_BASE).startswith('urn:') else '/'}{fact}"


def _item(fact, policy_id: str, base: str | None) -> dict:
    ftype = fact.type
    item: dict[str, Any] = {"linkId": fact.name, "text": fact.question or fact.name.replace("_", " ")}
    if fact.per_line:
        item["text"] += " (for the line it is answered on)"
    kind = ftype.kind
    if kind == "bool":
        item["type"] = "boolean"
    elif kind == "int":
        item["type"] = "integer"
        low = ftype.low if ftype.low is not None else 0
        item["extension"] = [{"url": MIN_EXTENSION, "valueInteger": low}]
        if ftype.high is not None:
            item["extension"].append({"url": MAX_EXTENSION, "valueInteger": ftype.high})
    elif kind == "number":
        item["type"] = "decimal"
        extensions = [{"url": MIN_EXTENSION, "valueDecimal": 0}]
        if ftype.unit:
            coding = {"display": ftype.unit}
            if ftype.unit in _UCUM:
                coding = {"system": UCUM, "code": _UCUM[ftype.unit], "display": ftype.unit}
            extensions.insert(0, {"url": UNIT_EXTENSION, "valueCoding": coding})
        item["extension"] = extensions
    elif kind == "date":
        item["type"] = "date"
        if ftype.or_none:
            item["text"] += " (answer `none` as a string when the record shows no such event)"
    elif kind == "enum":
        item["type"] = "choice"
        system = _value_system(policy_id, fact.name, base)
        item["answerOption"] = [
            {"valueCoding": {"system": system, "code": value, "display": ftype.label(value) or value.replace("_", " ")}}
            for value in ftype.values
        ]
    else:  # a HCPCS code, or text
        item["type"] = "string"
    return item


def questionnaire(policy, base: str | None = None) -> dict:
    """The FHIR Questionnaire asking every fact the policy declares, for its revision."""
    p = policy.ir
    rev = p.revision
    version = rev.number if rev else "0"
    resource: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": f"{p.id}-r{version}"[:64].replace("_", "-"),
        "meta": {"profile": [SDC_PROFILE]},
        "url": canonical(p.id, base),
        "version": version,
        "name": "".join(part.capitalize() for part in p.id.split("-"))[:255] or "Policy",
        "title": f"{p.title} (revision {version})",
        "status": "active",
        "subjectType": ["Patient"],
        "description": f"The facts the medpol policy `{p.id}` reads to decide a claim; each answer is sent as "
        "the claim's fact of the same name (the item's linkId).",
        "item": [_item(fact, p.id, base) for fact in p.facts],
    }
    # Facts read through another policy's criteria are asked here too, as that policy asks
    # them: a claim for this policy is decided with them.
    groups: dict[str, dict] = {}
    for fact, (criteria, words) in read_elsewhere(policy):
        if criteria not in groups:
            groups[criteria] = {"linkId": f"criteria:{criteria}", "text": words, "type": "group", "item": []}
            resource["item"].append(groups[criteria])
        groups[criteria]["item"].append(_item(fact, p.id, base))
    if rev:
        resource["date"] = rev.dated.isoformat()
        resource["effectivePeriod"] = {"start": rev.effective.isoformat()}
    validate(resource)
    return resource


# ------------------------------------------------------------------ QuestionnaireResponse -> facts

_VALUE_WORDS = {
    "bool": "valueBoolean (true or false)",
    "int": "valueInteger (a whole number)",
    "number": "valueDecimal (a number)",
    "date": "valueDate (YYYY-MM-DD)",
    "enum": "valueCoding with one of the question's answerOption codes",
    "code": "valueString or valueCoding with a HCPCS code",
    "text": "valueString",
}


def _answers(items: list, out: list) -> None:
    for item in items or ():
        if not isinstance(item, dict):
            continue
        if "answer" in item:
            out.append(item)
        _answers(item.get("item"), out)
        for answer in item.get("answer") or ():
            if isinstance(answer, dict):
                _answers(answer.get("item"), out)


def _fact_value(link: str, answer: dict, ftype) -> Any:
    field = f"facts.{link}"
    present = [key for key in answer if key.startswith("value")]
    if len(present) != 1:
        raise FhirError(field, "an answer holds one value[x]")
    key = present[0]
    value = answer[key]
    kind = ftype.kind if ftype is not None else None
    accepted: dict[str, tuple[str, ...]] = {
        "bool": ("valueBoolean",),
        "int": ("valueInteger",),
        "number": ("valueDecimal", "valueInteger", "valueQuantity"),
        "date": ("valueDate", "valueString") if ftype is not None and ftype.or_none else ("valueDate",),
        "enum": ("valueCoding", "valueString"),
        "code": ("valueString", "valueCoding"),
        "text": ("valueString",),
    }
    if kind is not None and key not in accepted.get(kind, (key,)):
        raise FhirError(field, f"the answer is a {key}; the question `{link}` asks for {_VALUE_WORDS.get(kind, kind)}")
    if key == "valueString" and kind == "date" and value != "none":
        raise FhirError(field, f"the answer is a valueString `{str(value)[:20]}`; a date, or the string `none`")
    if key == "valueCoding":
        return value.get("code") if isinstance(value, dict) else value
    if key == "valueQuantity":
        return value.get("value") if isinstance(value, dict) else value
    if key in ("valueDecimal",) and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def facts_from_response(response: dict, types: dict, field: str = "facts") -> dict:
    """A QuestionnaireResponse's answers as facts, by linkId. An answer of another type than
    the fact's is a FhirError; a linkId the policies do not declare is kept, to be warned about."""
    validate(response, field)
    found: list = []
    _answers(response.get("item"), found)
    facts: dict[str, Any] = {}
    for item in found:
        link = item.get("linkId")
        answers = item.get("answer") or []
        if not answers:
            continue
        if len(answers) > 1:
            raise FhirError(f"facts.{link}", f"{len(answers)} answers; a fact takes one")
        facts[link] = _fact_value(link, answers[0], types.get(link))
    return facts


# ------------------------------------------------------------------ Claim -> contract claim


def _ref_target(ref: Any, claim: dict, bundle: dict | None) -> dict | None:
    """The resource a Reference points at: contained (`#id`), or an entry of the bundle."""
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str):
        return None
    if target.startswith("#"):
        for res in claim.get("contained") or ():
            if isinstance(res, dict) and res.get("id") == target[1:]:
                return res
        return None
    for entry in (bundle or {}).get("entry") or ():
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            continue
        if entry.get("fullUrl") == target or f"{res.get('resourceType')}/{res.get('id')}" == target:
            return res
    return None


def _all_resources(claim: dict, bundle: dict | None) -> list[dict]:
    found = [r for r in claim.get("contained") or () if isinstance(r, dict)]
    for entry in (bundle or {}).get("entry") or ():
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            found.append(entry["resource"])
    return found


def _code(concept: Any, system: str | None = None) -> str | None:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    codings = [c for c in codings or () if isinstance(c, dict) and c.get("code")]
    for coding in codings:
        if system is None or coding.get("system") == system:
            return coding["code"]
    return codings[0]["code"] if codings else None


def _line_of_business(coverage: dict | None) -> str | None:
    if coverage is None:
        return None
    for coding in (coverage.get("type") or {}).get("coding") or ():
        code = str(coding.get("code") or "")
        if code in LINES_OF_BUSINESS:
            return code
        if coding.get("system") == SOPT and code[:1] in "1256":
            return {"1": "medicare", "2": "medicaid", "5": "commercial", "6": "commercial"}[code[:1]]
    return None


def _sequence(entry: dict, default: int | None = 0):
    """An entry's `sequence` as a number. fhir.resources validates it as a positiveInt, and
    takes a JSON string of digits for one too: sorted among numbers, such a string would stop
    the claim with a TypeError, and as a line's `seq` it would be refused as not a number."""
    value = entry.get("sequence", default)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def claim_from_fhir(resource: dict, types: dict) -> dict:
    """A FHIR Claim (or a Bundle holding one) as a claim of the contract; raises FhirError."""
    bundle = None
    if resource.get("resourceType") == "Bundle":
        validate(resource, "Bundle")
        bundle = resource
        claims = [r for r in _all_resources({}, bundle) if r.get("resourceType") == "Claim"]
        if len(claims) != 1:
            raise FhirError("Bundle", f"a bundle holds one Claim to decide; this one holds {len(claims)}")
        claim = claims[0]
    elif resource.get("resourceType") == "Claim":
        claim = resource
    else:
        raise FhirError("resourceType", f"`{str(resource.get('resourceType'))[:40]}` is not a Claim or a Bundle")
    validate(claim, "Claim")
    patient = _ref_target(claim.get("patient"), claim, bundle)
    if patient is None or patient.get("resourceType") != "Patient":
        raise FhirError("Claim.patient", "the Patient is neither contained in the Claim nor in its Bundle")
    coverage = None
    for insurance in sorted(claim.get("insurance") or (), key=lambda i: (not i.get("focal"), _sequence(i))):
        coverage = _ref_target(insurance.get("coverage"), claim, bundle)
        if coverage is not None:
            break
    identifiers = patient.get("identifier") or []
    member: dict[str, Any] = {
        "id": (identifiers[0].get("value") if identifiers else None) or patient.get("id"),
        "birth_date": patient.get("birthDate"),
    }
    lob = _line_of_business(coverage)
    if lob is not None:
        member["line_of_business"] = lob
    diagnoses = sorted(claim.get("diagnosis") or (), key=_sequence)
    out: dict[str, Any] = {
        "id": claim.get("id") or ((claim.get("identifier") or [{}])[0].get("value")),
        "member": member,
        "diagnoses": [c for c in (_code(d.get("diagnosisCodeableConcept"), ICD10CM) for d in diagnoses) if c],
        "lines": [],
    }
    for item in claim.get("item") or ():
        line: dict[str, Any] = {
            "seq": _sequence(item, None),
            "hcpcs": _code(item.get("productOrService"), HCPCS),
            "service_date": item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start"),
        }
        modifiers = [c for c in (_code(m) for m in item.get("modifier") or ()) if c]
        if modifiers:
            line["modifiers"] = modifiers
        quantity = (item.get("quantity") or {}).get("value")
        if quantity is not None:
            line["units"] = int(quantity) if float(quantity).is_integer() else float(quantity)
        place = _code(item.get("locationCodeableConcept"))
        if place is not None:
            line["place_of_service"] = place
        out["lines"].append(line)
    response = None
    for info in claim.get("supportingInfo") or ():
        target = _ref_target(info.get("valueReference"), claim, bundle)
        if target is not None and target.get("resourceType") == "QuestionnaireResponse":
            response = target
            break
    if response is None:
        response = next(
            (r for r in _all_resources(claim, bundle) if r.get("resourceType") == "QuestionnaireResponse"), None
        )
    if response is not None:
        out["facts"] = facts_from_response(response, types, "QuestionnaireResponse")
    return out


# ------------------------------------------------------------------ contract claim -> FHIR


def _answer(value: Any, ftype) -> dict:
    kind = ftype.kind if ftype is not None else None
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if kind == "enum" or (kind == "code" and isinstance(value, str)):
        return {"valueCoding": {"code": value}}
    if kind == "date" and value != "none":
        return {"valueDate": value}
    if kind == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and kind != "number":
        return {"valueInteger": value}
    if isinstance(value, int | float):
        return {"valueDecimal": value}
    return {"valueString": str(value)}


def questionnaire_response(facts: dict, types: dict, questionnaire_url: str | None = None) -> dict:
    """Facts as a QuestionnaireResponse, one item per fact (a null answer is left out)."""
    resource: dict[str, Any] = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": []}
    if questionnaire_url:
        resource["questionnaire"] = questionnaire_url
    for name, value in facts.items():
        if value is None:
            continue
        resource["item"].append({"linkId": name, "answer": [_answer(value, types.get(name))]})
    if not resource["item"]:
        del resource["item"]
    return resource


def _contract_claim(claim: Any):
    """The claim as the claims contract reads it; FhirError naming the field, in the contract's
    words, when the contract refuses it. The writer below takes the fields as given, so it only
    meets claims of the contract's shape."""
    from medpol.engine.claims import ClaimError, LineError, read_claim

    try:
        read = read_claim(claim)
    except ClaimError as err:
        raise FhirError(err.field, err.message) from None
    for line in read.lines:
        if isinstance(line, LineError):
            # Decided, such a line is an error of its own; here it has no item to become,
            # and the Claim written without it would lose it unseen.
            raise FhirError(line.field, line.message)
    return read


def claim_to_fhir(claim: Any, types: dict, ignored: list[str] | None = None) -> dict:
    """A contract claim as a FHIR Claim, its Patient, Coverage and QuestionnaireResponse contained.

    A claim the claims contract refuses raises FhirError naming the field. Line facts,
    `history` and a supplier not licensed in its state have no place here: a claim that
    carries them is not written. Fields the contract does not know are not written either;
    their names are added to `ignored`, when given, to be told."""
    read = _contract_claim(claim)
    for i, line in enumerate(claim["lines"]):
        if line.get("facts"):
            raise FhirError(f"lines[{i}].facts", "line facts have no place in a FHIR Claim")
    if claim.get("history"):
        raise FhirError("history", "earlier paid lines have no place in a FHIR Claim")
    if not read.supplier_licensed_in_state:
        raise FhirError(
            "supplier.licensed_in_state", "a supplier not licensed in its state has no place in a FHIR Claim"
        )
    if not _is_id(read.id):
        from medpol.engine.claims import _show

        raise FhirError("id", f"{_show(read.id)} cannot be a FHIR Claim's id (at most 64 letters, digits, `-` and `.`)")
    if ignored is not None:
        ignored.extend(read.ignored_fields)
    member = claim["member"]
    contained: list[dict] = [
        {
            "resourceType": "Patient",
            "id": "patient",
            "identifier": [{"value": member["id"]}],
            "birthDate": member["birth_date"],
        },
        {
            "resourceType": "Coverage",
            "id": "coverage",
            "status": "active",
            "type": {"coding": [{"system": f"{DEFAULT_BASE}:line-of-business", "code": member["line_of_business"]}]},
            "beneficiary": {"reference": "#patient"},
            "payor": [{"display": "health plan"}],
        },
    ]
    out: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim["id"],
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": "#patient"},
        "created": min(line["service_date"] for line in claim["lines"]),
        "provider": {"display": "supplier"},
        "priority": {"coding": [{"system": PROCESS_PRIORITY, "code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "#coverage"}}],
        "diagnosis": [
            {"sequence": i, "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM, "code": code}]}}
            for i, code in enumerate(claim.get("diagnoses", ()), 1)
        ],
        "item": [],
    }
    if claim.get("facts"):
        contained.append({"id": "facts", **questionnaire_response(claim["facts"], types)})
        out["supportingInfo"] = [
            {
                "sequence": 1,
                "category": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/claiminformationcategory", "code": "info"}
                    ]
                },
                "valueReference": {"reference": "#facts"},
            }
        ]
    out["contained"] = contained
    for line in claim["lines"]:
        item: dict[str, Any] = {
            "sequence": line["seq"],
            "productOrService": {"coding": [{"system": HCPCS, "code": line["hcpcs"]}]},
            "servicedDate": line["service_date"],
            "quantity": {"value": line.get("units", 1)},
        }
        if line.get("modifiers"):
            item["modifier"] = [{"coding": [{"code": m}]} for m in line["modifiers"]]
        if line.get("place_of_service"):
            item["locationCodeableConcept"] = {"coding": [{"system": POS, "code": line["place_of_service"]}]}
        out["item"].append(item)
    if not out["diagnosis"]:
        del out["diagnosis"]
    validate(out)
    return out


# ------------------------------------------------------------------ decision -> ClaimResponse


def carc(line: dict) -> tuple[str, str] | None:
    """The X12 claim adjustment reason code (and its words) for a line's decision, if any."""
    outcome = line.get("outcome")
    if outcome == "denied":
        return CARC_CODES.get(f"denied:{line.get('category')}", CARC_CODES["denied:not_reasonable_and_necessary"])
    if outcome == "covered":
        if not line.get("denied_units"):
            return None
        # Units past a limit: denied as not reasonable and necessary is a frequency the
        # information does not support; another category keeps its own code.
        category = line.get("denied_category", "not_reasonable_and_necessary")
        if category == "not_reasonable_and_necessary":
            return CARC_CODES["covered:in_part"]
        return CARC_CODES.get(f"denied:{category}", CARC_CODES["covered:in_part"])
    return CARC_CODES.get(outcome)


def claim_response(decision: dict, request: dict | None = None, created: str | None = None) -> dict:
    """A decision as a FHIR ClaimResponse (validated): one item per line, one adjudication each."""
    request = request or decision.get("_fhir") or {}
    notes: list[dict] = []

    def note(text: str) -> int:
        notes.append({"number": len(notes) + 1, "type": "display", "text": text})
        return len(notes)

    items = []
    counts: dict[str, int] = {}
    for line in decision.get("lines", ()):
        words = outcome_words(line)
        counts[words] = counts.get(words, 0) + 1
        seq = line.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            continue  # a line without a usable number cannot be an item of the response
        numbers = []
        where = f"line {seq} ({line.get('hcpcs')})"
        if line.get("policy"):
            where += f", policy {line['policy']} revision {line.get('revision')}"
        for reason in line.get("reasons", ()):
            source = f" ({reason['source']})" if reason.get("source") else ""
            numbers.append(note(f"{where}: {words}: {reason.get('rule')}: {reason.get('text')}{source}"))
        for reason in line.get("denied_reasons", ()):
            source = f" ({reason['source']})" if reason.get("source") else ""
            denied = line.get("denied_units")
            numbers.append(note(f"{where}: {denied} units denied: {reason.get('rule')}: {reason.get('text')}{source}"))
        for failed in line.get("failed", ()):
            source = f" ({failed['source']})" if failed.get("source") else ""
            numbers.append(note(f"{where}: not met: {failed.get('id')}: {failed.get('text')}{source}"))
        if line.get("outcome") == "pending":
            numbers.append(note(f"{where}: needs information: {', '.join(line.get('missing', ()))}"))
        if line.get("refer_to"):
            numbers.append(note(f"{where}: refer to {line['refer_to']}"))
        if line.get("message"):
            numbers.append(note(f"{where}: {line['message']}"))
        adjudication: dict[str, Any] = {
            "category": {"coding": [{"system": f"{DEFAULT_BASE}:outcome", "code": line.get("outcome")}], "text": words}
        }
        reason = carc(line)
        if reason is not None:
            adjudication["reason"] = {"coding": [{"system": CARC, "code": reason[0], "display": reason[1]}]}
        if line.get("allowed_units") is not None:
            adjudication["value"] = line["allowed_units"]
        item: dict[str, Any] = {"itemSequence": seq, "adjudication": [adjudication]}
        if numbers:
            item["noteNumber"] = numbers
        items.append(item)
    error = decision.get("outcome") == "error"
    pending = any(line.get("outcome") == "pending" for line in decision.get("lines", ()))
    claim_id = decision.get("claim")
    resource: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"identifier": {"value": request["member"]}} if request.get("member") else {"display": "unknown"},
        "created": created or datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
        "insurer": {"display": "health plan"},
        "outcome": "error" if error else "partial" if pending else "complete",
        "disposition": decision.get("message")
        if error
        else ", ".join(f"{n} {w}" for w, n in counts.items()) or "no lines",
    }
    if isinstance(claim_id, str) and claim_id:
        resource["request"] = {"identifier": {"value": claim_id}}
        if _is_id(claim_id):
            resource["id"] = claim_id
    if items:
        resource["item"] = items
    if error:
        resource["error"] = [{"code": {"coding": [{"system": CARC, "code": "16"}], "text": decision.get("message")}}]
    if notes:
        resource["processNote"] = notes
    validate(resource)
    return resource


def _is_id(text: str) -> bool:
    return 0 < len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "-.") for c in text)


# ------------------------------------------------------------------ reading either shape


class FhirClaims:
    """A policy (or library) that reads a FHIR Claim or Bundle, or a claim whose `facts` is a
    QuestionnaireResponse, as the contract claim it maps to; and, with `to_fhir`, keeps on
    each decision what a ClaimResponse names (`_fhir`, taken off when it is written)."""

    def __init__(self, policy, to_fhir: bool = False):
        self.policy = policy
        self.id = policy.id
        self.revision = policy.revision
        self.to_fhir = to_fhir
        self._types: dict | None = None

    @property
    def engine(self) -> FhirClaims:
        return self

    @property
    def types(self) -> dict:
        if self._types is None:
            self._types = fact_types(self.policy)
        return self._types

    def __getstate__(self):
        return {"policy": self.policy, "id": self.id, "revision": self.revision, "to_fhir": self.to_fhir}

    def __setstate__(self, state):
        self.__dict__.update(state, _types=None)

    def read(self, claim: Any) -> Any:
        """The contract claim a FHIR input maps to; any other claim as it is."""
        if type(claim) is not dict:
            return claim
        if "resourceType" in claim:
            return claim_from_fhir(claim, self.types)
        facts = claim.get("facts")
        if type(facts) is dict and facts.get("resourceType") == "QuestionnaireResponse":
            return {**claim, "facts": facts_from_response(facts, self.types)}
        return claim

    def decide(self, claim: Any, as_of: datetime.date | None = None) -> dict:
        try:
            read = self.read(claim)
        except (FhirError, FhirUnavailable) as err:
            decision = self._error(claim, err)
        except (TypeError, ValueError, AttributeError, KeyError) as err:  # a shape validation let through
            decision = self._error(claim, FhirError("resourceType", f"cannot be read as a claim: {err}"))
        else:
            decision = self.policy.engine.decide(read, as_of)
            claim = read
        if self.to_fhir:
            member = claim.get("member") if type(claim) is dict else None
            decision["_fhir"] = {"member": member.get("id") if type(member) is dict else None}
        return decision

    def _error(self, claim: Any, err: Exception) -> dict:
        field = getattr(err, "field", "resourceType")
        message = getattr(err, "message", str(err))
        claim_id = claim.get("id") if type(claim) is dict and isinstance(claim.get("id"), str) else None
        under = (self.id, self.revision) if self.id is not None else None
        return error_decision(claim_id, message, field=field, under=under)
