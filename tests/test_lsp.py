"""`medpol lsp` driven as an editor drives it: a real client over stdio (pytest-lsp).

Documents are opened from the encoded policies (or a copy of the library, for one with
problems) and changed in the client only: nothing is written to the policy files.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("pygls")
pytest_lsp = pytest.importorskip("pytest_lsp")

from click.testing import CliRunner  # noqa: E402
from lsprotocol import types  # noqa: E402
from pygls.uris import from_fs_path  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features  # noqa: E402

from medpol.cli.main import main as cli  # noqa: E402
from medpol.dsl.format import format_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
PUMP = POLICIES / "external-infusion-pump.policy"
GLUCOSE = POLICIES / "glucose-monitors.policy"
SEATING = POLICIES / "wheelchair-seating.policy"
WAIT = 60  # seconds: a slow machine parses the library on first use


def _client() -> LanguageClient:
    """The test client, also keeping every diagnostics notification with its version."""
    from pygls.protocol import default_converter

    client = LanguageClient(converter_factory=default_converter)
    client.published = []

    def publish(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        client.diagnostics[params.uri] = params.diagnostics
        client.published.append(params)

    register_lsp_features(client, {**DEFAULT_CLIENT_FEATURES, types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish})
    return client


@pytest_lsp.fixture(
    scope="module",
    config=ClientServerConfig(server_command=[sys.executable, "-m", "medpol.cli", "lsp"], client_factory=_client),
)
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"), root_uri=from_fs_path(str(ROOT)))
    )
    yield
    await lsp_client.shutdown_session()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _published(client: LanguageClient, uri: str, version: int) -> list[types.Diagnostic]:
    """The diagnostics the server publishes for `uri` at `version`."""
    for _ in range(WAIT * 50):
        for params in reversed(client.published):
            if params.uri == uri and params.version == version:
                return list(params.diagnostics)
        await asyncio.sleep(0.02)
    raise AssertionError(f"no diagnostics for {uri} version {version}")


_versions: dict[str, int] = {}


async def _open(client: LanguageClient, path: Path, text: str | None = None) -> tuple[str, list[types.Diagnostic]]:
    uri = from_fs_path(str(path))
    version = _versions.get(uri, 0) + 100
    _versions[uri] = version
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri)))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id="medpol",
                version=version,
                text=path.read_text(encoding="utf-8") if text is None else text,
            )
        )
    )
    return uri, await _published(client, uri, version)


async def _change(client: LanguageClient, uri: str, line: int, start: int, end: int, new: str) -> list:
    version = _versions[uri] + 1
    _versions[uri] = version
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(line, start), types.Position(line, end)), text=new
                )
            ],
        )
    )
    return await _published(client, uri, version)


def _find(path: Path, pattern: str, nth: int = 0) -> types.Position:
    """The position of the `nth` match of `pattern` (at its first group, if it has one)."""
    text = path.read_text(encoding="utf-8")
    match = list(re.finditer(pattern, text, re.MULTILINE))[nth]
    offset = match.start(1) if match.groups() else match.start()
    line = text.count("\n", 0, offset)
    return types.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def _check(path: Path) -> list[tuple[int, int, str, str, str]]:
    """(line, column, severity, code, message) of every problem `medpol check PATH` prints."""
    result = CliRunner().invoke(cli, ["check", str(path)])
    head = re.compile(r"^(.+?):(\d+):(\d+): (error|warning)\[([a-z0-9-]+)\]: (.*)$")
    return sorted(
        (int(m[2]), int(m[3]), m[4], m[5], m[6]) for m in map(head.match, result.output.splitlines()) if m is not None
    )


def _as_check(diagnostics: list[types.Diagnostic]) -> list[tuple[int, int, str, str, str]]:
    words = {types.DiagnosticSeverity.Error: "error", types.DiagnosticSeverity.Warning: "warning"}
    return sorted(
        (d.range.start.line + 1, d.range.start.character + 1, words[d.severity], d.code, d.message.split("\n")[0])
        for d in diagnostics
    )


# ---------------------------------------------------------------- diagnostics


async def test_an_encoded_policy_opens_without_problems(client: LanguageClient):
    for path in (PUMP, GLUCOSE):
        uri, found = await _open(client, path)
        assert found == [] and _check(path) == []
        client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri))
        )


@pytest.fixture(scope="module")
def broken_library(tmp_path_factory) -> Path:
    """A copy of the library whose seating policy misquotes its source, reads criteria the
    wheelchair base policy does not name, and reads a fact it does not declare."""
    folder = tmp_path_factory.mktemp("library")
    for file in POLICIES.iterdir():
        if file.suffix in (".policy", ".txt"):
            shutil.copyfile(file, folder / file.name)
    seating = folder / SEATING.name
    text = seating.read_text(encoding="utf-8")
    text = text.replace(
        "meets basic_coverage of manual-wheelchair-bases", "meets basic_coverrage of manual-wheelchair-bases", 1
    )
    first_passage = re.search(r'^\s+"([^"]{20,})"$', text.split("\n  rule ", 1)[1], re.MULTILINE).group(1)
    text = text.replace(first_passage, "A passage no source document holds.", 1)
    seating.write_text(text, encoding="utf-8")
    return folder


async def test_opening_a_policy_publishes_what_medpol_check_reports(client: LanguageClient, broken_library: Path):
    path = broken_library / SEATING.name
    expected = _check(path)
    codes = {code for *_, code, _ in expected}
    assert {"quote-not-found", "undefined-criteria"} <= codes
    uri, found = await _open(client, path)
    assert _as_check(found) == expected
    assert all(d.source == "medpol" for d in found)
    quote = next(d for d in found if d.code == "quote-not-found")
    line = path.read_text(encoding="utf-8").split("\n")[quote.range.start.line]
    assert line[quote.range.start.character :].startswith('"A passage no source')


async def test_an_edit_that_breaks_and_then_fixes_a_policy_publishes_then_clears_its_diagnostic(
    client: LanguageClient,
):
    uri, found = await _open(client, GLUCOSE)
    assert found == []
    where = _find(GLUCOSE, r"^    cover E0607 when (bgm_basic)$")
    found = await _change(client, uri, where.line, where.character, where.character + len("bgm_basic"), "bgm_basics")
    assert [(d.code, d.range.start.line, d.range.start.character) for d in found] == [
        ("undefined-fact", where.line, where.character)
    ]
    assert "`bgm_basics`" in found[0].message
    found = await _change(client, uri, where.line, where.character, where.character + len("bgm_basics"), "bgm_basic")
    assert found == []


async def test_a_syntax_error_typed_is_reported_at_its_place(client: LanguageClient):
    uri, _ = await _open(client, PUMP)
    where = _find(PUMP, r"^    (cover) ", 0)
    found = await _change(client, uri, where.line, where.character, where.character + len("cover"), "covr")
    assert found and found[0].range.start.line == where.line
    assert found[0].severity == types.DiagnosticSeverity.Error
    found = await _change(client, uri, where.line, where.character, where.character + len("covr"), "cover")
    assert found == []


# ---------------------------------------------------------------- hover


async def _hover(client: LanguageClient, path: Path, position: types.Position) -> str:
    result = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(from_fs_path(str(path))), position=position)
    )
    assert result is not None, f"no hover at {position}"
    return result.contents.value


async def test_hover_tells_a_fact_its_type_and_question(client: LanguageClient):
    await _open(client, GLUCOSE)
    text = await _hover(client, GLUCOSE, _find(GLUCOSE, r"^        (insulin_treated)$"))
    assert "`insulin_treated`: bool" in text
    assert "Is the beneficiary currently treated with insulin administrations?" in text
    await _open(client, PUMP)
    text = await _hover(client, PUMP, _find(PUMP, r"^\s+(all_setting) is relapsed_refractory"))
    assert "one of" in text and "In which setting is blinatumomab given for B-cell precursor ALL?" in text
    text = await _hover(client, PUMP, _find(PUMP, r"^\s+all_setting is (mrd_remission)"))
    assert "value `mrd_remission` (in first or second remission with minimal residual disease (MRD))" in text


async def test_hover_tells_a_code_set_its_label_and_codes(client: LanguageClient):
    await _open(client, GLUCOSE)
    text = await _hover(client, GLUCOSE, _find(GLUCOSE, r"^codes (bgm) "))
    assert "blood glucose monitors (BGM)" in text
    assert "`E2100` BGM with integrated voice synthesizer (special features)" in text
    await _open(client, PUMP)
    text = await _hover(client, PUMP, _find(PUMP, r"diagnosis in (b_all)"))
    assert "**diagnoses** `b_all`" in text and "C91.0" in text


async def test_hover_tells_a_code_its_descriptor_and_rules(client: LanguageClient):
    await _open(client, GLUCOSE)
    text = await _hover(client, GLUCOSE, _find(GLUCOSE, r"cover (E0607) when"))
    assert "home blood glucose monitor" in text
    assert "rule `bgm.e0607`: cover E0607" in text
    await _open(client, PUMP)
    text = await _hover(client, PUMP, _find(PUMP, r"^  (E0781) "))
    assert "AMBULATORY INFUSION PUMP" in text and "decided by" in text


async def test_hover_tells_an_effective_date_what_it_governs(client: LanguageClient):
    await _open(client, PUMP)
    text = await _hover(client, PUMP, _find(PUMP, r"item 3 cd19_ph_negative effective (2026-01-25)"))
    assert "item 3 `cd19_ph_negative` of rule `J.blinatumomab`" in text and "from 2026-01-25" in text
    text = await _hover(client, PUMP, _find(PUMP, r"foscarbidopa_foslevodopa J7356 effective (2026-01-25)"))
    assert "drug `foscarbidopa_foslevodopa`" in text
    await _open(client, GLUCOSE)
    text = await _hover(client, GLUCOSE, _find(GLUCOSE, r"revision 70 dated 2024-10-17 effective (2024-10-01)"))
    assert "revision 70 decides lines served on or after 2024-10-01" in text


# ---------------------------------------------------------------- definition and references


async def _definition(client: LanguageClient, path: Path, position: types.Position) -> list[types.Location]:
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=types.TextDocumentIdentifier(from_fs_path(str(path))), position=position)
    )
    assert result, f"no definition at {position}"
    return result


async def test_definition_of_facts_sets_criteria_and_rules(client: LanguageClient):
    await _open(client, GLUCOSE)
    cases = [
        (r"^        (insulin_treated)$", r"^  (insulin_treated): bool"),
        (r"diagnosis in (diabetes)", r"^diagnoses (diabetes) "),
        (r"cover E2100, E2101 when\n      (bgm_basic)", r"^criteria (bgm_basic) "),
        (r"= (bgm), bgm_testing_supplies", r"^codes (bgm) "),
        (r"cover (E0607) when", r"^  (E0607) \""),
    ]
    for use, declaration in cases:
        (location,) = await _definition(client, GLUCOSE, _find(GLUCOSE, use))
        assert location.uri == from_fs_path(str(GLUCOSE))
        assert location.range.start == _find(GLUCOSE, declaration), use
    await _open(client, PUMP)
    for use, declaration in [
        (r"^\s+(all_setting) is relapsed_refractory", r"^  (all_setting): one of"),
        (r"cover (blinatumomab) when", r"^  (blinatumomab) J9039"),
        (r"^\s+diagnosis in (b_all)$", r"^diagnoses (b_all) "),
    ]:
        (location,) = await _definition(client, PUMP, _find(PUMP, use))
        assert location.range.start == _find(PUMP, declaration), use


async def test_definition_of_another_policy_and_its_criteria(client: LanguageClient):
    await _open(client, SEATING)
    bases = POLICIES / "manual-wheelchair-bases.policy"
    (location,) = await _definition(
        client, SEATING, _find(SEATING, r"meets (basic_coverage) of manual-wheelchair-bases")
    )
    assert location.uri == from_fs_path(str(bases))
    assert location.range.start == _find(bases, r"^criteria (basic_coverage) ")
    (location,) = await _definition(
        client, SEATING, _find(SEATING, r"meets basic_coverage of (manual-wheelchair-bases)")
    )
    assert location.uri == from_fs_path(str(bases))
    assert location.range.start == _find(bases, r"^policy (manual-wheelchair-bases) ")


async def _references(client: LanguageClient, path: Path, position: types.Position) -> list[types.Location]:
    result = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=types.TextDocumentIdentifier(from_fs_path(str(path))),
            position=position,
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert result, f"no references at {position}"
    return result


async def test_references_of_a_fact_and_a_set(client: LanguageClient):
    await _open(client, GLUCOSE)
    found = await _references(client, GLUCOSE, _find(GLUCOSE, r"^  (insulin_treated): bool"))
    text = GLUCOSE.read_text(encoding="utf-8")
    assert len(found) == len(re.findall(r"\binsulin_treated\b", text.split("\nfacts\n", 1)[1]))
    assert {loc.uri for loc in found} == {from_fs_path(str(GLUCOSE))}
    await _open(client, PUMP)
    found = await _references(client, PUMP, _find(PUMP, r"^diagnoses (b_all) "))
    pump = PUMP.read_text(encoding="utf-8")
    code = "\n".join(line.split("#")[0] for line in pump.split("\n"))
    assert len(found) == len(re.findall(r"\bb_all\b", code)) >= 2


async def test_references_of_criteria_reach_the_policies_that_read_them(client: LanguageClient):
    bases = POLICIES / "manual-wheelchair-bases.policy"
    await _open(client, bases)
    found = await _references(client, bases, _find(bases, r"^criteria (basic_coverage) "))
    assert from_fs_path(str(SEATING)) in {loc.uri for loc in found}
    found = await _references(client, bases, _find(bases, r"^policy (manual-wheelchair-bases) "))
    assert {loc.uri for loc in found} == {from_fs_path(str(bases)), from_fs_path(str(SEATING))}


# ---------------------------------------------------------------- completion


async def _complete(client: LanguageClient, uri: str, line: int, character: int) -> dict[str, types.CompletionItem]:
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri), position=types.Position(line, character)
        )
    )
    items = result.items if isinstance(result, types.CompletionList) else (result or [])
    return {item.label: item for item in items}


async def test_completion_in_context(client: LanguageClient):
    uri, _ = await _open(client, GLUCOSE)
    where = _find(GLUCOSE, r"^    cover E0607 when (bgm_basic)$")
    # A name where a condition goes: facts and criteria, and the condition keywords.
    await _change(client, uri, where.line, where.character, where.character + len("bgm_basic"), "in")
    labels = await _complete(client, uri, where.line, where.character + 2)
    assert {"insulin_treated", "bgm_basic", "age", "service_date", "any of", "diagnosis in"} <= set(labels)
    assert labels["insulin_treated"].kind == types.CompletionItemKind.Field
    # After `diagnosis in`: the diagnosis sets only.
    await _change(client, uri, where.line, where.character, where.character + 2, "diagnosis in ")
    labels = await _complete(client, uri, where.line, where.character + len("diagnosis in "))
    assert set(labels) == {"diabetes"}
    # After `cover`: the code sets.
    await _change(client, uri, where.line, where.character, where.character + len("diagnosis in "), "bgm_basic")
    start = where.character - len("cover E0607 when ")
    labels = await _complete(client, uri, where.line, start + len("cover "))
    assert {"bgm", "cgm", "bgm_testing_supplies"} <= set(labels) and "insulin_treated" not in labels


async def test_completion_of_declared_values_and_keywords(client: LanguageClient):
    uri, _ = await _open(client, PUMP)
    where = _find(PUMP, r"^\s+all_setting is (relapsed_refractory)")
    await _change(client, uri, where.line, where.character, where.character + len("relapsed_refractory"), "")
    labels = await _complete(client, uri, where.line, where.character)
    assert {"relapsed_refractory", "cd19_ph_negative", "not"} <= set(labels)
    assert labels["cd19_ph_negative"].kind == types.CompletionItemKind.Value
    assert labels["cd19_ph_negative"].detail == "CD19 positive, Philadelphia chromosome-negative"  # the value's words
    await _change(client, uri, where.line, where.character, where.character, "relapsed_refractory")
    # A new line at the top level: the top-level keywords.
    lines = PUMP.read_text(encoding="utf-8").split("\n")
    labels = await _complete(client, uri, len(lines) - 1, 0)
    assert {"facts", "codes", "section", "criteria"} <= set(labels)
    # A line of a rule: the decisions.
    rule = _find(PUMP, r"^    (cover) ")
    labels = await _complete(client, uri, rule.line, rule.character)
    assert {"cover", "deny", "limit", "refer"} <= set(labels)


# ---------------------------------------------------------------- formatting and outline


async def test_formatting_uses_medpol_fmt(client: LanguageClient):
    for path in (PUMP, GLUCOSE):
        text = path.read_text(encoding="utf-8")
        messy = text.replace("\n  revision ", "\n  revision   ", 1).replace("\nfacts\n", "\n\n\n\nfacts\n", 1)
        uri, _ = await _open(client, path, messy)
        edits = await client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
        assert len(edits) == 1 and edits[0].range.start == types.Position(0, 0)
        assert edits[0].new_text == format_text(messy, str(path)) == text
        uri, _ = await _open(client, path)
        edits = await client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
        assert list(edits) == []


async def test_the_outline_lists_sections_rules_and_items(client: LanguageClient):
    uri, _ = await _open(client, PUMP)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri))
    )
    names = [s.name for s in symbols]
    assert names[0] == "policy external-infusion-pump"
    assert "facts" in names and "section situations" in names
    situations = next(s for s in symbols if s.name == "section situations")
    section = next(s for s in situations.children if s.name == "section J")
    (rule,) = [r for r in section.children if r.name == "J.blinatumomab"]
    assert [c.name for c in rule.children] == [
        "item 1 relapsed",
        "item 2 mrd_remission",
        "item 3 cd19_ph_negative",
    ]
