"""`medpol serve`: the decision service, for a claims system or an EHR to call over HTTP.

    medpol serve policies/ --port 8181

`POST /v1/decisions` decides one claim (`application/json`) or a batch (`application/x-ndjson`,
answered with JSON Lines in input order) exactly as `medpol eval` does: the same reading, the
same engine, the same encoding (medpol.batch.local), so a decision is byte for byte the one eval
writes. A FHIR Claim (`application/fhir+json`) is read as medpol.service.fhir maps it, and answered
with a ClaimResponse when the caller accepts `application/fhir+json`.

The policies are compiled once at start. Every `reload_interval` seconds a background task
compares the files' modification times and sizes; when one changed, the policies are
compiled again in a thread and swapped in with one assignment. A request takes the policies
it is decided by once, when it starts, so each request (each batch) is decided under one
revision whatever is swapped meanwhile. A change that no longer compiles leaves the last good
policies serving: its diagnostics go to the log and to `/readyz` (status `degraded`).

Decisions are made on the event loop's thread, one at a time, as `medpol eval -j 1` makes
them: a request of one claim is decided at once (a handoff to another thread would cost more
than the decision), a batch a slice of claims at a time, other requests answered between
slices. Compiling a changed policy runs on a thread of its own.

Each request is logged as one JSON line on stderr: method, path, status, claim id (or the
number of claims), the policies and revisions that decided, outcome counts, latency.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import concurrent.futures
import datetime
import difflib
import gc
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from medpol.batch import local as batch
from medpol.dsl.diagnostics import PolicyError
from medpol.engine.contract import decode_claim

DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes
DEFAULT_MAX_BATCH = 10_000  # claims
NDJSON = "application/x-ndjson"
FHIR_JSON = "application/fhir+json"
_BATCH_TYPES = {NDJSON, "application/jsonl", "application/x-jsonlines", "application/json-lines"}
_SLICE = 64  # claims decided between two turns of the event loop
_WHY_NOT_SLICE = 4
_TRUE = {"", "1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# JSON is UTF-8 (RFC 8259), of which ASCII is a part: a body declared in another charset
# would be read as what it is not.
_UTF8 = {"utf-8", "utf8", "us-ascii"}
# The query parameters an endpoint takes. Any other is refused rather than ignored: a
# misspelt `as-of` would otherwise decide as of today without a word.
_DECISION_PARAMS = ("as_of", "known_at", "why_not", "format")
_QUESTIONNAIRE_PARAMS = ("base",)


class Problem(Exception):
    """A request the service cannot answer with a decision: a status and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------------ the policies served


class Served:
    """One compiled version of the policies: a policy, or a library of them."""

    def __init__(self, compiled, stamp: tuple, loaded_at: datetime.datetime):
        self.compiled = compiled
        self.stamp = stamp
        self.loaded_at = loaded_at
        self.is_library = hasattr(compiled, "policies")

    @property
    def policies(self) -> list:
        return list(self.compiled.policies.values()) if self.is_library else [self.compiled]

    def revisions(self) -> dict[str, str | None]:
        return {p.id: p.revision for p in self.policies}


def watched_files(paths: list[str]) -> list[Path]:
    """The files a change of which changes the policies: each policy, the source documents
    beside them, and a library's settings."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for pattern in ("*.policy", "*.txt", "library.toml"):
                files.extend(sorted(path.rglob(pattern)))
        else:
            files.append(path)
            files.extend(sorted(path.parent.glob("*.txt")))
    return files


def stamp(paths: list[str]) -> tuple:
    """Each watched file's name, modification time and size: a cheap test of a change."""
    out = []
    for file in watched_files(paths):
        try:
            st = file.stat()
        except OSError:
            continue
        out.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load(paths: list[str], known_at: datetime.date | None = None, warn=None):
    """Compile the policies as `medpol eval` does: one file alone, else a library."""
    from medpol.api import load_policy
    from medpol.engine.library import load_library

    if len(paths) == 1 and not Path(paths[0]).is_dir():
        return load_policy(paths[0], known_at)
    return load_library(paths, known_at, warn=warn)


class Policies:
    """The policies being served, swapped whole when their files change."""

    def __init__(self, paths: list[str], log=None):
        self.paths = [str(p) for p in paths]
        self.log = log or (lambda record: None)
        self.problem: str | None = None  # why the last change did not load
        self.problem_at: datetime.datetime | None = None
        self._known: collections.OrderedDict = collections.OrderedDict()  # known_at -> compiled
        self.current = self._load()

    def _load(self, before: tuple | None = None) -> Served:
        # The stamp is taken before the files are read: a change while compiling is seen next time.
        before = stamp(self.paths) if before is None else before
        compiled = load(self.paths, warn=lambda message: self.log({"event": "warning", "message": message}))
        return Served(compiled, before, _now())

    def changed(self) -> bool:
        return stamp(self.paths) != self.current.stamp

    def reload(self) -> bool:
        """Compile again; swap in when it compiles. Whether the policies served changed."""
        before = stamp(self.paths)
        try:
            fresh = self._load(before)
        except Exception as err:  # noqa: BLE001 - whatever the change, the last good policies keep serving
            if isinstance(err, PolicyError):
                text = err.render()
                errors = sum(1 for d in err.diagnostics if d.severity == "error")
            else:
                text, errors = f"{', '.join(self.paths)}: cannot be loaded: {err}", 1
            if self.problem != text:
                self.log(
                    {
                        "event": "reload failed",
                        "errors": errors,
                        "diagnostics": text,
                        "serving": self.current.revisions(),
                    }
                )
            self.problem, self.problem_at = text, _now()
            # The same files are not tried again until they change again.
            self.current.stamp = before
            return False
        old = self.current.revisions()
        self.current = fresh  # one assignment: a request holds either the old or the new
        self.problem = self.problem_at = None
        self._known.clear()
        self.log({"event": "reloaded", "before": old, "serving": fresh.revisions()})
        return True

    def known_at(self, day: datetime.date):
        """The revisions published by `day` (from git), compiled once and kept for a while."""
        found = self._known.get(day)
        if found is None:
            found = load(self.paths, day, warn=lambda message: self.log({"event": "warning", "message": message}))
            self._known[day] = found
            while len(self._known) > 8:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(day)
        return found


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


# ------------------------------------------------------------------ describing policies


def describe(policy, full: bool = False) -> dict:
    """A policy's id, title, revision and dates (and, in full, its history, facts and codes)."""
    p = policy.ir
    rev = p.revision
    out: dict[str, Any] = {
        "id": p.id,
        "title": p.title,
        "revision": rev.number if rev else None,
        "dated": rev.dated.isoformat() if rev else None,
        "effective": rev.effective.isoformat() if rev else None,
        "file": p.path,
    }
    if not full:
        return out
    out["history"] = [
        {"revision": row.revision, "dated": row.dated, "effective": row.effective, "description": row.description}
        for row in p.history
    ]
    out["facts"] = [
        {"name": f.name, "type": f.type.describe(), "question": f.question, "per_line": f.per_line} for f in p.facts
    ]
    out["codes"] = sorted(policy.model.governed)
    out["rules"] = len(policy.model.rules)
    return out


# ------------------------------------------------------------------ the application


class Service:
    """The decision service: its policies, limits and the thread decisions run on."""

    def __init__(
        self,
        paths: list[str],
        *,
        max_body: int = DEFAULT_MAX_BODY,
        max_batch: int = DEFAULT_MAX_BATCH,
        reload_interval: float = 1.0,
        log=None,
    ):
        self.log = log or _log_line
        self.policies = Policies(paths, self.log)
        self.max_body = max_body
        self.max_batch = max_batch
        self.reload_interval = reload_interval
        self.started = _now()
        self._loader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="medpol-reload")

    # ---------------------------------------------------------- lifecycle

    async def watch(self) -> None:
        """Poll the files; compile and swap in a change (in a thread of its own)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.reload_interval)
            try:
                if await loop.run_in_executor(self._loader, self.policies.changed):
                    await loop.run_in_executor(self._loader, self.policies.reload)
            except Exception as err:  # noqa: BLE001 - the watcher must outlive any one failure
                self.log({"event": "reload failed", "error": f"{type(err).__name__}: {err}"})

    def app(self) -> Starlette:
        import contextlib

        @contextlib.asynccontextmanager
        async def lifespan(app):
            task = asyncio.create_task(self.watch()) if self.reload_interval > 0 else None
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                self._loader.shutdown(wait=False, cancel_futures=True)

        routes = [
            Route("/v1/decisions", self.decisions, methods=["POST"]),
            Route("/v1/policies", self.list_policies, methods=["GET"]),
            Route("/v1/policies/{id}", self.one_policy, methods=["GET"]),
            Route("/v1/policies/{id}/questionnaire", self.questionnaire, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]
        app = Starlette(
            routes=routes,
            lifespan=lifespan,
            exception_handlers={HTTPException: _http_error, Exception: self._unexpected},
        )
        return _RequestLog(app, self.log)

    async def _unexpected(self, request: Request, exc: Exception) -> Response:
        self.log({"event": "error", "path": request.url.path, "error": f"{type(exc).__name__}: {exc}"})
        return _error(500, "the service failed to answer this request; it is logged")

    # ---------------------------------------------------------- endpoints

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        served = self.policies.current
        body: dict[str, Any] = {
            "status": "degraded" if self.policies.problem else "ready",
            "policies": served.revisions(),
            "loaded_at": served.loaded_at.isoformat(),
        }
        if self.policies.problem:
            # The last good policies still answer; the change that failed is told here.
            body["problem"] = self.policies.problem
            body["problem_at"] = self.policies.problem_at.isoformat()
        return JSONResponse(body)

    async def openapi(self, request: Request) -> Response:
        from importlib.metadata import PackageNotFoundError, version

        from medpol.service.schema import openapi

        try:
            release = version("medpol")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree
            release = "0"
        return JSONResponse(openapi(release))

    async def list_policies(self, request: Request) -> Response:
        served = self.policies.current
        return JSONResponse(
            {
                "policies": [describe(p) for p in served.policies],
                "loaded_at": served.loaded_at.isoformat(),
                "status": "degraded" if self.policies.problem else "ready",
            }
        )

    def _policy(self, request: Request):
        pid = request.path_params["id"]
        for policy in self.policies.current.policies:
            if policy.id == pid:
                return policy
        raise Problem(404, f"no policy `{pid}` is served")

    async def one_policy(self, request: Request) -> Response:
        try:
            return JSONResponse(describe(self._policy(request), full=True))
        except Problem as err:
            return _error(err.status, err.message)

    async def questionnaire(self, request: Request) -> Response:
        try:
            _check_params(request, _QUESTIONNAIRE_PARAMS)
            policy = self._policy(request)
            from medpol.service.fhir import FhirUnavailable, questionnaire

            try:
                resource = questionnaire(policy, base=request.query_params.get("base"))
            except FhirUnavailable as err:
                raise Problem(501, str(err)) from None
        except Problem as err:
            return _error(err.status, err.message)
        return Response(orjson.dumps(resource), media_type=FHIR_JSON)

    async def decisions(self, request: Request) -> Response:
        record: dict[str, Any] = request.scope.setdefault("medpol.record", {})
        try:
            return await self._decide(request, record)
        except Problem as err:
            record["error"] = err.message
            return _error(err.status, err.message)

    async def _decide(self, request: Request, record: dict) -> Response:
        _check_params(request, _DECISION_PARAMS)
        as_of = _date_param(request, "as_of")
        known_at = _date_param(request, "known_at")
        why_not = _bool_param(request, "why_not")
        fhir_format = _format_param(request)
        kind, _, options = (request.headers.get("content-type") or "").partition(";")
        kind = kind.strip().lower()
        if kind in _BATCH_TYPES:
            batch_input = True
        elif kind in ("application/json", FHIR_JSON) or kind.endswith("+json"):
            batch_input = False
        else:
            raise Problem(
                415,
                f"`{kind or 'no content type'}` is not read here: send one claim as application/json, "
                f"a batch as {NDJSON}, or a FHIR Claim as {FHIR_JSON}",
            )
        charset = _charset(options)
        if charset is not None and charset not in _UTF8:
            raise Problem(415, f"charset `{charset[:20]}` is not read here: send the claims as UTF-8")
        # As `medpol eval` reads a file: a byte-order mark some editors write is not part of the first claim.
        body = (await self._body(request)).removeprefix(codecs.BOM_UTF8)
        served = self.policies.current  # the one version this request is decided under
        if known_at is not None:
            compiled = await self._known_at(known_at)
        else:
            compiled = served.compiled
        fhir_out = FHIR_JSON in (request.headers.get("accept") or "") or fhir_format
        # As `medpol eval`: claims are decoded in one pass, except for the FHIR encoder and
        # why-not, which look at the JSON object itself.
        typed = not fhir_out and not why_not
        if batch_input:
            items = body.split(b"\n")  # blank lines are kept, so line numbers are the body's
            claims = sum(1 for line in items if line.strip())
            if claims > self.max_batch:
                raise Problem(413, f"a batch holds at most {self.max_batch:,} claims; this one holds {claims:,}")
            if not claims:
                raise Problem(400, "the batch holds no claims")
        else:
            if not body.strip():
                raise Problem(400, "the request has no body: send one claim as a JSON object")
            # A claim the contract's decoder reads goes on already read; any other body
            # (a FHIR Claim, a claim with a mistake) is parsed and read in detail.
            claim = decode_claim(body) if typed else None
            if claim is None:
                try:
                    claim = orjson.loads(body)
                except orjson.JSONDecodeError as err:
                    raise Problem(400, f"the body is not valid JSON: {err}") from None
            items = [claim]
        fmt = "fhir" if fhir_out else "jsonl"
        decisions, counts, data = await _decide_items(compiled, items, as_of, why_not, fmt, typed)
        _describe_request(record, decisions, counts, batch_input)
        if batch_input:
            return Response(data, media_type="application/fhir+ndjson" if fhir_out else NDJSON)
        return Response(data, media_type=FHIR_JSON if fhir_out else "application/json")

    async def _known_at(self, day: datetime.date):
        from medpol.history.revisions import RefError

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._loader, self.policies.known_at, day)
        except RefError as err:
            raise Problem(400, f"known_at: {err}") from None
        except PolicyError as err:
            raise Problem(422, f"known_at: the policies published by {day} do not compile:\n{err.render()}") from None

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise Problem(400, "Content-Length is not a number") from None
            if size > self.max_body:
                raise Problem(413, f"the body is {size:,} bytes; the service takes at most {self.max_body:,}")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise Problem(413, f"the body is more than the {self.max_body:,} bytes the service takes")
            chunks.append(chunk)
        return b"".join(chunks)


class _RequestLog:
    """One JSON line per request: method, path, status, latency, and what the endpoint adds
    (a decision request: the claim, the policies and revisions that decided, outcome counts)."""

    def __init__(self, app, log):
        self.app = app
        self.log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        record = scope.setdefault("medpol.record", {})
        try:
            await self.app(scope, receive, sending)
        finally:
            self.log(
                {
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    **record,
                    "status": status["code"],
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                }
            )


async def _decide_items(compiled, items: list, as_of, why_not: bool, fmt: str, typed: bool = False):
    """Decide as `medpol eval` does, and encode as it does. A batch is decided a slice at a
    time, the event loop answering other requests between slices."""
    from medpol.engine.whynot import WithWhyNot
    from medpol.service.fhir import FhirClaims

    engine = FhirClaims(WithWhyNot(compiled) if why_not else compiled, to_fhir=fmt == "fhir")
    step = _WHY_NOT_SLICE if why_not else _SLICE
    decisions: list[dict] = []
    counts: collections.Counter = collections.Counter()
    for start in range(0, len(items), step):
        if start:
            await asyncio.sleep(0)
        found, counted = batch.decide_items(
            engine, compiled.id, compiled.revision, 1 + start, items[start : start + step], "request", as_of, typed
        )
        decisions.extend(found)
        counts.update(counted)
    return decisions, counts, batch.encode(decisions, fmt)


def _describe_request(record: dict, decisions: list[dict], counts, batch_input: bool) -> None:
    if batch_input:
        record["claims"] = len(decisions)
    else:
        record["claim"] = decisions[0].get("claim") if decisions else None
    policies: dict[str, str | None] = {}
    for decision in decisions:
        if decision.get("policy"):
            policies[decision["policy"]] = decision.get("revision")
        for line in decision.get("lines", ()):
            if line.get("policy"):
                policies[line["policy"]] = line.get("revision")
    record["policies"] = policies
    record["outcomes"] = {
        o: counts[o] for o in ("covered", "denied", "pending", "refer", "not_applicable", "error") if counts[o]
    }


def _check_params(request: Request, known: tuple[str, ...]) -> None:
    """Refuse a query parameter the endpoint does not take, or one given twice (only one of
    its values could be used): neither is dropped without a word."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name not in known:
            near = difflib.get_close_matches(name.replace("-", "_").lower(), known, n=1)
            hint = f" (did you mean `{near[0]}`?)" if near else ""
            takes = ", ".join(f"`{k}`" for k in known)
            raise Problem(400, f"`{name[:40]}` is not a parameter of {request.url.path}{hint}; it takes {takes}")
        if name in seen:
            raise Problem(400, f"{name}: given more than once")
        seen.add(name)


def _date_param(request: Request, name: str) -> datetime.date | None:
    from medpol.engine.claims import date_problem, read_date

    value = request.query_params.get(name)
    if value is None:
        return None
    # The reading eval gives --as-of and a claim's dates: strict YYYY-MM-DD (datetime's own
    # would also take 2026-W10-1).
    day = read_date(value)
    if day is None:
        raise Problem(400, f"{name}: {date_problem(value)}")
    return day


def _bool_param(request: Request, name: str) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return False
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise Problem(400, f"{name}: `{value[:20]}` is not true or false")


def _format_param(request: Request) -> bool:
    """Whether `format=fhir` asks for ClaimResponses; no other format is written."""
    value = request.query_params.get("format")
    if value is None or value == "fhir":
        return value is not None
    raise Problem(400, f"format: `{value[:20]}` is not written here: `fhir` for ClaimResponses, none for decisions")


def _charset(options: str) -> str | None:
    """The `charset` of a Content-Type's parameters (after its `;`), in lower case."""
    for option in options.split(";"):
        name, _, value = option.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    words = {
        404: f"no such endpoint: {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }
    return _error(exc.status_code, words.get(exc.status_code, str(exc.detail)))


def _log_line(record: dict) -> None:
    record = {"time": _now().isoformat(), **record}
    sys.stderr.buffer.write(orjson.dumps(record, default=str) + b"\n")
    sys.stderr.buffer.flush()


def run(
    paths: list[str],
    host: str = "127.0.0.1",
    port: int = 8181,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_batch: int = DEFAULT_MAX_BATCH,
    reload_interval: float = 1.0,
) -> None:
    """Compile the policies (raising PolicyError if they do not), then serve until stopped."""
    import uvicorn

    service = Service(paths, max_body=max_body, max_batch=max_batch, reload_interval=reload_interval)
    # As `medpol eval` decides a batch: a decision's many small objects are freed by reference
    # counting, so the collector's young generation runs less often; and the compiled
    # policies, alive for the whole run, are not scanned again at each collection.
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(50_000, gc.get_threshold()[0]), *gc.get_threshold()[1:])
    served = service.policies.current
    _log_line(
        {
            "event": "serving",
            "url": f"http://{host}:{port}",
            "policies": served.revisions(),
        }
    )
    config = uvicorn.Config(service.app(), host=host, port=port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
