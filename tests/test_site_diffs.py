"""The site's diff pages and code lookup: what changed, marked as the standalone report marks it;
the claim lines that flip; one row per code; superseded revisions named as such."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from medpol.publish.site import ClaimSample, build

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CLAIMS = ROOT / "tests/fixtures/contract/claims.jsonl"
DIFF = "external-infusion-pump-diff-r21-r22.html"


def _sample() -> ClaimSample:
    lines = CLAIMS.read_bytes().splitlines()
    return ClaimSample(tuple(orjson.loads(line) for line in lines if line.strip()))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    html = build(POLICIES, tmp_path_factory.mktemp("site"), claims=_sample())
    if not (html / DIFF).exists():
        pytest.skip("no git history in this checkout")
    return html


def test_the_added_item_is_marked_as_added(site):
    text = (site / DIFF).read_text()
    [item] = re.findall(r'<li class="item added">.*?</li>', text, re.S)
    assert '<span class="badge added">added</span> item 3' in item and "cd19_ph_negative" in item
    assert 'href="stylesheets/diff.css"' in text  # the report's colours


def test_the_site_and_the_standalone_report_share_their_marks(site):
    from medpol.history.report import environment

    report_css = environment().get_template("_style.css.j2").render()
    site_css = (site / "stylesheets" / "diff.css").read_text(encoding="utf-8")
    marks = [line.strip() for line in environment().get_template("_marks.css.j2").render().splitlines() if line.strip()]
    assert len(marks) > 10
    for rule in marks:
        assert rule in report_css and rule in site_css, rule
    assert site_css.lstrip().startswith("/*") and ".md-typeset .medpol-diff {" in site_css


def test_the_counts_are_one_line_of_what_changed(site):
    text = (site / DIFF).read_text()
    assert "What changed:</strong> 1 rule added, 1 rule changed" in text
    summary = re.search(r"What changed:.*?</p>", text).group(0)
    assert not re.search(r"\b0 ", summary) and "no " not in summary  # only what changed, no zeros
    assert "precedence" not in summary and "criteria" not in summary


def test_the_diff_page_shows_the_claim_lines_that_flip(site):
    text = (site / DIFF).read_text()
    assert "Impact on claims" in text and "6 lines of 2 claims change outcome" in text
    row = next(r for r in re.findall(r"<tr>.*?</tr>", text, re.S) if "ex-blinatumomab-after-effective-date" in r)
    assert '<td class="old">denied (not reasonable and necessary)</td><td class="new">covered</td>' in row


def test_without_a_sample_there_is_no_impact_section(tmp_path):
    html = build(POLICIES, tmp_path)
    if (html / DIFF).exists():
        assert "Impact on claims" not in (html / DIFF).read_text()


def test_the_code_lookup_has_one_row_per_code_grouping_policies_and_rules(site):
    codes = (site / "codes.html").read_text()
    rows = re.findall(r"<tr>.*?</tr>", codes, re.S)
    names = [m.group(1) for r in rows if (m := re.search(r"<strong>([A-Z0-9.\-]+)</strong>", r))]
    hcpcs = names[: names.index("C91.0")] if "C91.0" in names else names
    assert len(hcpcs) == len(set(hcpcs))
    [row] = [r for r in rows if "<strong>A4244</strong>" in r]
    assert row.count("Alcohol or peroxide, per pint") == 1
    uses = re.findall(r"<li>.*?</li>", row, re.S)
    assert len(uses) == 2
    assert "External Infusion Pump and Supplies" in uses[0] and "exclusions.non_covered" in uses[0]
    assert "Glucose Monitors" in uses[1] and "bgm.related_supplies" in uses[1] and "cgm.replaces_bgm" in uses[1]
    for use, slug in zip(uses, ("external-infusion-pump", "glucose-monitors"), strict=True):
        if (site / f"checklists/{slug}/A4244.html").exists():
            assert f'href="checklists/{slug}/A4244.html"' in use


def test_search_titles_mark_superseded_revisions_and_rank_the_current_first(site):
    index = orjson.loads((site / "search/search_index.json").read_bytes())
    docs = index["docs"]

    def entry(location):
        return next(d for d in docs if d["location"] == location)

    old = entry("external-infusion-pump-r21.html")
    assert old["title"].endswith("(revision 21, superseded)") and old["boost"] < 1
    assert entry("external-infusion-pump-r22.html")["title"].endswith("(revision 22)")
    # The current page keeps the default boost, 1; every revision and diff page ranks below it.
    assert "boost" not in entry("external-infusion-pump.html")
    assert 0.5 <= old["boost"] < entry("external-infusion-pump-r22.html")["boost"] < 1
    page = (site / "external-infusion-pump-r21.html").read_text()
    assert "Revision 21 has been superseded by revision 22" in page
    assert "superseded" not in entry("external-infusion-pump-r22.html")["title"]


def test_a_missing_claims_sample_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "medpol.cli", "docs", "build", "--out", str(tmp_path), "--claims", "nope.jsonl"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == "error: cannot read `nope.jsonl`: no such file\n"
