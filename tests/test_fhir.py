"""FHIR R4 (R4B) in and out: Questionnaires, QuestionnaireResponses and Claims read as claims,
ClaimResponses written; every resource medpol writes parses with fhir.resources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fhir.resources")

from fhir.resources.R4B.claim import Claim  # noqa: E402
from fhir.resources.R4B.claimresponse import ClaimResponse  # noqa: E402
from fhir.resources.R4B.questionnaire import Questionnaire  # noqa: E402
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse  # noqa: E402

from medpol.api import load_policy  # noqa: E402
from medpol.engine.library import load_library  # noqa: E402
from medpol.service.fhir import (  # noqa: E402
    CARC,
    ICD10CM,
    FhirClaims,
    claim_from_fhir,
    claim_response,
    claim_to_fhir,
    fact_types,
    questionnaire,
    questionnaire_response,
    read_elsewhere,
)

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CONTRACT = ROOT / "tests" / "fixtures" / "contract"
PUMP = POLICIES / "external-infusion-pump.policy"
TYPE_OF = {"bool": "boolean", "int": "integer", "number": "decimal", "date": "date", "enum": "choice"}


def contract_examples() -> list[dict]:
    claims = []
    for path in sorted(CONTRACT.rglob("*.json*")):
        if path.name.startswith("expected"):
            continue
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            claims.extend(json.loads(line) for line in text.splitlines() if line.strip())
        else:
            claims.append(json.loads(text))
    return claims


@pytest.fixture(scope="module")
def library():
    return load_library([POLICIES])


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.policy")), ids=lambda p: p.stem)
def test_each_policy_has_a_questionnaire_asking_every_fact(path):
    policy = load_policy(path)
    resource = questionnaire(policy)
    Questionnaire.model_validate(resource)
    assert resource["version"] == policy.revision
    assert resource["url"] == f"urn:medpol:questionnaire:{policy.id}"
    top = [item for item in resource["item"] if item["type"] != "group"]
    groups = [item for item in resource["item"] if item["type"] == "group"]
    assert [item["linkId"] for item in top] == list(policy.model.facts)
    asked = {item["linkId"]: item for item in top + [i for g in groups for i in g["item"]]}
    # Facts read through another policy's criteria are asked too, grouped by those criteria.
    assert set(asked) == set(policy.model.facts) | {fact.name for fact, _ in read_elsewhere(policy)}
    for name, ftype in fact_types(policy).items():
        item = asked[name]
        assert item["type"] == TYPE_OF.get(ftype.kind, "string")
        if ftype.kind == "enum":
            assert [o["valueCoding"]["code"] for o in item["answerOption"]] == list(ftype.values)
            words = [o["valueCoding"]["display"] for o in item["answerOption"]]
            assert words == [ftype.label(v) or v.replace("_", " ") for v in ftype.values]
    for name, fact in policy.model.facts.items():
        assert asked[name]["text"].startswith(fact.question or name.replace("_", " "))


def test_a_questionnaire_asks_what_another_policys_criteria_read():
    seating = load_policy(POLICIES / "wheelchair-seating.policy")
    bases = load_policy(POLICIES / "manual-wheelchair-bases.policy")
    resource = questionnaire(seating)
    [group] = [item for item in resource["item"] if item["type"] == "group"]
    assert group["linkId"] == "criteria:manual-wheelchair-bases:basic_coverage"
    assert group["text"].endswith("(Manual Wheelchair Bases)")
    asked = {item["linkId"]: item["text"] for item in group["item"]}
    fact = "mobility_limitation_impairs_mradls"
    assert asked[fact] == bases.model.facts[fact].question
    assert not set(asked) & set(seating.model.facts)
    # The wheelchair's words are the policy's own.
    [wheelchair] = [item for item in resource["item"] if item["linkId"] == "wheelchair"]
    first = wheelchair["answerOption"][0]["valueCoding"]
    assert first["display"] == "a manual wheelchair (other than a transport chair)"


def test_the_questionnaire_command_writes_one(tmp_path):
    out = tmp_path / "q.json"
    subprocess.run(
        [sys.executable, "-m", "medpol.cli", "fhir", "questionnaire", str(PUMP), "--out", str(out)],
        check=True,
        cwd=ROOT,
    )
    resource = json.loads(out.read_text())
    Questionnaire.model_validate(resource)
    assert resource["version"] == "22"


@pytest.mark.parametrize("claim", contract_examples(), ids=lambda c: c["id"])
def test_a_questionnaire_response_decides_as_the_same_facts_in_json(claim, library):
    types = fact_types(library)
    response = questionnaire_response(claim["facts"], types, "urn:medpol:questionnaire:external-infusion-pump|22")
    QuestionnaireResponse.model_validate(response)
    with_response = {**claim, "facts": response}
    assert FhirClaims(library).decide(with_response) == library.decide(claim)
    pump = load_policy(PUMP)
    assert FhirClaims(pump).decide(with_response) == pump.decide(claim)


@pytest.mark.parametrize("claim", contract_examples(), ids=lambda c: c["id"])
def test_a_fhir_claim_decides_as_the_json_claim_does(claim, library):
    resource = claim_to_fhir(claim, fact_types(library))
    Claim.model_validate(resource)
    assert FhirClaims(library).decide(resource) == library.decide(claim)
    # The same claim as a Bundle: Claim, Patient, Coverage and QuestionnaireResponse as entries.
    contained = {r["id"]: r for r in resource["contained"]}
    claim_only = {k: v for k, v in resource.items() if k != "contained"}
    claim_only["patient"] = {"reference": "Patient/patient"}
    claim_only["insurance"] = [{"sequence": 1, "focal": True, "coverage": {"reference": "urn:uuid:coverage-1"}}]
    if "supportingInfo" in claim_only:
        claim_only["supportingInfo"][0]["valueReference"] = {"reference": "QuestionnaireResponse/facts"}
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": claim_only}]
        + [{"fullUrl": "urn:uuid:coverage-1", "resource": contained["coverage"]}]
        + [{"resource": r} for key, r in contained.items() if key != "coverage"],
    }
    assert FhirClaims(library).decide(bundle) == library.decide(claim)


def test_eval_reads_fhir_claims_and_writes_claim_responses(tmp_path, library):
    claims = [json.loads(line) for line in (CONTRACT / "claims.jsonl").read_text().splitlines()]
    fhir_file = tmp_path / "claims.jsonl"
    fhir_file.write_text("".join(json.dumps(claim_to_fhir(c, fact_types(library))) + "\n" for c in claims))

    def run(*args) -> bytes:
        done = subprocess.run(
            [sys.executable, "-m", "medpol.cli", "eval", "-q", *map(str, args)], capture_output=True, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run(POLICIES, fhir_file) == run(POLICIES, CONTRACT / "claims.jsonl")
    responses = [json.loads(line) for line in run(PUMP, fhir_file, "--output-format", "fhir").splitlines()]
    assert len(responses) == len(claims)
    decisions = [json.loads(line) for line in run(PUMP, CONTRACT / "claims.jsonl").splitlines()]
    for response, decision in zip(responses, decisions, strict=True):
        ClaimResponse.model_validate(response)
        assert response["request"]["identifier"]["value"] == decision["claim"]
        assert [i["itemSequence"] for i in response["item"]] == [line["seq"] for line in decision["lines"]]
    # The claims file converts with `medpol fhir claim`, as the test above does it.
    out = tmp_path / "converted.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "medpol.cli",
            "fhir",
            "claim",
            str(POLICIES),
            str(CONTRACT / "claims.jsonl"),
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
    )
    assert out.read_text() == fhir_file.read_text().replace(", ", ",").replace(": ", ":")


def _carc(response: dict) -> dict[int, str | None]:
    out = {}
    for item in response.get("item", ()):
        reason = item["adjudication"][0].get("reason")
        out[item["itemSequence"]] = reason["coding"][0]["code"] if reason else None
        if reason:
            assert reason["coding"][0]["system"] == CARC
    return out


def test_claim_responses_carry_carc_codes():
    pump = load_policy(PUMP)
    claims = {c["id"]: c for c in contract_examples()}
    pending = pump.decide(claims["ex-blinatumomab-missing-fact"])
    response = claim_response(pending, {"member": "M-1"})
    ClaimResponse.model_validate(response)
    assert response["outcome"] == "partial"
    assert "16" in _carc(response).values()
    notes = {n["number"]: n["text"] for n in response["processNote"]}
    pending_items = [i for i in response["item"] if i["adjudication"][0]["category"]["coding"][0]["code"] == "pending"]
    assert any("needs information" in notes[n] for i in pending_items for n in i["noteNumber"])

    denied = pump.decide(claims["ex-blinatumomab-before-effective-date"])
    response = claim_response(denied)
    ClaimResponse.model_validate(response)
    assert set(_carc(response).values()) == {"50"}
    assert any("Blinatumomab" in n["text"] for n in response["processNote"])

    refer = pump.decide(claims["ex-medicare-member"])
    assert set(_carc(claim_response(refer)).values()) == {"109"}

    base = claims["ex-blinatumomab-after-effective-date"]
    not_covered = {**base, "lines": [{"seq": 1, "hcpcs": "A4245", "service_date": "2026-02-10"}]}
    decision = pump.decide(not_covered)
    assert decision["lines"][0]["category"] == "not_covered"
    assert _carc(claim_response(decision)) == {1: "96"}

    covered = claim_response(pump.decide(base))
    assert set(_carc(covered).values()) == {None} and covered["outcome"] == "complete"

    error = claim_response(pump.decide({"id": "broken"}))
    ClaimResponse.model_validate(error)
    assert error["outcome"] == "error" and error["error"][0]["code"]["text"]


def test_an_answer_of_the_wrong_type_is_an_error_naming_the_fact(library):
    claim = contract_examples()[0]
    response = questionnaire_response(claim["facts"], fact_types(library))
    for item in response["item"]:
        if item["linkId"] == "cd19_positive":
            item["answer"] = [{"valueString": "yes"}]
    decision = FhirClaims(library).decide({**claim, "facts": response})
    assert decision["outcome"] == "error"
    assert decision["field"] == "facts.cd19_positive"
    assert "asks for valueBoolean" in decision["message"]


def test_a_claim_that_is_not_valid_fhir_is_an_error(library):
    decision = FhirClaims(library).decide({"resourceType": "Claim", "id": "c-1", "item": [{"sequence": "x"}]})
    assert decision["outcome"] == "error" and decision["claim"] == "c-1"
    assert "not a valid FHIR Claim" in decision["message"]
    decision = FhirClaims(load_policy(PUMP)).decide({"resourceType": "Patient"})
    assert decision["outcome"] == "error" and decision["policy"] == "external-infusion-pump"


def test_a_sequence_written_as_a_string_of_digits_decides_as_the_number(library):
    # fhir.resources takes "2" for a positiveInt; the claim is decided as if it were 2.
    claim = contract_examples()[0]
    resource = claim_to_fhir(claim, fact_types(library))
    for entry in (*resource["diagnosis"], *resource["item"], *resource["insurance"]):
        entry["sequence"] = str(entry["sequence"])
    assert FhirClaims(library).decide(resource) == library.decide(claim)
    # Ordered as numbers: "10" after "9".
    resource["diagnosis"] = [
        {"sequence": "10", "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM, "code": "Z00.00"}]}},
        {"sequence": "9", "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM, "code": "C91.00"}]}},
    ]
    assert claim_from_fhir(resource, fact_types(library))["diagnoses"] == ["C91.00", "Z00.00"]


def test_a_line_paid_in_part_carries_the_units_allowed(library):
    claim = json.loads((CONTRACT / "glucose-monitors" / "worked-example.jsonl").read_text().splitlines()[0])
    decision = library.decide(claim)
    response = claim_response(decision)
    ClaimResponse.model_validate(response)
    first = response["item"][0]["adjudication"][0]
    assert first["category"]["text"] == "covered in part"
    assert first["reason"]["coding"][0]["code"] == "151"
    assert first["value"] == decision["lines"][0]["allowed_units"] == 2
    notes = {n["number"]: n["text"] for n in response["processNote"]}
    assert any("policy glucose-monitors revision 70" in notes[n] for n in response["item"][0]["noteNumber"])
