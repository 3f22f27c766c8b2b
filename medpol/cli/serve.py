"""`medpol serve` (the decision service) and `medpol fhir` (FHIR resources of a policy)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import click
import orjson


def _stop(message: str) -> None:
    from medpol.cli.main import _stop as stop

    stop(message)


def _missing(*modules: str) -> list[str]:
    """The modules of an extra that cannot be imported here."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


@click.command("serve")
@click.argument("paths", nargs=-1, required=True, metavar="POLICIES...")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8181, show_default=True, type=click.IntRange(0, 65535), help="The port to listen on.")
@click.option(
    "--max-body",
    default=16 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1),
    help="The largest request body taken, in bytes (a larger one is answered 413).",
)
@click.option(
    "--max-batch",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="The most claims one batch request may hold (more is answered 413).",
)
@click.option(
    "--reload-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds between checks of the policy files for a change (0: never reload).",
)
def serve_cmd(paths, host: str, port: int, max_body: int, max_batch: int, reload_interval: float) -> None:
    """Serve decisions over HTTP: POST /v1/decisions decides claims under POLICIES as `medpol eval` does.

    POLICIES is a policy file, or a folder (or several files) of a library. A policy file
    that changes is compiled again and swapped in; one that no longer compiles leaves the
    last good one serving, and /readyz says so. One JSON line per request on stderr.
    """
    missing = _missing("starlette", "uvicorn")
    if missing:
        _stop(f"medpol serve needs the serve extra ({', '.join(missing)} not installed): pip install 'medpol[serve]'")
    from medpol.cli.main import _loading
    from medpol.service.serve import run

    for path in paths:
        if not Path(path).exists():
            raise click.UsageError(f"`{path}` is not a policy file or folder")
    with _loading(", ".join(paths), "the service was not started"):
        try:
            run(list(paths), host, port, max_body=max_body, max_batch=max_batch, reload_interval=reload_interval)
        except OSError as err:
            _stop(f"cannot serve on {host}:{port}: {err.strerror or err}")
        except KeyboardInterrupt:
            pass


@click.group("fhir")
def fhir_group() -> None:
    """FHIR R4 (R4B) resources of a policy: its Questionnaire, claims as FHIR Claims."""


def _need_fhir() -> None:
    if _missing("fhir.resources"):
        _stop("FHIR needs the fhir extra (fhir.resources not installed): pip install 'medpol[fhir]'")


def _write(resources: list[dict], out_path: str | None) -> None:
    if len(resources) == 1:
        data = orjson.dumps(resources[0], option=orjson.OPT_INDENT_2) + b"\n"
    else:
        data = b"".join(orjson.dumps(r) + b"\n" for r in resources)
    if out_path:
        try:
            Path(out_path).write_bytes(data)
        except OSError as err:
            _stop(f"cannot write `{out_path}`: {err.strerror}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


@fhir_group.command("questionnaire")
@click.argument("policy")
@click.option("--out", "out_path", default=None, help="Write the Questionnaire to this file instead of stdout.")
@click.option(
    "--base",
    default=None,
    help="Canonical base of the Questionnaire's URL (default `urn:medpol`: urn:medpol:questionnaire:ID).",
)
def questionnaire_cmd(policy: str, out_path: str | None, base: str | None) -> None:
    """Write POLICY's FHIR Questionnaire: every fact it reads, asked with the fact's question.

    One Questionnaire per revision: its `version` is the policy's revision.
    """
    _need_fhir()
    from medpol.cli.main import _load
    from medpol.service.fhir import FhirError, questionnaire

    compiled = _load(policy, doing="no Questionnaire was written")
    try:
        resource = questionnaire(compiled, base)
    except FhirError as err:  # pragma: no cover - the writer's own resource
        _stop(str(err))
    _write([resource], out_path)


@fhir_group.command("claim")
@click.argument("paths", nargs=-1, required=True, metavar="POLICY... CLAIMS")
@click.option("--out", "out_path", default=None, help="Write the Claims to this file instead of stdout.")
def claim_cmd(paths: tuple[str, ...], out_path: str | None) -> None:
    """Write each claim of CLAIMS (.json or .jsonl) as a FHIR Claim, facts as a contained
    QuestionnaireResponse typed by POLICY's facts (a policy file or a folder of policies)."""
    _need_fhir()
    from medpol.cli.main import _load, _load_library, _read_claims, _Unreadable
    from medpol.service.fhir import FhirError, claim_to_fhir, fact_types

    if len(paths) < 2:
        raise click.UsageError(
            "give the policy (or a folder of policies) and the claims: medpol fhir claim POLICY CLAIMS"
        )
    *policies, claims = paths
    if len(policies) == 1 and not Path(policies[0]).is_dir():
        compiled = _load(policies[0], doing="no Claim was written")
    else:
        compiled = _load_library(policies, None)
    types = fact_types(compiled)
    resources = []
    for number, claim in enumerate(_read_claims(claims), 1):
        if isinstance(claim, _Unreadable):
            _stop(claim.message)
        try:
            resources.append(claim_to_fhir(claim, types))
        except (FhirError, KeyError, TypeError, ValueError) as err:
            _stop(f"{claims}: claim {number} cannot be written as a FHIR Claim: {err}")
    _write(resources, out_path)
