"""Draw the pictures of site/docs/editing.md from the language server's real answers.

    python site/editor_screenshots.py

`medpol lsp` is started and driven as an editor drives it: the glucose monitors policy is
opened, a fact name misspelt, and a code hovered. Each picture shows the policy text around
the place, highlighted by medpol's Pygments lexer, with the diagnostic or the hover text the
server returned, in an HTML page styled like an editor and rendered by Chromium (Playwright).
The frame is drawn; the words in it are the server's.
"""

from __future__ import annotations

import asyncio
import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "glucose-monitors.policy"
IMAGES = ROOT / "site" / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"

MISSPELT = ("manual_dexterity_impairment_certified", "manual_dexterity_impairment_certifed")
HOVERED = "    cover E2101 when"


async def ask_the_server(text: str) -> tuple[int, dict, int, str]:
    """Open the policy, misspell a fact, hover a code: (line, diagnostic, hover line, hover text)."""
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    client = LanguageClient("medpol-screenshots", "1")
    published: dict[int, list] = {}
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        published[params.version] = list(params.diagnostics)
        arrived.set()

    await client.start_io(sys.executable, "-m", "medpol.cli", "lsp")
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    uri = from_fs_path(str(POLICY))
    lines = text.split("\n")
    row = next(i for i, line in enumerate(lines) if line.strip() == MISSPELT[0])
    edited = "\n".join(line.replace(*MISSPELT) if i == row else line for i, line in enumerate(lines))
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "medpol", 1, edited)))
    while 1 not in published:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), 120)
    # The misspelt name is not declared; the declared one is now read by no rule (a warning).
    diagnostic = next(d for d in published[1] if d.code == "undefined-fact")
    hover_row = lines.index(HOVERED)
    hover = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(uri), types.Position(hover_row, HOVERED.index("E2101") + 2))
    )
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    found = {
        "start": diagnostic.range.start.character,
        "end": diagnostic.range.end.character,
        "code": diagnostic.code,
        "message": diagnostic.message,
    }
    return row, found, hover_row, hover.contents.value


def highlighted(lines: list[str], mark: tuple[int, int, int] | None = None, style: str = "squiggle") -> list[str]:
    """Each line as HTML, coloured by the policy lexer; `mark` (line, start, end) is drawn in `style`."""
    from pygments.token import STANDARD_TYPES

    from medpol.publish.highlight import PolicyLexer

    out = []
    for number, line in enumerate(lines):
        pieces, column = [], 0
        for token, value in PolicyLexer().get_tokens(line):
            value = value.rstrip("\n")
            css = STANDARD_TYPES.get(token) or STANDARD_TYPES.get(token.parent, "")
            for index, ch in enumerate(value):
                at = column + index
                marked = mark is not None and mark[0] == number and mark[1] <= at < mark[2]
                pieces.append((css, marked, ch))
            column += len(value)
        parts, run = [], None
        for css, marked, ch in pieces:
            if run is None or run[0] != (css, marked):
                run = [(css, marked), ""]
                parts.append(run)
            run[1] += ch
        out.append(
            "".join(
                f'<span class="{css}{" " + style if marked else ""}">{html.escape(chars)}</span>'
                for (css, marked), chars in parts
            )
        )
    return out


STYLE = """
body { margin: 0; background: #1e1e1e; font-family: "DejaVu Sans", sans-serif; }
.editor { width: 1040px; background: #1e1e1e; color: #d4d4d4; padding: 0 0 18px 0; position: relative; }
.tab { background: #252526; color: #ccc; font-size: 13px; padding: 8px 16px; border-bottom: 1px solid #333; }
.tab b { color: #fff; font-weight: normal; background: #1e1e1e; padding: 8px 14px; margin-left: -16px; }
.code { font-family: "DejaVu Sans Mono", monospace; font-size: 13.5px; line-height: 20px; padding-top: 8px; }
.row { white-space: pre; overflow: hidden; height: 20px; }
.num { display: inline-block; width: 48px; text-align: right; color: #858585; padding-right: 18px; }
.k, .kd, .kn, .kr { color: #569cd6; } .kt { color: #4ec9b0; } .kc { color: #569cd6; } .kp { color: #b5cea8; }
.s2, .s { color: #ce9178; } .se { color: #d7ba7d; } .si { color: #d7ba7d; }
.c1, .c { color: #6a9955; } .ld { color: #b5cea8; } .m, .mi, .mf { color: #b5cea8; }
.no { color: #4fc1ff; } .nn { color: #c586c0; } .n { color: #9cdcfe; } .o, .p { color: #d4d4d4; }
.hovered { background: #3a3d41; }
.squiggle { text-decoration: underline wavy #f14c4c; text-decoration-skip-ink: none; text-underline-offset: 3px; }
.popup { position: absolute; background: #252526; border: 1px solid #454545; color: #ccc; font-size: 13px;
         width: 620px; padding: 10px 14px; box-shadow: 0 2px 8px rgba(0,0,0,.6); line-height: 1.45; }
.popup code { font-family: "DejaVu Sans Mono", monospace; color: #d7ba7d; font-size: 12.5px; }
.popup p { margin: 4px 0 8px 0; } .popup ul { margin: 4px 0; padding-left: 20px; }
.popup .error { color: #f14c4c; } .popup .source { color: #858585; }
"""


def page(lines: list[str], first: int, body: list[str], popup: str, popup_row: int, popup_col: int) -> str:
    rows = "\n".join(
        f'<div class="row"><span class="num">{first + i + 1}</span>{line}</div>' for i, line in enumerate(body)
    )
    top = 37 + 8 + (popup_row - first + 1) * 20 + 2
    left = 66 + popup_col * 8.1
    return (
        f"<html><head><style>{STYLE}</style></head><body><div class='editor'>"
        f"<div class='tab'><b>glucose-monitors.policy</b></div><div class='code'>{rows}</div>"
        f"<div class='popup' style='top:{top}px;left:{left:.0f}px'>{popup}</div></div></body></html>"
    )


def main() -> None:
    import markdown
    from playwright.sync_api import sync_playwright

    text = POLICY.read_text(encoding="utf-8")
    lines = text.split("\n")
    row, diagnostic, hover_row, hover = asyncio.run(ask_the_server(text))
    IMAGES.mkdir(parents=True, exist_ok=True)

    first = row - 6
    shown = [line.replace(*MISSPELT) if first + i == row else line for i, line in enumerate(lines[first : row + 8])]
    body = highlighted(shown, (row - first, diagnostic["start"], diagnostic["end"]))
    message, _, help_ = diagnostic["message"].partition("\nhelp: ")
    popup = (
        f"<p class='error'>{html.escape(message)}</p>"
        + (f"<p>help: {html.escape(help_)}</p>" if help_ else "")
        + f"<p class='source'>medpol({html.escape(diagnostic['code'])})</p>"
    )
    diagnostic_page = page(lines, first, body, popup, row, diagnostic["start"])

    first = hover_row - 3
    column = HOVERED.index("E2101")
    body = highlighted(lines[first : hover_row + 14], (hover_row - first, column, column + 5), "hovered")
    popup = markdown.markdown(hover)
    hover_page = page(lines, first, body, popup, hover_row, column)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        view = browser.new_page(viewport={"width": 1040, "height": 600}, device_scale_factor=1)
        for name, content in (("editing-diagnostic.png", diagnostic_page), ("editing-hover.png", hover_page)):
            view.set_content(content)
            view.locator(".editor").screenshot(path=str(IMAGES / name))
            print(f"wrote {IMAGES / name}")
        browser.close()
    print(f"diagnostic: {diagnostic['code']}: {diagnostic['message']}")
    print(f"hover: {hover}")


if __name__ == "__main__":
    main()
