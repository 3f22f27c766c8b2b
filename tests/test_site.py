"""The published site: built from the compiled policies, deterministic, and right in a real browser."""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import threading
from pathlib import Path

import pytest

from medpol.engine.library import policy_id_of
from medpol.publish.site import build

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build(POLICIES, tmp_path_factory.mktemp("site"))


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_build_is_deterministic(site, tmp_path):
    again = build(POLICIES, tmp_path / "again")
    assert digest(again) == digest(site)


def test_pages_for_the_policy_its_revisions_and_codes(site):
    names = {p.name for p in site.iterdir()}
    assert {"index.html", "external-infusion-pump.html", "codes.html"} <= names
    page = (site / "external-infusion-pump.html").read_text()
    assert "Effective 2026-01-25" in page
    assert "Effective 1-25-26 Blinatumomab is added" in page
    assert "INFUSION PUMP USED FOR UNINTERRUPTED PARENTERAL ADMINISTRATION" in page  # the HCPCS table
    assert "documentation_received_before_delivery" in page  # the documentation checklist
    codes = (site / "codes.html").read_text()
    assert "J9039" in codes and "C91.0" in codes


def test_every_policy_of_the_library_has_its_page(site):
    ids = {policy_id_of(path) for path in POLICIES.rglob("*.policy")}
    assert len(ids) >= 4
    assert {f"{pid}.html" for pid in ids} <= {p.name for p in site.iterdir()}
    index = (site / "index.html").read_text()
    for pid in ids:
        assert f'href="{pid}.html"' in index


def test_a_code_two_policies_govern_is_one_row_naming_both(site):
    codes = (site / "codes.html").read_text()
    for code in ("A4244", "A4245", "A4246", "A4247"):
        [row] = [r for r in re.findall(r"<tr>.*?</tr>", codes, re.S) if f"<strong>{code}</strong>" in r]
        assert "External Infusion Pump and Supplies" in row and "Glucose Monitors" in row


def test_revision_and_diff_pages_when_history_is_in_git(site):
    revisions = sorted(p.name for p in site.glob("external-infusion-pump-r*.html"))
    if not revisions:
        pytest.skip("no git history in this checkout")
    assert "external-infusion-pump-r22.html" in revisions
    diff = site / "external-infusion-pump-diff-r21-r22.html"
    assert diff.exists()
    text = diff.read_text()
    assert "J.blinatumomab" in text and "2026-01-25" in text


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_policy_page_shows_the_blinatumomab_clause_with_its_date(served, browser):
    page = browser.new_page()
    page.goto(f"{served}/external-infusion-pump.html")
    item = page.locator("li", has_text="Effective 1-25-26 Blinatumomab is added").last
    assert item.is_visible()
    assert "Effective 2026-01-25" in item.inner_text()
    page.close()


def test_diff_page_shows_what_revision_22_changed(served, browser, site):
    if not (site / "external-infusion-pump-diff-r21-r22.html").exists():
        pytest.skip("no git history in this checkout")
    page = browser.new_page()
    page.goto(f"{served}/external-infusion-pump-diff-r21-r22.html")
    body = page.locator("article").inner_text()
    assert "J.blinatumomab" in body and "cd19_ph_negative" in body and "2026-01-25" in body
    page.close()


def test_search_finds_blinatumomab(served, browser):
    page = browser.new_page()
    page.goto(f"{served}/index.html")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").fill("blinatumomab")
    results = page.locator(".md-search-result__item")
    results.first.wait_for(timeout=15000)
    assert "blinatumomab" in results.first.inner_text().lower()
    # Every result names the policy and its revision: a policy page or a diff in its heading,
    # the code lookup in the row that matched.
    texts = results.all_inner_texts()
    assert texts[0].startswith("External Infusion Pump and Supplies") and "revision" in texts[0].splitlines()[0]
    for text in texts:
        assert "External Infusion Pump and Supplies" in text and "revision" in text, text
    page.close()
