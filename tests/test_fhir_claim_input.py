"""`medpol fhir claim` with claims it cannot write: each is told by its line, its id and the
field at fault, in the claims contract's words, while every other claim is still written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

pytest.importorskip("fhir.resources")

from click.testing import CliRunner  # noqa: E402

from medpol.api import load_policy  # noqa: E402
from medpol.cli.main import main  # noqa: E402
from medpol.service.fhir import FhirError, claim_to_fhir, fact_types  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "tests" / "fixtures" / "contract"
PUMP = ROOT / "policies" / "external-infusion-pump.policy"
EXAMPLES = [json.loads(line) for line in (CONTRACT / "claims.jsonl").read_text().splitlines() if line.strip()]
FIRST, SECOND = EXAMPLES[0], EXAMPLES[1]


def changed(change, claim: dict = FIRST) -> dict:
    out = copy.deepcopy(claim)
    change(out)
    return out


def run(tmp_path: Path, *lines: object, name: str = "claims.jsonl"):
    """`medpol fhir claim` on a file of these lines (a str as it is, anything else as JSON)."""
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    # catch_exceptions=False: a traceback fails the test with the exception itself.
    result = CliRunner().invoke(main, ["fhir", "claim", str(PUMP), str(path)], catch_exceptions=False)
    written = [json.loads(line) for line in result.stdout.splitlines()]
    return result, written, path


def errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


MALFORMED = [
    pytest.param([], None, "claim: expected an object, got a list", id="a-list"),
    pytest.param('"x"', None, "claim: expected an object, got string `x`", id="a-string"),
    pytest.param(3, None, "claim: expected an object, got number `3`", id="a-number"),
    pytest.param(None, None, "claim: expected an object, got null", id="null"),
    pytest.param(
        changed(lambda c: c.update(lines="x")), FIRST["id"], "lines: expected a list, got string `x`", id="lines-string"
    ),
    pytest.param(
        changed(lambda c: c.update(lines=[1])), FIRST["id"], "lines[0]: expected an object, got number `1`", id="line-1"
    ),
    pytest.param(
        changed(lambda c: c.update(lines=[None])), FIRST["id"], "lines[0]: expected an object, got null", id="line-null"
    ),
    pytest.param(
        changed(lambda c: c.update(facts=[])), FIRST["id"], "facts: expected an object, got a list", id="facts-list"
    ),
    pytest.param(changed(lambda c: c.pop("member")), FIRST["id"], "member: required field is missing", id="no-member"),
    pytest.param(
        changed(lambda c: c["lines"][1].update(service_date="2026-02-30")),
        FIRST["id"],
        "lines[1].service_date: `2026-02-30` is not a date: February 2026 has 28 days",
        id="line-bad-date",
    ),
    pytest.param(
        changed(lambda c: c["member"].update(line_of_business="vip")),
        FIRST["id"],
        "member.line_of_business: `vip` is not a line of business",
        id="bad-line-of-business",
    ),
]


@pytest.mark.parametrize(("bad", "claim_id", "problem"), MALFORMED)
def test_a_malformed_claim_is_named_and_the_others_are_written(tmp_path, bad, claim_id, problem):
    result, written, path = run(tmp_path, FIRST, bad, SECOND)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert [r["id"] for r in written] == [FIRST["id"], SECOND["id"]]
    assert all(r["resourceType"] == "Claim" for r in written)
    told, summary = errors(result)
    named = f"claim `{claim_id}`" if claim_id else "the claim"
    assert told.startswith(f"error: {path}:2: {named} cannot be written as a FHIR Claim: {problem}")
    assert summary == f"error: {path}: 1 of 3 claims could not be written as a FHIR Claim; 2 were written"


def test_a_line_that_is_not_json_does_not_stop_the_file(tmp_path):
    result, written, path = run(tmp_path, FIRST, "{not json", SECOND)
    assert result.exit_code == 2
    assert [r["id"] for r in written] == [FIRST["id"], SECOND["id"]]
    told, summary = errors(result)
    assert told.startswith(f"error: {path}:2: not valid JSON: ")
    assert summary.startswith(f"error: {path}: 1 of 3 claims could not be written")


def test_a_claim_is_named_by_its_line_in_the_file_blank_lines_counted(tmp_path):
    result, written, path = run(tmp_path, FIRST, "", "   ", changed(lambda c: c.pop("diagnoses"), SECOND))
    assert result.exit_code == 2
    assert [r["id"] for r in written] == [FIRST["id"]]
    told, summary = errors(result)
    assert told == (
        f"error: {path}:4: claim `{SECOND['id']}` cannot be written as a FHIR Claim: "
        "diagnoses: required field is missing"
    )
    assert summary == f"error: {path}: 1 of 2 claims could not be written as a FHIR Claim; 1 was written"


def test_every_bad_claim_is_told_and_counted(tmp_path):
    result, written, path = run(tmp_path, [], FIRST, "null", "{", SECOND, {"id": "c-9"})
    assert result.exit_code == 2
    assert [r["id"] for r in written] == [FIRST["id"], SECOND["id"]]
    told = errors(result)
    assert [line.split(": ")[1] for line in told[:-1]] == [f"{path}:{n}" for n in (1, 3, 4, 6)]
    assert "claim `c-9` cannot be written as a FHIR Claim: member: required field is missing" in told[3]
    assert told[-1] == f"error: {path}: 4 of 6 claims could not be written as FHIR Claims; 2 were written"


def test_json_lines_stay_json_lines_when_one_claim_is_left(tmp_path):
    result, _written, _path = run(tmp_path, FIRST, [])
    assert result.exit_code == 2
    # One Claim on one line, as each would be in a file of several.
    assert len(result.stdout.splitlines()) == 1
    assert json.loads(result.stdout)["id"] == FIRST["id"]


def test_a_json_file_that_is_not_json_is_told(tmp_path):
    result, written, path = run(tmp_path, '{"id": "c-1",', name="claim.json")
    assert result.exit_code == 2
    assert written == []
    told, summary = errors(result)
    assert told.startswith(f"error: {path}: not valid JSON: ")
    assert summary == f"error: {path}: 1 of 1 claim could not be written as a FHIR Claim; 0 were written"


def test_a_field_the_contract_does_not_know_is_written_with_a_warning(tmp_path):
    given = changed(lambda c: (c.update(note="call back"), c["lines"][0].update(colour="red")))
    result, written, path = run(tmp_path, given, SECOND)
    assert result.exit_code == 0
    assert [r["id"] for r in written] == [FIRST["id"], SECOND["id"]]
    assert result.stderr.splitlines() == [
        f"warning: {path}:1: claim `{FIRST['id']}`: `note` is not a field of a claim and was not written",
        f"warning: {path}:1: claim `{FIRST['id']}`: `lines[0].colour` is not a field of a claim and was not written",
    ]


def test_a_supplier_not_licensed_in_its_state_is_not_dropped(tmp_path):
    not_licensed = changed(lambda c: c.update(supplier={"licensed_in_state": False}))
    licensed = changed(lambda c: c.update(supplier={"licensed_in_state": True}), SECOND)
    result, written, path = run(tmp_path, not_licensed, licensed)
    assert result.exit_code == 2
    # Licensed is what a Claim without a supplier is read as: nothing is lost writing it.
    assert [r["id"] for r in written] == [SECOND["id"]]
    told, _summary = errors(result)
    assert told == (
        f"error: {path}:1: claim `{FIRST['id']}` cannot be written as a FHIR Claim: supplier.licensed_in_state: "
        "a supplier not licensed in its state has no place in a FHIR Claim"
    )


def test_an_id_fhir_cannot_take_names_the_id(tmp_path):
    result, written, path = run(tmp_path, changed(lambda c: c.update(id="claim_1")), SECOND)
    assert result.exit_code == 2
    assert [r["id"] for r in written] == [SECOND["id"]]
    told, _summary = errors(result)
    assert told.startswith(f"error: {path}:1: claim `claim_1` cannot be written as a FHIR Claim: id: `claim_1` ")


def test_line_facts_are_named_by_the_lines_place():
    given = changed(lambda c: c["lines"][1].update(facts={"infusion_hours": 24}))
    given["lines"][1]["seq"] = 7
    with pytest.raises(FhirError) as raised:
        claim_to_fhir(given, fact_types(load_policy(PUMP)))
    assert raised.value.field == "lines[1].facts"


@pytest.mark.parametrize("bad", [[], "x", 3, None, {"id": "c-1"}])
def test_claim_to_fhir_refuses_what_the_contract_refuses(bad):
    with pytest.raises(FhirError) as raised:
        claim_to_fhir(bad, {})
    assert raised.value.field in ("claim", "member")


def test_good_claims_are_written_as_before(tmp_path):
    result, written, _path = run(tmp_path, *EXAMPLES)
    assert result.exit_code == 0
    assert result.stderr == ""
    types = fact_types(load_policy(PUMP))
    assert written == [claim_to_fhir(claim, types) for claim in EXAMPLES]
