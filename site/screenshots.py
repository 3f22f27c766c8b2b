"""Take the README's screenshots of the published site: a policy page, a checklist, a diff page.

    python site/screenshots.py [--out site/docs/images]

Builds the site from `policies/` with the contract's example claims as the diff pages' sample,
serves it on a loopback port and photographs each page in Chromium at the passage a reader
looks for. Needs the `test` and `docs` extras and Chromium (`chromium` on the PATH).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medpol.publish.site import ClaimSample, build  # noqa: E402

# (file name, page, the element to open the shot at, what it shows)
SHOTS = (
    ("policy-page.png", "external-infusion-pump.html", "#j-blinatumomab", "a rule in plain words beside its passage"),
    ("checklist-page.png", "checklists/external-infusion-pump/J9039.html", "h1", "what a claim for J9039 must show"),
    ("diff-page.png", "external-infusion-pump-diff-r21-r22.html", "h2#rules", "revision 21 to 22, item 3 added"),
)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _sample() -> ClaimSample:
    lines = (ROOT / "tests/fixtures/contract/claims.jsonl").read_bytes().splitlines()
    return ClaimSample(tuple(orjson.loads(line) for line in lines if line.strip()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "site" / "docs" / "images")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("screenshots: chromium is not on the PATH", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work:
        html = build(ROOT / "policies", Path(work), claims=_sample())
        handler = functools.partial(_Quiet, directory=str(html))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        args.out.mkdir(parents=True, exist_ok=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                for name, path, anchor, what in SHOTS:
                    if not (html / path).exists():
                        print(f"screenshots: {path} was not built; skipped", file=sys.stderr)
                        continue
                    page.goto(f"{url}/{path}")
                    page.locator(anchor).first.evaluate("e => e.scrollIntoView({block: 'start'})")
                    page.evaluate("window.scrollBy(0, -64)")  # below the sticky header
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(args.out / name))
                    print(f"{args.out / name}: {what}")
                browser.close()
        finally:
            server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
