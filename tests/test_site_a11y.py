"""Every page of the published site, checked with axe-core in Chromium: no serious or critical violation."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from medpol.publish.site import build

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERIOUS = {"serious", "critical"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def findings(tmp_path_factory):
    """Serious and critical violations by page: (rule, impact, first target, summary)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")
    html = build(POLICIES, tmp_path_factory.mktemp("a11y"), claims=_sample())
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    axe = axe_module.Axe()
    found: dict[str, list] = {}
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            for path in sorted(html.rglob("*.html")):
                name = path.relative_to(html).as_posix()
                page.goto(f"{url}/{name}")
                response = axe.run(page).response
                found[name] = [
                    (v["id"], v["impact"], " ".join(map(str, node["target"])), node["failureSummary"])
                    for v in response["violations"]
                    if v["impact"] in SERIOUS
                    for node in v["nodes"]
                ]
            browser.close()
    finally:
        server.shutdown()
    return found


def _sample():
    import orjson

    from medpol.publish.site import ClaimSample

    lines = (ROOT / "tests/fixtures/contract/claims.jsonl").read_bytes().splitlines()
    return ClaimSample(tuple(orjson.loads(line) for line in lines if line.strip()))


def test_every_page_was_checked(findings):
    names = set(findings)
    assert {"index.html", "codes.html", "external-infusion-pump.html"} <= names
    assert any("-diff-" in name for name in names)
    assert any(name.startswith("checklists/") for name in names)


def test_no_page_has_a_serious_or_critical_violation(findings):
    assert {name: found for name, found in findings.items() if found} == {}
