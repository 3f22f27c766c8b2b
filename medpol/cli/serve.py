"""`medpol serve` (the decision service) and `medpol fhir` (FHIR resources of a policy)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _write(resources: list[dict], out_path: str | None, as_lines: bool = False) -> None:
    """One resource indented, or JSON Lines: always with `as_lines`, else when there are several."""
    if len(resources) == 1 and not as_lines:
        data = orjson.dumps(resources[0], option=orjson.OPT_INDENT_2) + b"\n"
    else:
        data = b"".join(orjson.dumps(r) + b"\n" for r in resources)
    if out_path:
        from medpol.cli.main import _write_out

        _write_out(out_path, data)
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
    QuestionnaireResponse typed by POLICY's facts (a policy file or a folder of policies).

    A claim that cannot be written is told on stderr, by its line and id, with the field at
    fault; the other claims are still written, and the exit status is then 2.
    """
    _need_fhir()
    from medpol.cli.main import _load, _load_library
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
    given = failed = 0
    for where, claim, unreadable in _numbered_claims(claims):
        given += 1
        if unreadable is not None:
            failed += 1
            click.echo(f"error: {where}: not valid JSON: {unreadable}", err=True)
            continue
        ignored: list[str] = []
        try:
            resources.append(claim_to_fhir(claim, types, ignored))
        except (FhirError, KeyError, TypeError, ValueError) as err:
            failed += 1
            click.echo(f"error: {where}: {_claim_named(claim)} cannot be written as a FHIR Claim: {err}", err=True)
            continue
        for field in ignored:
            # Decided, such a field is ignored with a warning; written, it would be lost unseen.
            click.echo(
                f"warning: {where}: {_claim_named(claim)}: `{field}` is not a field of a claim and was not written",
                err=True,
            )
    # The shape follows the input, not how many claims could be written: JSON Lines stay JSON
    # Lines when all but one of them fail.
    _write(resources, out_path, as_lines=given != 1)
    if failed:
        written = len(resources)
        as_what = "a FHIR Claim" if failed == 1 else "FHIR Claims"
        click.echo(
            f"error: {claims if claims != '-' else '<stdin>'}: {failed} of {given} claim{'s' if given != 1 else ''} "
            f"could not be written as {as_what}; {written} {'was' if written == 1 else 'were'} written",
            err=True,
        )
        sys.exit(2)


def _numbered_claims(source: str) -> Iterator[tuple[str, Any, str | None]]:
    """Each claim of a .json file (one claim) or of JSON Lines (`-`: stdin), with where it is
    (`FILE:LINE`, or the .json file) and, for text that is not JSON, why not (the claim None)."""
    if source == "-":
        yield from _json_lines(sys.stdin.buffer, "<stdin>")
        return
    path = Path(source)
    try:
        if path.suffix == ".json":
            try:
                yield source, orjson.loads(path.read_bytes()), None
            except orjson.JSONDecodeError as err:
                yield source, None, str(err)
            return
        with path.open("rb") as stream:
            yield from _json_lines(stream, source)
    except OSError as err:
        raise click.UsageError(f"cannot read `{source}`: {err.strerror}") from None


def _json_lines(stream, name: str) -> Iterator[tuple[str, Any, str | None]]:
    # Numbered by the file's lines, blank ones included, so that a message points at its line.
    for number, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            yield f"{name}:{number}", orjson.loads(raw), None
        except orjson.JSONDecodeError as err:
            yield f"{name}:{number}", None, str(err)


def _claim_named(claim: Any) -> str:
    """`claim ID` when the claim has a string id, else `the claim`."""
    from medpol.engine.claims import _show

    claim_id = claim.get("id") if isinstance(claim, dict) else None
    return f"claim {_show(claim_id)}" if isinstance(claim_id, str) and claim_id else "the claim"
