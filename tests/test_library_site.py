"""The published site of a library: every policy of the folder, one row per code naming each
policy that governs it, and drafts (a revision not yet in effect, uncommitted changes) apart."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from medpol.cli.main import main
from medpol.publish.site import build, collect, render_pages
from tests.test_library_history import CANES_2, WALKERS_1, commit, new_repo

# Revision 2 of the walker policy is committed but takes effect after the day the site is built.
WALKERS_2 = WALKERS_1.replace(
    "revision 1 dated 2025-06-01 effective 2025-06-01", "revision 2 dated 2025-08-15 effective 2025-10-01"
).replace('  E0130 "walker, rigid"\n', '  E0130 "walker, rigid"\n  E0141 "walker, wheeled"\n')

BRACES = """\
medpol 1

policy braces "Knee Braces"
  revision 1 dated 2025-08-01 effective 2025-08-01

codes braces "Knee orthoses"
  L1810 "knee orthosis, elastic with joints"

section ONE "Knee braces"
  rule brace
    cover braces
"""

TODAY = datetime.date(2025, 9, 1)


@pytest.fixture
def library(tmp_path) -> Path:
    repo = new_repo(tmp_path / "plan")
    commit(repo, {"medical/canes.policy": CANES_2, "medical/walkers.policy": WALKERS_1}, "canes r2, walkers r1")
    commit(repo, {"medical/walkers.policy": WALKERS_2}, "walkers r2, effective 2025-10-01")
    folder = Path(repo.working_tree_dir) / "medical"
    # A policy added to the folder and not yet committed: published as a draft, no code changes.
    (folder / "braces.policy").write_text(BRACES, encoding="utf-8")
    return folder


@pytest.fixture
def docs(library, tmp_path) -> Path:
    out = tmp_path / "docs"
    render_pages(collect(library, TODAY), out)
    return out


def test_every_policy_of_the_folder_gets_its_page(docs):
    assert {"canes.md", "walkers.md", "braces.md", "index.md", "codes.md"} <= {p.name for p in docs.iterdir()}
    assert (docs / "walkers-r1.md").exists() and (docs / "walkers-r2.md").exists()


def test_drafts_are_listed_apart_from_published_policies(docs):
    index = (docs / "index.md").read_text()
    published, drafts = index.split("## Drafts")
    assert "[Canes](canes.md) | `canes` | 2 | 2025-06-01 | 2025-07-01 |" in published
    assert "walkers" not in published and "braces" not in published
    walkers = next(line for line in drafts.splitlines() if "`walkers`" in line)
    assert "| 2 | 2025-08-15 | 2025-10-01 | revision 2 takes effect on 2025-10-01 |" in walkers
    assert "[revision 1](walkers-r1.md), effective 2025-06-01" in walkers
    braces = next(line for line in drafts.splitlines() if "`braces`" in line)
    assert "its file has changes not yet committed" in braces and braces.endswith("| none |")


def test_a_draft_page_says_so(docs):
    page = (docs / "walkers.md").read_text()
    assert page.startswith("# Walkers (revision 2, draft)\n")
    assert '!!! warning "Draft"' in page and "claims are decided by [revision 1](walkers-r1.md)" in page
    assert (docs / "canes.md").read_text().startswith("# Canes (revision 2)\n")
    assert "Draft" not in (docs / "canes.md").read_text()


def test_a_policy_in_effect_by_the_day_is_published(library, tmp_path):
    """The same folder built after walkers revision 2 takes effect: only the uncommitted policy is a draft."""
    out = tmp_path / "later"
    render_pages(collect(library, datetime.date(2025, 10, 1)), out)
    published, drafts = (out / "index.md").read_text().split("## Drafts")
    assert "`walkers` | 2 |" in published and "`braces`" in drafts and "`walkers`" not in drafts


def test_the_code_lookup_has_one_row_per_code_naming_each_policy(docs):
    codes = (docs / "codes.md").read_text()
    rows = [line for line in codes.splitlines() if line.startswith("| **")]
    assert len(rows) == len({line.split("|")[1] for line in rows})  # one row per code
    [tip] = [line for line in rows if line.startswith("| **A4637** |")]
    assert "[Canes](canes.md), revision 2: [`cane`](canes.md#cane)" in tip
    assert "[Walkers](walkers.md), revision 2 (draft): [`walker`](walkers.md#walker)" in tip
    [brace] = [line for line in rows if line.startswith("| **L1810** |")]
    assert "[Knee Braces](braces.md), revision 1 (draft)" in brace


def test_the_built_site_names_policy_and_revision_in_search(library, tmp_path):
    html = build(library, tmp_path / "site", today=TODAY)
    index = (html / "index.html").read_text()
    assert "Drafts" in index and "Knee Braces" in index
    codes = (html / "codes.html").read_text()
    [row] = [r for r in re.findall(r"<tr>.*?</tr>", codes, re.S) if "A4637" in r]
    assert "Canes" in row and "Walkers" in row
    titles = {
        d["location"]: d["title"] for d in json.loads((html / "search" / "search_index.json").read_text())["docs"]
    }
    assert titles["canes.html"] == "Canes (revision 2)"
    assert titles["walkers.html"] == "Walkers (revision 2, draft)"
    assert titles["walkers-r1.html"] == "Walkers (revision 1)"


def test_cli_docs_build_publishes_as_of_a_date(library, tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(
        main, ["docs", "build", "--policies", str(library), "--out", str(out), "--as-of", "2025-10-01"]
    )
    assert result.exit_code == 0, result.output
    published = (out / "docs" / "index.md").read_text().split("## Drafts")[0]
    assert "`walkers` | 2 |" in published


def test_cli_docs_build_errors(library, tmp_path):
    runner = CliRunner()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(main, ["docs", "build", "--policies", str(empty), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "is not a folder of .policy files" in result.output
    (library / "braces.policy").write_text(BRACES.replace("cover braces", "cover bracs"), encoding="utf-8")
    result = runner.invoke(main, ["docs", "build", "--policies", str(library), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "the site was not built" in result.output and "Traceback" not in result.output
