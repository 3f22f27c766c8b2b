"""The encoded policies as one library: a claim that crosses them is decided line by line,
each line by its own policy, exactly as that policy decides it alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medpol.api import load_policy
from medpol.cli.main import main
from medpol.engine.library import load_library

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
MIXED = ROOT / "tests" / "fixtures" / "library" / "mixed-claim.json"


@pytest.fixture(scope="module")
def library():
    return load_library([POLICIES])


@pytest.fixture(scope="module")
def alone():
    return {p.id: p for p in (load_policy(f) for f in sorted(POLICIES.glob("*.policy")))}


def test_every_encoded_policy_is_in_the_library(library, alone):
    assert sorted(library.policies) == sorted(alone)
    assert sorted(library.policies) == [
        "external-infusion-pump",
        "glucose-monitors",
        "manual-wheelchair-bases",
        "osteogenesis-stimulators",
        "wheelchair-seating",
    ]


def test_a_claim_crossing_policies_is_decided_line_by_line_by_each_policy(library):
    result = CliRunner().invoke(main, ["eval", str(POLICIES), str(MIXED)])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert "warnings" not in decision
    got = [(line["hcpcs"], line["outcome"], line.get("policy")) for line in decision["lines"]]
    expected = [
        ("E0781", "covered", "external-infusion-pump"),  # the pump, for blinatumomab (J, item 3)
        ("J9039", "covered", "external-infusion-pump"),  # blinatumomab, following its pump
        ("A4253", "covered", "glucose-monitors"),  # test strips: BGM basic criteria (1)-(2)
        ("K0001", "covered", "manual-wheelchair-bases"),  # a standard manual wheelchair
        ("E2601", "covered", "wheelchair-seating"),  # its seat cushion: the base meets L33788's criteria
        ("E0747", "covered", "osteogenesis-stimulators"),  # a nonunion of the tibia
    ]
    assert got[: len(expected)] == expected
    assert got[-1] == ("99213", "not_applicable", None)  # an office visit: no policy governs it
    assert all(line["revision"] for line in decision["lines"] if line.get("policy"))


def test_each_policy_alone_gives_its_lines_the_same_outcomes(library, alone):
    claim = json.loads(MIXED.read_text())
    together = library.decide(claim)
    singles = {pid: policy.decide(claim) for pid, policy in alone.items()}
    for i, line in enumerate(together["lines"]):
        if "policy" not in line:
            assert {s["lines"][i]["outcome"] for s in singles.values()} == {"not_applicable"}
            continue
        for own in line.get("decisions") or [line]:
            single = singles[own["policy"]]["lines"][i]
            assert single["outcome"] == own["outcome"], (own["policy"], line["hcpcs"])
            assert single.get("reasons") == own.get("reasons") or "decisions" in line


def test_a_batch_under_the_library_matches_each_policy_on_its_own_cases(library, alone):
    """Every policy's contract examples, decided under the whole library, keep their outcomes
    on the lines no other policy governs."""
    claims = [json.loads(line) for line in (ROOT / "tests/fixtures/contract/claims.jsonl").read_text().splitlines()]
    pump = alone["external-infusion-pump"]
    for claim in claims:
        together, single = library.decide(claim), pump.decide(claim)
        if single.get("outcome") == "error":
            assert together["outcome"] == "error"
            continue
        for a, b in zip(together["lines"], single["lines"], strict=True):
            if len(library.index.get(b["hcpcs"] or "", ())) <= 1:
                assert a["outcome"] == b["outcome"], (claim["id"], b["hcpcs"])


def test_the_seat_cushion_reads_the_wheelchair_base_policys_criteria(library):
    """LCD L33312 covers a cushion for a beneficiary with a manual wheelchair that meets
    Medicare coverage criteria: LCD L33788's general coverage criteria, read from that policy."""
    claim = json.loads(MIXED.read_text())
    claim["facts"]["cane_or_walker_resolves_limitation"] = True  # criterion B fails
    lines = {line["hcpcs"]: line for line in library.decide(claim)["lines"]}
    assert (lines["K0001"]["outcome"], lines["K0001"]["policy"]) == ("denied", "manual-wheelchair-bases")
    assert (lines["E2601"]["outcome"], lines["E2601"]["policy"]) == ("denied", "wheelchair-seating")
    del claim["facts"]["cane_or_walker_resolves_limitation"]
    lines = {line["hcpcs"]: line for line in library.decide(claim)["lines"]}
    assert lines["E2601"]["outcome"] == "pending"
    assert "cane_or_walker_resolves_limitation" in lines["E2601"]["missing"]
