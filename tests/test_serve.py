"""`medpol serve`: a real server process on a free loopback port, answered as `medpol eval` answers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CONTRACT = ROOT / "tests" / "fixtures" / "contract"
CLAIMS = CONTRACT / "claims.jsonl"
MIXED = ROOT / "tests" / "fixtures" / "library" / "mixed-claim.json"
PUMP = "external-infusion-pump"
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen, url: str, log: Path):
        self.process = process
        self.url = url
        self.log = log
        self.client = httpx.Client(base_url=url, timeout=60)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@contextlib.contextmanager
def serving(tmp_path: Path, *paths, extra=()):
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "medpol.cli", "serve", *map(str, paths), "--port", str(port), *extra],
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=ROOT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"medpol serve exited {process.returncode}: {log.read_text()}")
            try:
                if server.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("medpol serve did not start in time")
            time.sleep(0.1)
        yield server
    finally:
        server.client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert "Traceback" not in log.read_text()


def eval_output(*args) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "eval", "-q", *map(str, args)], capture_output=True, cwd=ROOT, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("serve"), "policies/") as server:
        yield server


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with serving(
        tmp_path_factory.mktemp("limited"), "policies/", extra=("--max-body", "20000", "--max-batch", "3")
    ) as server:
        yield server


def test_a_batch_is_decided_as_eval_decides_it(library):
    response = library.client.post("/v1/decisions", content=CLAIMS.read_bytes(), headers=NDJSON)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    expected = eval_output("policies/", CLAIMS)
    assert response.content == expected
    assert len(response.content.splitlines()) == len(CLAIMS.read_bytes().splitlines())


def test_each_claim_alone_is_decided_as_eval_decides_it(library):
    expected = eval_output("policies/", CLAIMS).splitlines()
    for raw, want in zip(CLAIMS.read_bytes().splitlines(), expected, strict=True):
        response = library.client.post("/v1/decisions", content=raw, headers=JSON)
        assert response.status_code == 200
        assert response.content.rstrip(b"\n") == want
    response = library.client.post("/v1/decisions", content=MIXED.read_bytes(), headers=JSON)
    assert response.content.rstrip(b"\n") == eval_output("policies/", MIXED).rstrip(b"\n")


def test_as_of_and_why_not_are_evals(library):
    claim = CONTRACT / "blinatumomab-pending-claim.json"
    expected = eval_output("policies/", claim, "--as-of", "2026-01-20", "--why-not")
    response = library.client.post(
        "/v1/decisions", params={"as_of": "2026-01-20", "why_not": "true"}, content=claim.read_bytes(), headers=JSON
    )
    assert response.content.rstrip(b"\n") == expected.rstrip(b"\n")
    assert "why_not" in response.text


def test_a_malformed_claim_in_a_batch_gets_its_error_and_the_batch_goes_on(library):
    lines = CLAIMS.read_bytes().splitlines()
    body = b"\n".join([lines[0], b"{not json", b'{"id": "no-lines"}', lines[1]]) + b"\n"
    response = library.client.post("/v1/decisions", content=body, headers=NDJSON)
    assert response.status_code == 200
    decisions = [json.loads(line) for line in response.content.splitlines()]
    assert len(decisions) == 4
    assert decisions[1]["outcome"] == "error" and "request:2: not valid JSON" in decisions[1]["message"]
    assert decisions[2]["outcome"] == "error" and decisions[2]["claim"] == "no-lines"
    assert decisions[0]["lines"] and decisions[3]["lines"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", JSON, 400, "not valid JSON"),
        (b"", JSON, 400, "no body"),
        (b"\n\n", NDJSON, 400, "no claims"),
        (b"id,lines", {"content-type": "text/csv"}, 415, "is not read here"),
        (b"{}", {}, 415, "is not read here"),
    ],
)
def test_bad_requests_get_a_json_error(library, body, headers, status, words):
    response = library.client.post("/v1/decisions", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["status"] == status
    assert words in response.json()["error"]
    assert "Traceback" not in response.text


def test_bad_parameters_and_endpoints(library):
    claim = CLAIMS.read_bytes().splitlines()[0]
    response = library.client.post("/v1/decisions", params={"as_of": "2026-02-30"}, content=claim, headers=JSON)
    assert response.status_code == 400 and "February 2026 has 28 days" in response.json()["error"]
    response = library.client.post("/v1/decisions", params={"why_not": "perhaps"}, content=claim, headers=JSON)
    assert response.status_code == 400
    assert library.client.get("/v1/decisions").status_code == 405
    assert library.client.get("/v1/decisions").json()["status"] == 405
    assert library.client.get("/nowhere").json() == {"error": "no such endpoint: /nowhere", "status": 404}


def test_limits_are_413(limited):
    lines = CLAIMS.read_bytes().splitlines()
    too_many = b"\n".join(lines[:4]) + b"\n"
    response = limited.client.post("/v1/decisions", content=too_many, headers=NDJSON)
    assert response.status_code == 413
    assert response.json()["error"] == "a batch holds at most 3 claims; this one holds 4"
    big = b'{"id": "x", "padding": "' + b"a" * 30_000 + b'"}'
    response = limited.client.post("/v1/decisions", content=big, headers=JSON)
    assert response.status_code == 413 and "at most 20,000" in response.json()["error"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(10):
            yield b" " * 5000

    response = limited.client.post("/v1/decisions", content=chunks(), headers=JSON)
    assert response.status_code == 413
    response = limited.client.post("/v1/decisions", content=b"\n".join(lines[:3]) + b"\n", headers=NDJSON)
    assert response.status_code == 200 and len(response.content.splitlines()) == 3


def test_policies_health_and_openapi(library):
    listed = library.client.get("/v1/policies").json()
    ids = [p["id"] for p in listed["policies"]]
    assert PUMP in ids and "glucose-monitors" in ids
    pump = next(p for p in listed["policies"] if p["id"] == PUMP)
    assert pump["revision"] == "22" and pump["effective"] == "2026-01-25"
    one = library.client.get(f"/v1/policies/{PUMP}").json()
    assert one["revision"] == "22" and "J9039" in one["codes"]
    assert any(f["name"] == "cd19_positive" for f in one["facts"])
    assert library.client.get("/v1/policies/nothing").status_code == 404
    assert library.client.get("/healthz").json() == {"status": "ok"}
    ready = library.client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["policies"][PUMP] == "22"
    document = library.client.get("/openapi.json").json()
    from medpol.service.schema import schemas

    assert document["components"]["schemas"] == json.loads(json.dumps(schemas()))
    assert "/v1/decisions" in document["paths"]


def test_requests_are_logged_as_json_lines(library):
    claim = json.loads(CLAIMS.read_bytes().splitlines()[0])
    library.client.post("/v1/decisions", json=claim)
    time.sleep(0.2)
    records = [r for r in library.records() if r.get("claim") == claim["id"]]
    assert records, library.log.read_text()
    record = records[-1]
    assert record["policies"] == {PUMP: "22"}
    assert record["outcomes"] == {"covered": 3}
    assert record["status"] == 200 and record["ms"] > 0


def _copy_pump(folder: Path) -> Path:
    for name in (f"{PUMP}.policy", f"{PUMP}-rev22.txt"):
        shutil.copy(POLICIES / name, folder / name)
    return folder / f"{PUMP}.policy"


def _write(path: Path, text: str) -> None:
    """As an editor saves: the whole new text in place of the old, at once."""
    tmp = path.with_suffix(".saving")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def test_a_policy_edited_under_load_loses_no_request(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    policy = _copy_pump(folder)
    original = policy.read_text(encoding="utf-8")
    body = CLAIMS.read_bytes()
    with serving(tmp_path, policy, extra=("--reload-interval", "0.1")) as server:
        expected = {"22": eval_output(policy, CLAIMS)}
        results: list = []
        stop = threading.Event()

        def client():
            # Until told to stop, after the edit has been served for a while: a bound on the
            # number of requests would let fast clients finish before the edit is picked up.
            give_up = time.monotonic() + 60
            with httpx.Client(base_url=server.url, timeout=60) as c:
                while not stop.is_set() and time.monotonic() < give_up:
                    response = c.post("/v1/decisions", content=body, headers=NDJSON)
                    results.append((response.status_code, response.content))

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        _write(policy, original.replace("  revision 22 dated", "  revision 23 dated", 1))
        deadline = time.monotonic() + 30
        while server.client.get("/readyz").json()["policies"][PUMP] != "23":
            assert time.monotonic() < deadline, "the edit was not picked up"
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        expected["23"] = expected["22"].replace(b'"revision":"22"', b'"revision":"23"')
        seen = set()
        assert results
        for status, content in results:
            assert status == 200
            decisions = [json.loads(line) for line in content.splitlines()]
            revisions = {d["revision"] for d in decisions}
            assert len(decisions) == 8 and len(revisions) == 1, revisions  # complete, from one revision
            revision = revisions.pop()
            assert content == expected[revision]
            seen.add(revision)
        assert seen == {"22", "23"}


def test_a_broken_edit_keeps_the_last_good_policy(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    policy = _copy_pump(folder)
    original = policy.read_text(encoding="utf-8")
    claim = CLAIMS.read_bytes().splitlines()[0]
    with serving(tmp_path, folder, extra=("--reload-interval", "0.1")) as server:
        before = server.client.post("/v1/decisions", content=claim, headers=JSON).content
        _write(policy, original.replace("    cover blinatumomab when", "    cover blinatumomab wen", 1))
        deadline = time.monotonic() + 30
        while (ready := server.client.get("/readyz").json())["status"] != "degraded":
            assert time.monotonic() < deadline, "the broken edit was not noticed"
            time.sleep(0.05)
        assert f"{PUMP}.policy" in ready["problem"] and "error" in ready["problem"]
        assert ready["policies"] == {PUMP: "22"}
        assert server.client.post("/v1/decisions", content=claim, headers=JSON).content == before
        assert any(r.get("event") == "reload failed" for r in server.records())
        _write(policy, original.replace("  revision 22 dated", "  revision 23 dated", 1))
        while (ready := server.client.get("/readyz").json())["status"] != "ready":
            assert time.monotonic() < deadline, "the fixed edit was not picked up"
            time.sleep(0.05)
        assert ready["policies"] == {PUMP: "23"} and "problem" not in ready


def test_serve_without_the_extra_names_it():
    hide = (
        "import sys, importlib.abc\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('starlette', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n in ('starlette', 'uvicorn') else _find(n, *a)\n"
        "from medpol.cli.main import main\n"
        "main(['serve', 'policies/'])\n"
    )
    done = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2
    assert "pip install 'medpol[serve]'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_fhir_claim_is_answered_with_a_claim_response(library):
    pytest.importorskip("fhir.resources")
    from fhir.resources.R4B.claimresponse import ClaimResponse

    from medpol.engine.library import load_library
    from medpol.service.fhir import claim_to_fhir, fact_types

    claim = json.loads(CLAIMS.read_bytes().splitlines()[1])
    resource = claim_to_fhir(claim, fact_types(load_library([POLICIES])))
    response = library.client.post(
        "/v1/decisions",
        content=json.dumps(resource),
        headers={"content-type": "application/fhir+json", "accept": "application/fhir+json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    ClaimResponse.model_validate(answer)
    reasons = {a["reason"]["coding"][0]["code"] for item in answer["item"] for a in item["adjudication"]}
    assert reasons == {"50"}
    # The same claim as plain JSON, and the FHIR Claim answered as a decision, agree.
    plain = library.client.post("/v1/decisions", json=claim).content
    as_fhir = library.client.post(
        "/v1/decisions", content=json.dumps(resource), headers={"content-type": "application/fhir+json"}
    ).content
    assert plain == as_fhir
    questionnaire = library.client.get(f"/v1/policies/{PUMP}/questionnaire").json()
    assert questionnaire["resourceType"] == "Questionnaire" and questionnaire["version"] == "22"


def test_known_at_is_evals(library):
    claim = CONTRACT / "blinatumomab-claim.json"
    expected = eval_output("policies/", claim, "--known-at", "2025-12-12")
    response = library.client.post(
        "/v1/decisions", params={"known_at": "2025-12-12"}, content=claim.read_bytes(), headers=JSON
    )
    assert response.status_code == 200
    assert response.content.rstrip(b"\n") == expected.rstrip(b"\n")
    assert '"revision":"21"' in response.text


def test_the_generated_benchmark_claims_are_decided_as_eval_decides_them(library, tmp_path):
    from benchmarks.eval import generate

    claims = tmp_path / "generated.jsonl"
    claims.write_bytes(b"".join(json.dumps(c).encode() + b"\n" for c in generate(300, 11)))
    response = library.client.post("/v1/decisions", content=claims.read_bytes(), headers=NDJSON)
    assert response.status_code == 200
    assert response.content == eval_output("policies/", claims)


def test_claims_the_contract_decoder_reads_are_decoded_in_one_pass_as_eval_does(monkeypatch):
    """The service decodes a claim as `medpol eval` does: in one pass where the contract's
    decoder reads it, and in detail otherwise (FHIR out, why-not, a claim with a mistake)."""
    import asyncio

    from medpol.batch import local
    from medpol.service import serve

    read: list[bytes] = []

    def counting(raw):
        if raw.strip():  # a blank line between claims is tried too, and holds no claim
            read.append(raw)
        return decode_claim(raw)

    decode_claim = serve.decode_claim
    monkeypatch.setattr(serve, "decode_claim", counting)
    monkeypatch.setattr(local, "decode_claim", counting)
    service = serve.Service([str(POLICIES)], reload_interval=0, log=lambda record: None)
    expected = eval_output("policies/", CLAIMS)
    lines = CLAIMS.read_bytes().splitlines()
    broken = json.loads(lines[0])
    broken["lines"][0]["units"] = "two"

    async def requests():
        transport = httpx.ASGITransport(app=service.app())
        async with httpx.AsyncClient(transport=transport, base_url="http://medpol") as client:
            response = await client.post("/v1/decisions", content=CLAIMS.read_bytes(), headers=NDJSON)
            assert response.content == expected
            assert len(read) == len(lines)
            read.clear()
            for raw, want in zip(lines, expected.splitlines(), strict=True):
                response = await client.post("/v1/decisions", content=raw, headers=JSON)
                assert response.content.rstrip(b"\n") == want
            assert len(read) == len(lines)
            read.clear()
            # One the decoder does not take is read in detail, which names the field.
            response = await client.post("/v1/decisions", content=json.dumps(broken), headers=JSON)
            assert read and decode_claim(read[0]) is None
            assert "lines[0].units" in response.text
            read.clear()
            await client.post("/v1/decisions", params={"why_not": "true"}, content=lines[0], headers=JSON)
            await client.post("/v1/decisions", params={"format": "fhir"}, content=CLAIMS.read_bytes(), headers=NDJSON)
            assert read == []

    asyncio.run(requests())
