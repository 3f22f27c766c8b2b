"""Claims and policies at the edges of what medpol reads: dates at the calendar's ends, units
past any limit, criteria that read themselves. Each claim is decided (or the policy refused
with a diagnostic), and the rest of the batch goes on."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import orjson
import pytest

from medpol.api import load_policy
from medpol.batch import local as batch
from medpol.dsl.diagnostics import PolicyError

ROOT = Path(__file__).resolve().parent.parent
EDGES = ROOT / "tests" / "fixtures" / "edges"
POLICIES = ROOT / "policies"
EXAMPLES = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"


def decided(policy_name: str, raws: list[bytes]) -> list[dict]:
    policy = load_policy(POLICIES / policy_name)
    out = io.BytesIO()
    chunks = batch.jsonl_chunks(io.BytesIO(b"\n".join(raws) + b"\n"), 4)
    batch.decide_stream(policy, chunks, out, jobs=1, typed=True)
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_dates_at_the_calendar_ends_are_decided_and_the_batch_goes_on():
    # A service date in the year 9999 (a monthly limit's period ends past the calendar) and
    # a written order in the year 1 (six months before it is before the calendar).
    edges = [(EDGES / name).read_bytes().strip() for name in ("service-date-9999.jsonl", "written-order-0001.jsonl")]
    examples = EXAMPLES.read_bytes().splitlines()
    decisions = decided("external-infusion-pump.policy", [edges[0], *examples, edges[1]])
    assert len(decisions) == len(examples) + 2
    assert [d["claim"] for d in decisions[:1] + decisions[-1:]] == ["date-9999", "wo-0001"]
    # The written order in the year 1 is not within the months the policy asks: a denial.
    assert decisions[-1]["lines"][0]["outcome"] == "denied"
    assert all(line["outcome"] != "error" for d in decisions for line in d["lines"])


@pytest.mark.parametrize("name", ["osteo-refill-0001.jsonl", "osteo-first-9999.jsonl", "osteo-e0747-start-0001.jsonl"])
def test_date_arithmetic_of_an_lcd_at_the_calendar_ends(name):
    (decision,) = decided("osteogenesis-stimulators.policy", [(EDGES / name).read_bytes().strip()])
    assert all(line["outcome"] in ("covered", "denied", "pending") for line in decision["lines"])


def test_units_past_any_limit_are_a_limit_without_end_not_a_failure():
    # A4559's quantity limit is worked out from the line's units; 1e308 units make it infinite.
    (decision,) = decided("osteogenesis-stimulators.policy", [(EDGES / "osteo-units-huge.jsonl").read_bytes().strip()])
    assert [line["outcome"] for line in decision["lines"]] == ["covered", "covered"]


def test_criteria_that_read_themselves_are_refused_when_the_policy_is_compiled(tmp_path):
    text = (POLICIES / "osteogenesis-stimulators.policy").read_text()
    anchor = "    nonunion\n    nonunion_radiographs\n"
    assert anchor in text
    for source in POLICIES.glob("*.txt"):
        shutil.copy(source, tmp_path)
    path = tmp_path / "osteogenesis-stimulators.policy"
    path.write_text(text.replace(anchor, anchor + "    ultrasonic_criteria\n", 1))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    (cycle,) = [d for d in err.value.diagnostics if d.code == "reference-cycle"]
    assert "ultrasonic_criteria -> osteogenesis-stimulators.ultrasonic_criteria" in cycle.message
    assert cycle.path == str(path) and cycle.line > 1


@pytest.mark.parametrize("code", [9039, None, "", "  "])
def test_a_line_whose_code_cannot_be_read_is_one_its_base_and_dependents_depend_on(code):
    # The pump serves the drug of line 2 and the supply follows the pump; with line 2's code
    # unreadable, neither can be decided, and asking for the drug (pending) would ask the
    # provider for what is not the problem.
    claim = orjson.loads((EDGES / "hcpcs-not-string.jsonl").read_bytes())
    claim["lines"][1]["hcpcs"] = code
    (decision,) = decided("external-infusion-pump.policy", [orjson.dumps(claim)])
    pump, drug, supply = decision["lines"]
    assert drug["outcome"] == "error" and drug["field"] == "lines[1].hcpcs"
    for line in (pump, supply):
        assert line["outcome"] == "error" and line["field"] == "lines[1].hcpcs"
        assert line["message"].startswith("depends on line 2, which is in error: lines[1].hcpcs: ")


def test_a_source_document_that_is_not_a_file_is_reported_not_read(tmp_path):
    # /dev/zero never ends: read, it would hold the checker for ever.
    text = (POLICIES / "external-infusion-pump.policy").read_text()
    depth = "../" * len(tmp_path.parts)
    path = tmp_path / "p.policy"
    path.write_text(text.replace('source "external-infusion-pump-rev22.txt"', f'source "{depth}dev/zero"', 1))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert [d.code for d in err.value.diagnostics if d.severity == "error"] == ["missing-source"]


def test_history_import_of_a_folder_that_cannot_be_read_says_so(tmp_path):
    from medpol.history.revisions import RefError, import_history

    with pytest.raises(RefError, match="cannot read the folder .*No such file"):
        import_history(str(tmp_path / "missing"), str(tmp_path / "repo" / "p.policy"))
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "p.policy").write_bytes(b'policy p "P"\n\xff\n')
    with pytest.raises(RefError, match="is not UTF-8 text"):
        import_history(str(archive), str(tmp_path / "repo" / "p.policy"))


def test_new_with_a_name_the_file_system_refuses_says_so(tmp_path):
    import datetime

    from medpol.authoring.scaffold import ScaffoldError, create

    with pytest.raises(ScaffoldError, match="cannot write .*File name too long"):
        create("a-" + "b" * 300, tmp_path, datetime.date(2026, 1, 1))
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@pytest.mark.parametrize(("fact", "day"), [("written_order_date", "0001-01-01"), ("face_to_face_date", "9999-12-31")])
def test_why_not_at_the_calendar_ends_offers_routes_without_failing(fact, day):
    from medpol.engine.whynot import why_not

    claim = orjson.loads((EDGES / "written-order-0001.jsonl").read_bytes())
    claim["facts"].update({"written_order_date": "2026-01-05", fact: day})
    decision = why_not(load_policy(POLICIES / "external-infusion-pump.policy"), claim)
    pump = decision["lines"][0]
    assert pump["outcome"] == "denied" and pump["why_not"]


def test_why_not_moves_dates_within_the_calendar():
    import datetime

    from medpol.dsl import ir
    from medpol.engine.whynot import _add, _around

    date = ir.FactType("date")
    assert _around(datetime.date.max, ">=", date) == [datetime.date.max]
    assert _around(datetime.date.min, "<", date) == [datetime.date.min]
    assert _add(datetime.date.min, 30, None, -1) == datetime.date.min
    assert _add(datetime.date(2026, 3, 10), 30, None, -1) == datetime.date(2026, 2, 8)
