"""The engine decides every recorded claim as the engine did when it was recorded.

tests/fixtures/regression holds claims (every case of the infusion pump tests file, and claims
from the benchmark's generator) and, per line, what the engine decided for them; record.py there
describes and rewrites them. A difference is either a regression, or an intended change: list it
in KNOWN_CHANGES, or, once a change is reviewed as a whole, record again with record.py.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from medpol.api import load_policy
from tests.fixtures.regression.record import dumps, project

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"
FIXTURES = ROOT / "tests" / "fixtures" / "regression"
SHOWN = 20  # differences shown in a failure; the count of the rest is given

# (claim id, seq) -> the line now expected, as decisions.jsonl has it without `claim`, or None
# for a line no longer decided. Each entry says why the decision changed on purpose.
KNOWN_CHANGES: dict[tuple[str, int | None], dict | None] = {}


def _read_jsonl(name: str) -> list[dict]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _date(value: str | None) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if value is not None else None


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return _read_jsonl("claims.jsonl")


@pytest.fixture(scope="module")
def recorded() -> dict[tuple[str, int | None], dict]:
    """The recorded lines by (claim id, seq), in the recorded order."""
    lines = {}
    for row in _read_jsonl("decisions.jsonl"):
        claim = row.pop("claim")
        lines[(claim, row["seq"])] = row
    return lines


@pytest.fixture(scope="module")
def policy():
    """The policy as it stands, and the earlier revisions some claims are decided under, each loaded once."""
    loaded = {None: load_policy(POLICY)}

    def get(known_at: str | None):
        if known_at not in loaded:
            loaded[known_at] = load_policy(POLICY, _date(known_at))
        return loaded[known_at]

    return get


def _shown(line: dict | None) -> str:
    return dumps(line) if line is not None else "(no such line)"


def _difference(record: dict, seq, was: dict | None, want: dict | None, got: dict | None) -> str:
    when = "".join(f", {key} {record[key]}" for key in ("as_of", "known_at") if key in record)
    where = "(the whole claim)" if seq is None else f"line {seq}"
    text = f"claim {record['id']} {where}{when}:\n    recorded: {_shown(was)}\n"
    if (record["id"], seq) in KNOWN_CHANGES:
        text += f"    expected: {_shown(want)}  (KNOWN_CHANGES)\n"
    return text + f"    now:      {_shown(got)}"


def test_every_recorded_line_decides_as_recorded(records, recorded, policy):
    by_claim: dict[str, dict[int | None, dict | None]] = {}
    for (claim, seq), line in {**recorded, **KNOWN_CHANGES}.items():
        by_claim.setdefault(claim, {})[seq] = line
    assert set(by_claim) == {record["id"] for record in records}, "claims.jsonl and decisions.jsonl do not match"

    found: list[str] = []
    for record in records:
        decision = policy(record.get("known_at")).decide(record["claim"], _date(record.get("as_of")))
        # Through JSON, as recorded: a tuple of missing facts reads back as a list.
        now = {line["seq"]: line for line in json.loads(dumps(project(decision)))}
        then = by_claim[record["id"]]
        for seq in list(then) + [s for s in now if s not in then]:
            if then.get(seq) != now.get(seq):
                was = recorded.get((record["id"], seq))
                found.append(_difference(record, seq, was, then.get(seq), now.get(seq)))
    more = f"\n... and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    assert not found, (
        f"{len(found)} line(s) of the {len(records)} recorded claims decide differently:\n"
        + "\n".join(found[:SHOWN])
        + more
    )


def test_known_changes_name_recorded_claims(records):
    ids = {record["id"] for record in records}
    stale = [key for key in KNOWN_CHANGES if key[0] not in ids]
    assert not stale, f"KNOWN_CHANGES names claims that are not recorded: {stale}"
