"""The decision for a claim that cannot be decided: `"outcome": "error"`, no lines.

Every path that meets such a claim (the engine, a library, the FHIR reader, the command
line) builds it here, so the contract's error decision has one shape and one key order.
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
