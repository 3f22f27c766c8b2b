"""Time from a change in the editor to its diagnostics, against a plain check of the same text.

    python -m benchmarks.lsp [--edits 40]

`medpol lsp` runs as an editor runs it (a subprocess over stdio, driven by a pygls client) on
a copy of the library; the largest policy is opened and changed line by line, every other
change introducing an error and the next one fixing it, and each change is timed until the
server publishes the diagnostics of that version. The baseline, measured in the same run,
writes each of the same texts to the file and calls in-process what `medpol check FILE` calls
(medpol.engine.library.check_files): the whole check of one file and of its library, with no
protocol, no process boundary and no editor. The figure to watch is the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


def largest_policy() -> Path:
    return max(POLICIES.glob("*.policy"), key=lambda p: len(p.read_text(encoding="utf-8")))


def edits(text: str, count: int) -> tuple[int, list[str]]:
    """`count` changes of one line: a comment added to a condition, and every other time the
    fact it reads misspelt (an `undefined-fact` error), then restored. The line, and its texts."""
    from medpol.api import resolved

    lines = text.split("\n")
    model = resolved(text, "<policy>")
    # The last line that reads a declared fact on its own: a condition an author edits.
    row = max(i for i, line in enumerate(lines) if line.strip() in model.facts)
    name = lines[row].strip()
    out = []
    for i in range(count):
        line = lines[row].replace(name, name + "_x") if i % 2 == 0 else lines[row]
        out.append(f"{line}  # edit {i}")
    return row, out


def apply(text: str, row: int, new: str) -> str:
    lines = text.split("\n")
    lines[row] = new
    return "\n".join(lines)


def baseline(path: Path, texts: list[str]) -> list[float]:
    """Write each text to the file and check it as `medpol check FILE` does, in-process."""
    from medpol.engine.library import check_files

    times = []
    for text in texts:
        path.write_text(text, encoding="utf-8")
        t0 = time.perf_counter()
        checked, _ = check_files([path])
        times.append(time.perf_counter() - t0)
        assert checked[0][1] or "_x" not in text
    return times


async def through_the_server(path: Path, original: str, row: int, changes: list[str]) -> list[float]:
    from lsprotocol import types
    from pygls.lsp.client import LanguageClient
    from pygls.uris import from_fs_path

    client = LanguageClient("medpol-benchmark", "1")
    published: dict[int, asyncio.Event] = {}
    found: dict[int, int] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
        if params.version is not None:
            found[params.version] = len(params.diagnostics)
            published.setdefault(params.version, asyncio.Event()).set()

    await client.start_io(sys.executable, "-m", "medpol.cli", "lsp")
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(path.parent)))
    )
    client.initialized(types.InitializedParams())
    uri = from_fs_path(str(path))
    published[0] = asyncio.Event()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "medpol", 0, original)))
    await asyncio.wait_for(published[0].wait(), 120)
    times = []
    current = original.split("\n")[row]
    for version, new in enumerate(changes, 1):
        published[version] = asyncio.Event()
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(row, 0), types.Position(row, len(current))), text=new
        )
        current = new
        t0 = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(types.VersionedTextDocumentIdentifier(version, uri), [change])
        )
        await asyncio.wait_for(published[version].wait(), 120)
        times.append(time.perf_counter() - t0)
        assert (found[version] > 0) == ("_x" in new), (version, found[version])
        # An author pauses between edits; the server's work for one edit is over before the next.
        await asyncio.sleep(0.05)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=40, help="changes timed, half of them errors")
    args = parser.parse_args()

    source = largest_policy()
    original = source.read_text(encoding="utf-8")
    row, changes = edits(original, args.edits)
    texts = [apply(original, row, new) for new in changes]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for file in POLICIES.iterdir():
            if file.suffix in (".policy", ".txt"):
                shutil.copyfile(file, folder / file.name)
        path = folder / source.name
        baseline(path, [original])  # warm: the library's other policies, read once as the server reads them
        base = baseline(path, texts)
        path.write_text(original, encoding="utf-8")
        served = asyncio.run(through_the_server(path, original, row, changes))
    lines = original.count("\n")
    print(
        f"policy: {source.name} ({lines} lines), library of {len(list(POLICIES.glob('*.policy')))}, {len(texts)} edits"
    )
    for label, times in (("in-process check (baseline):", base), ("change to diagnostics (lsp):", served)):
        print(f"{label}  median {statistics.median(times) * 1000:.0f} ms, best {min(times) * 1000:.0f} ms")
    print(f"ratio (lsp / check, medians): {statistics.median(served) / statistics.median(base):.2f}x")


if __name__ == "__main__":
    main()
