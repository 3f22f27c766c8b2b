"""`medpol serve` given bad and unusual requests: each is answered with a decision naming what is
wrong, or a 4xx with a JSON body, never a 500; and nothing the caller sent is dropped unsaid."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")

from medpol.service import serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"
LINES = CLAIMS.read_bytes().splitlines()
PUMP = "external-infusion-pump"
JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}
FHIR = {"content-type": "application/fhir+json"}
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def service():
    return serve.Service([str(ROOT / "policies")], reload_interval=0, log=lambda record: None)


@pytest.fixture(scope="module")
def call(service):
    """A request to the app in process; an exception it lets out fails the test."""
    app = service.app()

    def call(method: str, path: str, **kwargs) -> httpx.Response:
        async def go():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://medpol") as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(go())

    return call


def decisions(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.content.splitlines()]


def refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    return body["error"]


def test_a_body_that_is_a_json_string_is_a_claim_in_error_not_unreadable_json(call):
    for headers in (JSON, FHIR):
        (decision,) = decisions(call("POST", "/v1/decisions", content=b'"x"', headers=headers))
        assert decision["outcome"] == "error" and decision["field"] == "claim"
        assert decision["message"] == "claim: expected an object, got string `x`"
    batch = decisions(call("POST", "/v1/decisions", content=b'"x"\n' + LINES[0] + b"\n", headers=NDJSON))
    assert batch[0]["message"] == "claim: expected an object, got string `x`"
    assert batch[1]["claim"] and batch[1]["lines"]


def test_a_byte_order_mark_is_skipped_as_eval_skips_it(call):
    plain = call("POST", "/v1/decisions", content=LINES[0], headers=JSON).content
    assert call("POST", "/v1/decisions", content=BOM + LINES[0], headers=JSON).content == plain
    body = b"\n".join(LINES[:2]) + b"\n"
    batch = call("POST", "/v1/decisions", content=body, headers=NDJSON).content
    assert call("POST", "/v1/decisions", content=BOM + body, headers=NDJSON).content == batch


@pytest.mark.parametrize("charset", ["latin-1", "ISO-8859-1", "utf-16"])
def test_a_charset_other_than_utf8_is_refused(call, charset):
    for kind in ("application/json", "application/x-ndjson"):
        headers = {"content-type": f"{kind}; charset={charset}"}
        error = refused(call("POST", "/v1/decisions", content=LINES[0], headers=headers), 415)
        assert f"charset `{charset.lower()}`" in error and "UTF-8" in error


def test_utf8_declared_in_any_spelling_is_read(call):
    plain = call("POST", "/v1/decisions", content=LINES[0], headers=JSON).content
    for charset in ("utf-8", "UTF-8", '"utf-8"', "us-ascii"):
        headers = {"content-type": f"application/json; charset={charset}"}
        assert call("POST", "/v1/decisions", content=LINES[0], headers=headers).content == plain


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("as-of=2026-01-01", "`as-of` is not a parameter of /v1/decisions (did you mean `as_of`?)"),
        ("knownAt=2026-01-01", "did you mean `known_at`?"),
        ("foo=bar", "`foo` is not a parameter of /v1/decisions; it takes `as_of`, `known_at`, `why_not`, `format`"),
        ("as_of=2026-01-01&as_of=2027-01-01", "as_of: given more than once"),
        ("why_not=true&why_not=false", "why_not: given more than once"),
        ("format=xml", "format: `xml` is not written here"),
    ],
)
def test_an_unknown_repeated_or_unwritable_parameter_is_refused(call, query, words):
    assert words in refused(call("POST", f"/v1/decisions?{query}", content=LINES[0], headers=JSON), 400)


def test_the_questionnaire_refuses_an_unknown_parameter(call):
    pytest.importorskip("fhir.resources")
    error = refused(call("GET", f"/v1/policies/{PUMP}/questionnaire?bsae=urn:x"), 400)
    assert "did you mean `base`?" in error
    response = call("GET", f"/v1/policies/{PUMP}/questionnaire?base=https://example.org/fhir")
    assert response.status_code == 200
    assert response.json()["url"] == f"https://example.org/fhir/Questionnaire/{PUMP}"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2026-W10-1", "`2026-W10-1` is not a date (expected YYYY-MM-DD)"),
        ("", "an empty value is not a date (expected YYYY-MM-DD)"),
        ("20260101", "`20260101` is not a date (expected YYYY-MM-DD)"),
        ("2026-02-30", "`2026-02-30` is not a date: February 2026 has 28 days"),
    ],
)
@pytest.mark.parametrize("name", ["as_of", "known_at"])
def test_dates_are_read_as_eval_reads_them(call, name, value, words):
    response = call("POST", "/v1/decisions", params={name: value}, content=LINES[0], headers=JSON)
    assert refused(response, 400) == f"{name}: {words}"


def _deep_extension(levels: int) -> dict:
    extension: dict = {"url": "urn:x", "valueString": "x"}
    for _ in range(levels):
        extension = {"url": "urn:x", "extension": [extension]}
    return extension


def test_a_fhir_resource_nested_too_deeply_is_an_error_decision(call, service):
    pytest.importorskip("fhir.resources")
    from medpol.service.fhir import claim_to_fhir, fact_types

    resource = claim_to_fhir(json.loads(LINES[1]), fact_types(service.policies.current.compiled))
    resource["extension"] = [_deep_extension(400)]  # within JSON's depth limit, past the validator's stack
    for headers in (FHIR, {**FHIR, "accept": "application/fhir+json"}):
        response = call("POST", "/v1/decisions", content=json.dumps(resource), headers=headers)
        assert response.status_code == 200, response.text
        assert "nested too deeply" in response.text
    # Facts as a QuestionnaireResponse, in a batch: that claim is in error, the next decided.
    item: dict = {"linkId": "cd19_positive", "answer": [{"valueBoolean": True}]}
    for level in range(300):
        item = {"linkId": f"group{level}", "item": [item]}
    claim = json.loads(LINES[0])
    claim["facts"] = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": [item]}
    body = json.dumps(claim).encode() + b"\n" + LINES[0] + b"\n"
    first, second = decisions(call("POST", "/v1/decisions", content=body, headers=NDJSON))
    assert first["outcome"] == "error" and first["field"] == "facts"
    assert first["message"] == "facts: not a valid FHIR QuestionnaireResponse: nested too deeply to be read"
    assert second["lines"] and all(line["outcome"] != "error" for line in second["lines"])


def test_json_nested_past_any_limit_is_refused_or_an_error_at_its_line(call):
    deep = b"[" * 100_000
    assert "not valid JSON" in refused(call("POST", "/v1/decisions", content=deep, headers=JSON), 400)
    body = LINES[0] + b"\n" + deep + b"\nnot json\n[1]\n" + LINES[1]  # the last line without its newline
    found = decisions(call("POST", "/v1/decisions", content=body, headers=NDJSON))
    assert len(found) == 5
    assert found[1]["message"].startswith("request:2: not valid JSON")
    assert found[2]["message"].startswith("request:3: not valid JSON")
    assert found[3]["message"] == "claim: expected an object, got a list"
    assert found[0]["lines"] and found[4]["lines"]
