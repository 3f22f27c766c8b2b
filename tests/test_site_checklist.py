"""A checklist per code: what a claim for it must show, printable, linked from its policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medpol.engine.library import load_library
from medpol.publish.site import build, checklist_path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("checklists")
    return out, build(POLICIES, out)


def test_every_governed_code_of_every_policy_has_its_checklist(site):
    out, html = site
    library = load_library([POLICIES])
    for pid, policy in library.policies.items():
        page = (out / "docs" / f"{pid}.md").read_text(encoding="utf-8")
        for code in policy.model.governed:
            path = checklist_path(pid, code)
            assert path == f"checklists/{pid}/{code}.md"
            assert (html / path.replace(".md", ".html")).exists(), path
            assert f"[{code}]({path})" in page  # linked from its policy page


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_j9039_lists_the_items_of_j_with_their_questions_and_dates(site):
    out, _html = site
    md = (out / "docs" / "checklists" / "external-infusion-pump" / "J9039.md").read_text(encoding="utf-8")
    assert md.startswith("# What a claim for J9039 must show: External Infusion Pump and Supplies (revision 22)\n")
    routes = _section(md, "Routes to coverage")
    items = re.findall(r"- \*\*Item (\d)\*\*(.*)", routes)
    assert [number for number, _ in items[:3]] == ["1", "2", "3"]
    assert "Effective 2026-01-25" in items[2][1] and "Effective" not in items[0][1] + items[1][1]
    assert "In which setting is blinatumomab given for B-cell precursor ALL? Relapsed or refractory (R/R)." in routes
    assert "Which treatment cycle does this claim bill? At most 9." in routes
    assert "What is the minimal residual disease, in percent? At least 0.1 percent." in routes
    assert "Is the leukemia CD19 positive? Yes." in routes
    # Criteria set 1 or set 2, spelled out with their questions.
    assert "Criteria set 1: all of the following hold:" in routes and "Criteria set 2:" in routes
    assert "How many hours does each infusion last? At least 8 hours." in routes
    assert "B-cell precursor acute lymphoblastic leukemia (C91.0)" in _section(md, "Diagnoses accepted")
    assert "25 vials per calendar month" in _section(md, "Limits")
    assert "Item 3 of Coverage of blinatumomab: effective 2026-01-25" in _section(md, "Effective dates")
    denials = _section(md, "What denies it")
    assert "Is the dispensing entity licensed in the state where it is located? No." in denials
    assert "_" not in denials  # denials in plain words


def test_the_checklist_prints_without_the_site_around_it(site):
    _out, html = site
    page = (html / "checklists" / "external-infusion-pump" / "J9039.html").read_text(encoding="utf-8")
    assert 'href="../../stylesheets/checklist-print.css"' in page
    css = (html / "stylesheets" / "checklist-print.css").read_text(encoding="utf-8")
    assert "@media print" in css
    for hidden in (".md-header", ".md-sidebar", ".md-footer"):
        assert hidden in css
