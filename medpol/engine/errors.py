"""The decision for a claim, or a line, that cannot be decided: `"outcome": "error"`.

Every path that meets such a claim or line (the engine, a library, a batch, the FHIR
reader, the command line) builds it here, so the contract's error decisions have one shape
and one key order.
"""

from __future__ import annotations


def error_decision(
    claim: str | None,
    message: str,
    *,
    field: str | None = None,
    under: tuple[str | None, str | None] | None = None,
) -> dict:
    """The error decision for `claim` (its id, when it could be read).

    `field` is the field that could not be read; the message then opens with it. `under` is
    the policy and revision asked to decide; None in a library's decision, whose lines would
    each name their own.
    """
    out: dict = {"claim": claim}
    if under is not None:
        out["policy"], out["revision"] = under
    out["outcome"] = "error"
    if field is not None:
        out["field"] = field
        message = f"{field}: {message}"
    out["message"] = message
    out["lines"] = []
    return out


def line_error(seq, hcpcs: str | None, field: str, message: str) -> dict:
    """The error decision of one line: `field` could not be read; the message opens with it."""
    return {"seq": seq, "hcpcs": hcpcs, "outcome": "error", "field": field, "message": f"{field}: {message}"}


def _line(decision: dict) -> str:
    """A line as a message names it: its seq, and its code when it could be read."""
    code = decision["hcpcs"]
    return f"{decision['seq']} ({code})" if code is not None else f"{decision['seq']}"


def depends_error(seq, hcpcs: str | None, broken: dict) -> dict:
    """The error decision of a line that cannot be decided because a line it depends on
    (its base, or the item a base serves) is in error: it names that line and its field."""
    return {
        "seq": seq,
        "hcpcs": hcpcs,
        "outcome": "error",
        "field": broken.get("field"),
        "message": f"depends on line {_line(broken)}, which is in error: {broken['message']}",
    }
