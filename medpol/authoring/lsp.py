"""`medpol lsp`: a Language Server Protocol server for policy files, over stdio.

It works on the file being edited and the library around it (the policies beside it in its
folder), as `medpol check` does:

- diagnostics as you type: every problem `medpol check` reports, from the same pipeline
  (medpol.engine.library.check_files) run on the editor's text, with the text of the library's
  other open files;
- hover, go to definition, find references, completion and the outline (medpol.authoring.editing);
- formatting with `medpol fmt`'s formatter (medpol.dsl.format).

Parsing runs on one worker thread, off the thread that reads the editor's messages. A change
that arrives while its file is being checked is checked next, on its own: the diagnostics
published are always those of the editor's latest text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.uris import from_fs_path, to_fs_path

from medpol.authoring import editing
from medpol.dsl.diagnostics import Diagnostic, PolicyError

log = logging.getLogger(__name__)

# Seconds without a change before the other open policies of the library are checked again.
OTHERS_DELAY = 0.4

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
_SYMBOL_KIND = {
    "module": types.SymbolKind.Module,
    "namespace": types.SymbolKind.Namespace,
    "field": types.SymbolKind.Field,
    "enum": types.SymbolKind.Enum,
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "constant": types.SymbolKind.Constant,
    "object": types.SymbolKind.Object,
}
_COMPLETION_KIND = {
    editing.FACT: types.CompletionItemKind.Field,
    editing.CODES: types.CompletionItemKind.Enum,
    editing.DIAGNOSES: types.CompletionItemKind.Enum,
    editing.DRUGS: types.CompletionItemKind.Enum,
    editing.DRUG: types.CompletionItemKind.EnumMember,
    editing.CRITERIA: types.CompletionItemKind.Function,
    editing.OTHER_CRITERIA: types.CompletionItemKind.Function,
    editing.RULE: types.CompletionItemKind.Method,
    editing.POLICY: types.CompletionItemKind.Module,
    editing.VALUE: types.CompletionItemKind.Value,
    "keyword": types.CompletionItemKind.Keyword,
    "type": types.CompletionItemKind.TypeParameter,
}


def _version() -> str:
    try:
        return metadata.version("medpol")
    except metadata.PackageNotFoundError:
        return "0"


# ---------------------------------------------------------------- columns
#
# The editor counts columns in UTF-16 code units; the parser and medpol.authoring.editing in characters.


def _to_client(line: str, column: int) -> int:
    head = line[:column]
    return column + sum(1 for ch in head if ord(ch) > 0xFFFF)


def _from_client(line: str, column: int) -> int:
    units = 0
    for index, ch in enumerate(line):
        if units >= column:
            return index
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def _line(lines: list[str], number: int) -> str:
    return lines[number] if 0 <= number < len(lines) else ""


def _position(lines: list[str], line: int, column: int) -> types.Position:
    return types.Position(line=max(line, 0), character=_to_client(_line(lines, line), max(column, 0)))


def _range(lines: list[str], line: int, start: int, end_line: int, end: int) -> types.Range:
    return types.Range(start=_position(lines, line, start), end=_position(lines, end_line, end))


def lsp_diagnostic(d: Diagnostic, lines: list[str]) -> types.Diagnostic:
    """A medpol diagnostic as the protocol sends it: the same code, message and span."""
    line, column = max(d.line - 1, 0), max(d.column - 1, 0)
    text = _line(lines, line)
    end = min(column + max(d.width, 1), max(len(text), column + 1))
    message = d.message + (f"\nhelp: {d.help}" if d.help else "")
    return types.Diagnostic(
        range=_range(lines, line, column, line, end),
        message=message,
        severity=_SEVERITY.get(d.severity, types.DiagnosticSeverity.Information),
        code=d.code,
        source="medpol",
    )


# ---------------------------------------------------------------- the server


class _Protocol(LanguageServerProtocol):
    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams):
        # A change to a document that is not open (never opened, or closed first) has no text
        # to apply to: it is ignored, not answered with an error shown in the editor.
        if unquote(params.text_document.uri) not in self.workspace.text_documents:
            log.warning("ignored a change to %s, which is not open", params.text_document.uri)
            return
        yield from super().lsp_text_document__did_change(params)


class PolicyServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "medpol",
            _version(),
            protocol_cls=_Protocol,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        # The parser keeps its state on the class while it runs: one thread parses.
        self.worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="medpol-check")
        self.checking: set[str] = set()  # documents whose check loop is running
        self.last_good: dict[str, editing.Analysis] = {}  # the latest text of each document that parsed
        self.others_later: asyncio.TimerHandle | None = None
        # The URI of each open document as the editor spelled it, by the unquoted URI pygls
        # keeps documents under: diagnostics go back under the editor's own spelling.
        self.client_uris: dict[str, str] = {}

    # ------------------------------------------------------------ documents

    def document(self, uri: str):
        """The open document a URI names, however it is percent-encoded (`my%20policies`)."""
        return self.workspace.text_documents.get(unquote(uri))

    def path_of(self, uri: str) -> str:
        return to_fs_path(uri) or uri

    def open_texts(self) -> dict[str, str]:
        """The editor's text of every open policy, by path."""
        return {self.path_of(uri): doc.source for uri, doc in self.workspace.text_documents.items()}

    def text_of(self, path: str) -> str | None:
        """A policy's text: the editor's if it is open there, else the file's."""
        uri = from_fs_path(path)
        doc = self.document(uri) if uri else None
        if doc is not None:
            return doc.source
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def library(self, path: str) -> editing.LibraryView:
        return editing.LibraryView(path, self.text_of)

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)

    # ------------------------------------------------------------ diagnostics

    def diagnose(self, path: str, texts: dict[str, str]) -> list[Diagnostic]:
        """What `medpol check PATH` reports, with the editor's texts standing for the files."""
        from medpol.engine.library import check_files

        checked = check_files([path], (), texts)
        return [d for _path, diagnostics, _text in checked for d in diagnostics]

    def schedule(self, uri: str) -> None:
        if uri in self.checking:
            return  # the running loop checks the latest text when it is done
        self.checking.add(uri)
        asyncio.get_running_loop().create_task(self._check_loop(uri))

    async def _check_loop(self, uri: str) -> None:
        try:
            while True:
                doc = self.document(uri)
                if doc is None:
                    return
                version, text = doc.version, doc.source
                path = self.path_of(uri)
                texts = self.open_texts()
                texts[path] = text
                try:
                    found = await self.run(self.diagnose, path, texts)
                except Exception:  # a fault of the checker must not stop the server
                    log.exception("checking %s failed", path)
                    found = []
                doc = self.document(uri)
                if doc is None:
                    return
                if doc.version != version:
                    continue  # changed while it was checked: check the latest text
                lines = text.split("\n")
                self.text_document_publish_diagnostics(
                    types.PublishDiagnosticsParams(
                        uri=uri, version=version, diagnostics=[lsp_diagnostic(d, lines) for d in found]
                    )
                )
                return
        finally:
            self.checking.discard(uri)

    def schedule_library(self, uri: str) -> None:
        """Check a document now, and the other open policies of its folder (which may read it)
        once the editing pauses, so that they never hold up the document being edited."""
        self.schedule(uri)
        if self.others_later is not None:
            self.others_later.cancel()
        folder = Path(self.path_of(uri)).parent
        others = [
            self.client_uris.get(o, o)
            for o in self.workspace.text_documents
            if o != unquote(uri) and Path(self.path_of(o)).parent == folder
        ]
        if others:
            self.others_later = asyncio.get_running_loop().call_later(
                OTHERS_DELAY, lambda: [self.schedule(o) for o in others if self.document(o) is not None]
            )

    # ------------------------------------------------------------ analysis

    def analysis(self, uri: str) -> tuple[editing.Analysis | None, list[str]]:
        """The analysis of a document's text; while it does not parse (a line being typed),
        of its latest text that did, or else of the file as saved. And the lines it was made
        from, to convert columns."""
        doc = self.document(uri)
        if doc is None:
            return None, []
        path = self.path_of(uri)
        found = editing.analyse(doc.source, path)
        if found is not None:
            self.last_good[uri] = found
        else:
            found = self.last_good.get(uri)
        if found is None:
            try:
                found = editing.analyse(Path(path).read_text(encoding="utf-8"), path)
            except (OSError, UnicodeDecodeError):
                found = None
        return found, (found.text.split("\n") if found is not None else doc.source.split("\n"))

    def occurrence_at(self, uri: str, position: types.Position):
        analysis, lines = self.analysis(uri)
        if analysis is None:
            return None, None, lines
        column = _from_client(_line(lines, position.line), position.character)
        return analysis, analysis.at(position.line, column), lines

    def location(self, path: str, occ: editing.Occurrence) -> types.Location:
        text = self.text_of(path) or ""
        lines = text.split("\n")
        return types.Location(
            uri=from_fs_path(path) or path, range=_range(lines, occ.line, occ.start, occ.line, occ.end)
        )


server = PolicyServer()


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: PolicyServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.client_uris[unquote(params.text_document.uri)] = params.text_document.uri
    ls.schedule_library(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: PolicyServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.schedule_library(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: PolicyServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.schedule_library(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: PolicyServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.last_good.pop(uri, None)
    ls.client_uris.pop(unquote(uri), None)
    # The file on disk stands for it again: its problems are those `medpol check` gives.
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: PolicyServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri

    def answer():
        analysis, occ, lines = ls.occurrence_at(uri, params.position)
        if occ is None:
            return None
        text = analysis.hover(occ, ls.library(analysis.path))
        if text is None:
            return None
        return types.Hover(
            contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
            range=_range(lines, occ.line, occ.start, occ.line, occ.end),
        )

    return await ls.run(answer)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def definition(ls: PolicyServer, params: types.DefinitionParams) -> list[types.Location] | None:
    uri = params.text_document.uri

    def answer():
        analysis, occ, _lines = ls.occurrence_at(uri, params.position)
        if occ is None:
            return None
        found = editing.definitions(analysis, occ, ls.library(analysis.path))
        return [ls.location(path, o) for path, o in found] or None

    return await ls.run(answer)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
async def references(ls: PolicyServer, params: types.ReferenceParams) -> list[types.Location] | None:
    uri = params.text_document.uri

    def answer():
        analysis, occ, _lines = ls.occurrence_at(uri, params.position)
        if occ is None:
            return None
        found = editing.references(
            analysis, occ, ls.library(analysis.path), include_declaration=params.context.include_declaration
        )
        return [ls.location(path, o) for path, o in found] or None

    return await ls.run(answer)


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION,
    types.CompletionOptions(trigger_characters=[" ", ","]),
)
async def completion(ls: PolicyServer, params: types.CompletionParams) -> types.CompletionList | None:
    uri = params.text_document.uri

    def answer():
        doc = ls.document(uri)
        if doc is None:
            return None
        analysis, _lines = ls.analysis(uri)
        lines = doc.source.split("\n")
        line = params.position.line
        column = _from_client(_line(lines, line), params.position.character)
        library = ls.library(ls.path_of(uri))
        found = editing.completions(doc.source, line, column, analysis, library)
        items = [
            types.CompletionItem(
                label=c.label,
                kind=_COMPLETION_KIND.get(c.kind, types.CompletionItemKind.Text),
                detail=c.detail or None,
            )
            for c in found
        ]
        return types.CompletionList(is_incomplete=False, items=items)

    return await ls.run(answer)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
async def formatting(ls: PolicyServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    uri = params.text_document.uri

    def answer():
        from medpol.dsl.format import format_text

        doc = ls.document(uri)
        if doc is None:
            return None
        text = doc.source
        try:
            formatted = format_text(text, ls.path_of(uri))
        except PolicyError:
            return None  # a text that does not parse is left as it is; its diagnostics say why
        if formatted == text:
            return []
        lines = text.split("\n")
        end = _position(lines, len(lines) - 1, len(lines[-1]))
        return [
            types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=end), new_text=formatted)
        ]

    return await ls.run(answer)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def document_symbols(ls: PolicyServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol] | None:
    uri = params.text_document.uri

    def convert(symbol: editing.Symbol, lines: list[str]) -> types.DocumentSymbol:
        return types.DocumentSymbol(
            name=symbol.name,
            detail=symbol.detail or None,
            kind=_SYMBOL_KIND.get(symbol.kind, types.SymbolKind.Object),
            range=_range(lines, *symbol.range),
            selection_range=_range(lines, *symbol.selection),
            children=[convert(child, lines) for child in symbol.children],
        )

    def answer():
        analysis, lines = ls.analysis(uri)
        if analysis is None:
            return None
        return [convert(s, lines) for s in analysis.outline()]

    return await ls.run(answer)


def serve() -> None:
    """Serve the editor on stdin and stdout until it shuts the server down."""
    server.start_io()
