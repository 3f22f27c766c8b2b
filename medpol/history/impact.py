"""What a change of policy does to claims: each claim decided under both versions, and the
lines whose outcome (or, in a library, the policy that decides them) moves.

It decides claims, with the engine (medpol.engine); comparing the two versions' text is
compiler/diff.py's job.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from medpol.compiler import words

if TYPE_CHECKING:  # a policy is only decided here, through its own `decide`
    from medpol.api import CompiledPolicy


@attrs.frozen
class LineOutcome:
    outcome: str
    category: str | None
    refer_to: str | None
    missing: tuple[str, ...]
    message: str | None
    text: str  # the outcome in words, for reports


@attrs.frozen
class LineImpact:
    claim: str | None
    seq: int | None  # None when the whole claim is in error on one side
    hcpcs: str | None
    rule: str  # the group: the rule that decided, or `pending: <facts>`
    change: str  # `denied -> covered`
    before: LineOutcome
    after: LineOutcome


@attrs.frozen
class ImpactGroup:
    rule: str
    lines: tuple[LineImpact, ...]


@attrs.frozen
class OutcomeCount:
    change: str
    count: int


@attrs.frozen
class Impact:
    old_revision: str | None
    new_revision: str | None
    as_of: datetime.date | None
    claims: int
    lines: int
    claims_changed: int
    lines_changed: int
    counts: tuple[OutcomeCount, ...]
    groups: tuple[ImpactGroup, ...]
    # Claim lines that could not be read (not JSON), so were decided under neither version.
    unreadable: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[LineImpact, ...]:
        return tuple(line for group in self.groups for line in group.lines)


_ABSENT = {"outcome": "absent"}


def _outcome(d: dict) -> LineOutcome:
    outcome = d.get("outcome", "absent")
    missing = tuple(d.get("missing") or ())
    text = words.line_outcome_words(d, needs="missing")
    return LineOutcome(outcome, d.get("category"), d.get("refer_to"), missing, d.get("message"), text)


def _first_rule(d: dict) -> str | None:
    reasons = d.get("reasons") or ()
    return reasons[0].get("rule") if reasons else None


def _group(old: dict, new: dict) -> str:
    rule = _first_rule(new) or _first_rule(old)
    if rule:
        return rule
    for d in (new, old):
        if d.get("missing"):
            return "pending: " + ", ".join(d["missing"])
    if "error" in (old.get("outcome"), new.get("outcome")):
        return "error"
    return "no rule"


def _line_impact(claim_id, old: dict, new: dict) -> LineImpact | None:
    before, after = _outcome(old), _outcome(new)
    if attrs.evolve(before, text="") == attrs.evolve(after, text=""):
        return None
    return LineImpact(
        claim=claim_id,
        seq=new.get("seq", old.get("seq")),
        hcpcs=new.get("hcpcs", old.get("hcpcs")),
        rule=_group(old, new),
        change=f"{before.outcome} -> {after.outcome}",
        before=before,
        after=after,
    )


def _line_pairs(old: dict, new: dict) -> tuple[list[tuple[dict, dict]], int]:
    """Each line of a claim as the two versions decided it, and the number of lines.

    A claim in error under both versions is one pair, of the claims themselves (no lines).
    """
    old_error = old.get("outcome") == "error"
    new_error = new.get("outcome") == "error"
    if old_error and new_error:
        return [(old, new)], 0
    if old_error or new_error:
        # Every line of the side that was decided changes, from or to the claim's error.
        lines = new["lines"] if old_error else old["lines"]
        # The policy that found the error (a library's decision names it) goes with each line.
        kept = ("outcome", "message", "policy", "revision")
        error = {k: v for k, v in (old if old_error else new).items() if k in kept}
        pairs = []
        for line in lines:
            pair = ({**error, "seq": line.get("seq"), "hcpcs": line.get("hcpcs")}, line)
            pairs.append(pair if old_error else pair[::-1])
        return pairs, len(lines)
    pairs = list(itertools.zip_longest(old.get("lines", ()), new.get("lines", ()), fillvalue=_ABSENT))
    return pairs, len(pairs)


def _claim_impacts(old: dict, new: dict) -> tuple[list[LineImpact], int]:
    claim_id = new.get("claim", old.get("claim"))
    pairs, n_lines = _line_pairs(old, new)
    found = (_line_impact(claim_id, a, b) for a, b in pairs)
    return [line for line in found if line is not None], n_lines


def _tally(changed: list, group_of) -> tuple[list[tuple[str, tuple]], tuple[OutcomeCount, ...]]:
    """The changed lines grouped (by `group_of(line)`, in sorted order), and each change counted."""
    groups: dict[str, list] = {}
    counts: dict[str, int] = {}
    for line in changed:
        groups.setdefault(group_of(line), []).append(line)
        counts[line.change] = counts.get(line.change, 0) + 1
    return (
        [(key, tuple(groups[key])) for key in sorted(groups)],
        tuple(OutcomeCount(k, counts[k]) for k in sorted(counts)),
    )


def impact(
    old_policy: CompiledPolicy,
    new_policy: CompiledPolicy,
    claims: Iterable[dict],
    as_of: datetime.date | None = None,
    unreadable: Iterable[str] = (),
) -> Impact:
    """Decide every claim under both versions; keep the lines whose outcome changes, grouped by deciding rule.

    `unreadable` (claim lines that could not be read) is taken once every claim is decided, so
    a reader may fill it while `claims` is consumed.
    """
    changed: list[LineImpact] = []
    n_claims = n_lines = claims_changed = 0
    for claim in claims:
        n_claims += 1
        found, n = _claim_impacts(old_policy.decide(claim, as_of), new_policy.decide(claim, as_of))
        n_lines += n
        claims_changed += bool(found)
        changed.extend(found)
    groups, counts = _tally(changed, lambda line: line.rule)
    return Impact(
        old_revision=old_policy.revision,
        new_revision=new_policy.revision,
        as_of=as_of,
        claims=n_claims,
        lines=n_lines,
        claims_changed=claims_changed,
        lines_changed=len(changed),
        counts=counts,
        groups=tuple(ImpactGroup(rule, lines) for rule, lines in groups),
        unreadable=tuple(unreadable),
    )


# ---------------------------------------------------------------- a library: policies matched by id


@attrs.frozen
class LibraryLineImpact:
    """A claim line decided otherwise by the two versions of a library."""

    claim: str | None
    seq: int | None  # None when the whole claim is in error under both versions
    hcpcs: str | None
    policy_before: str | None  # the policy that decided the line; None when none governs its code
    policy_after: str | None
    revision_before: str | None
    revision_after: str | None
    change: str  # `denied -> covered`
    before: LineOutcome
    after: LineOutcome


@attrs.frozen
class LibraryImpactGroup:
    policy: str  # the policy that decides the lines now (before, for lines no policy decides now)
    lines: tuple[LibraryLineImpact, ...]


@attrs.frozen
class LibraryImpact:
    as_of: datetime.date | None
    claims: int
    lines: int
    claims_changed: int
    lines_changed: int
    counts: tuple[OutcomeCount, ...]
    groups: tuple[LibraryImpactGroup, ...]  # lines whose outcome changes, by policy
    # Lines with the same outcome, now decided by another policy (a policy added or removed,
    # or a code moved between policies).
    moved: tuple[LibraryLineImpact, ...]
    # Claims in error as a whole under both versions (not a claim, a field that cannot be
    # read): none of their lines is decided, so none can flip.
    claims_in_error: int
    unreadable: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[LibraryLineImpact, ...]:
        return tuple(line for group in self.groups for line in group.lines)


_NO_POLICY = "no policy"


def library_impact(old_library, new_library, claims: Iterable, as_of: datetime.date | None = None, unreadable=()):
    """Decide every claim under both versions of a library; keep the lines whose outcome
    changes, grouped by the policy that decides them, and the lines another policy now decides.

    `unreadable` is taken once every claim is decided, as by `impact`.
    """
    changed: list[LibraryLineImpact] = []
    moved: list[LibraryLineImpact] = []
    n_claims = n_lines = claims_changed = in_error = 0
    for claim in claims:
        n_claims += 1
        old, new = old_library.decide(claim, as_of), new_library.decide(claim, as_of)
        in_error += old.get("outcome") == "error" and new.get("outcome") == "error"
        claim_id = new.get("claim", old.get("claim"))
        pairs, n = _line_pairs(old, new)
        n_lines += n
        flipped = False
        for a, b in pairs:
            before, after = _outcome(a), _outcome(b)
            same = attrs.evolve(before, text="") == attrs.evolve(after, text="")
            if same and a.get("policy") == b.get("policy"):
                continue
            line = LibraryLineImpact(
                claim=claim_id,
                seq=b.get("seq", a.get("seq")),
                hcpcs=b.get("hcpcs", a.get("hcpcs")),
                policy_before=a.get("policy"),
                policy_after=b.get("policy"),
                revision_before=a.get("revision"),
                revision_after=b.get("revision"),
                change=f"{before.outcome} -> {after.outcome}",
                before=before,
                after=after,
            )
            if same:
                moved.append(line)
            else:
                changed.append(line)
                flipped = True
        claims_changed += flipped
    groups, counts = _tally(changed, lambda line: line.policy_after or line.policy_before or _NO_POLICY)
    return LibraryImpact(
        as_of=as_of,
        claims=n_claims,
        lines=n_lines,
        claims_changed=claims_changed,
        lines_changed=len(changed),
        counts=counts,
        groups=tuple(LibraryImpactGroup(policy, lines) for policy, lines in groups),
        moved=tuple(moved),
        claims_in_error=in_error,
        unreadable=tuple(unreadable),
    )
