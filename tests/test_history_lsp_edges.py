"""Versions of policies in unusual repositories and references, and the language server given
unusual documents: a one-line error or a diagnostic with a caret, never a traceback, and
nothing picked by a guess or dropped without a word."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from medpol.cli.main import main
from medpol.dsl.diagnostics import PolicyError
from medpol.history.revisions import RefError, history, import_history, load_library_version, resolve
from tests.test_library_history import new_repo

CANES = """\
medpol 1

policy canes "Canes"
  revision {number} dated {dated} effective {dated}

facts
  walks_unaided: bool
    "Can the member walk without help?"

codes canes "Canes"
  E0100 "cane"

section ONE "Canes"
  rule cane
    cover canes unless walks_unaided
"""


def canes(number: int, dated: str) -> str:
    return CANES.format(number=number, dated=dated)


def commit(repo: git.Repo, name: str, text: str | bytes, message: str) -> str:
    path = Path(repo.working_tree_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    repo.index.add([name])
    return repo.index.commit(message).hexsha


@pytest.fixture
def plan(tmp_path) -> git.Repo:
    """medical/canes.policy: revision 1, then revision 2."""
    repo = new_repo(tmp_path / "plan")
    commit(repo, "medical/canes.policy", canes(1, "2025-01-01"), "revision 1")
    commit(repo, "medical/canes.policy", canes(2, "2025-06-01"), "revision 2")
    return repo


def policy(repo: git.Repo, name: str = "medical/canes.policy") -> str:
    return str(Path(repo.working_tree_dir) / name)


def _one_line_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output, result.output


# ---------------------------------------------------------------- references


def test_a_reference_with_nothing_after_the_at_names_no_version(plan):
    with pytest.raises(RefError, match="names no version"):
        resolve(f"{policy(plan)}@")
    _one_line_exit_2(["eval", f"{policy(plan)}@", "-"], "names no version")


def test_a_commit_a_shallow_clone_does_not_hold_is_one_line(plan, tmp_path):
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", Path(plan.working_tree_dir).as_uri(), str(shallow)],
        check=True,
        capture_output=True,
    )
    clone = git.Repo(shallow)
    with pytest.raises(RefError, match="shallow clone"):
        resolve(f"{policy(clone)}@HEAD~1")
    with pytest.raises(RefError, match="shallow clone"):
        load_library_version(f"{shallow / 'medical'}@HEAD~1")
    _one_line_exit_2(["diff", f"{policy(clone)}@HEAD~1", policy(clone)], "shallow clone")


def test_a_policy_file_with_an_at_in_its_name(tmp_path):
    repo = new_repo(tmp_path / "plan")
    commit(repo, "medical/canes@home.policy", canes(1, "2025-01-01"), "revision 1")
    commit(repo, "medical/canes@home.policy", canes(2, "2025-06-01"), "revision 2")
    path = policy(repo, "medical/canes@home.policy")
    assert resolve(f"{path}@r1").revision.number == "1"
    assert resolve(f"{path}@HEAD~1").revision.number == "1"
    result = CliRunner().invoke(main, ["diff", f"{path}@r1", path, "--format", "json"])
    assert result.exit_code == 0, result.output


def test_a_folder_with_an_at_in_its_name(tmp_path):
    repo = new_repo(tmp_path / "plan")
    commit(repo, "med@plan/canes.policy", canes(1, "2025-01-01"), "revision 1")
    folder = str(Path(repo.working_tree_dir) / "med@plan")
    assert list(load_library_version(f"{folder}/@HEAD").library.policies) == ["canes"]
    result = CliRunner().invoke(main, ["diff", f"{folder}/@HEAD", folder])
    assert result.exit_code == 0, result.output
    assert "Library" in result.output


def test_a_name_that_is_both_a_tag_and_a_branch_is_not_guessed(plan):
    plan.create_tag("published", ref="HEAD~1")
    plan.create_head("published", "HEAD")
    with pytest.raises(RefError, match="both a tag and a branch"):
        resolve(f"{policy(plan)}@published")
    assert resolve(f"{policy(plan)}@tags/published").revision.number == "1"
    assert resolve(f"{policy(plan)}@heads/published").revision.number == "2"
    _one_line_exit_2(["eval", f"{policy(plan)}@published", "-"], "both a tag and a branch")


def test_a_committed_policy_that_is_not_utf8_is_an_error_at_its_byte(plan):
    text = canes(3, "2025-09-01").replace('"Canes"\n  revision', '"Canes \xe9"\n  revision')
    commit(plan, "medical/canes.policy", text.encode("latin-1"), "revision 3, saved as Latin-1")
    with pytest.raises(PolicyError) as raised:
        resolve(f"{policy(plan)}@r3")
    [problem] = raised.value.diagnostics
    assert (problem.line, problem.column, problem.code) == (3, 21, "unreadable-file")
    result = CliRunner().invoke(main, ["eval", f"{policy(plan)}@HEAD", "-"], input="")
    assert result.exit_code == 1
    assert "canes.policy:3:21: error[unreadable-file]" in result.output
    assert "3 | policy canes" in result.output and "^" in result.output
    # The history lists it; the earlier revisions still load.
    assert [r.number for r in history(policy(plan))] == ["3", "2", "1"]
    assert resolve(f"{policy(plan)}@r2").revision.number == "2"


# ---------------------------------------------------------------- history import


@pytest.fixture
def archive(tmp_path) -> Path:
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "a.policy").write_text(canes(1, "2025-01-01"))
    (folder / "b.policy").write_text(canes(2, "2025-06-01"))
    return folder


def test_import_into_a_folder_is_refused(archive, tmp_path):
    repo = new_repo(tmp_path / "plan")
    with pytest.raises(RefError, match="is not a policy file"):
        import_history(str(archive), repo.working_tree_dir)
    _one_line_exit_2(["history", "import", str(archive), "--into", repo.working_tree_dir], "is not a policy file")


def test_import_of_two_files_with_one_revision_is_refused(archive, tmp_path):
    (archive / "c.policy").write_text(canes(2, "2025-06-01").replace("E0100", "E0105"))
    repo = new_repo(tmp_path / "plan")
    with pytest.raises(RefError, match="both carry revision 2"):
        import_history(str(archive), policy(repo))
    assert not repo.head.is_valid()


def test_import_leaves_staged_and_uncommitted_changes_alone(archive, plan):
    target = Path(policy(plan))
    other = Path(plan.working_tree_dir) / "notes.txt"
    other.write_text("not ready")
    plan.index.add(["notes.txt"])
    with pytest.raises(RefError, match="staged changes"):
        import_history(str(archive), str(target))
    plan.index.remove(["notes.txt"])
    target.write_text(target.read_text() + "# an edit in progress\n")
    with pytest.raises(RefError, match="changes not committed"):
        import_history(str(archive), str(target))
    assert target.read_text().endswith("# an edit in progress\n")
    assert len(list(plan.iter_commits())) == 2


def test_importing_older_revisions_keeps_the_newer_policy_in_force(tmp_path):
    repo = new_repo(tmp_path / "plan")
    commit(repo, "medical/canes.policy", canes(3, "2025-09-01"), "revision 3")
    older = tmp_path / "older"
    older.mkdir()
    (older / "1.policy").write_text(canes(1, "2025-01-01"))
    (older / "2.policy").write_text(canes(2, "2025-06-01"))
    revisions = import_history(str(older), policy(repo))
    assert [r.number for r in revisions] == ["3", "2", "1"]
    assert "revision 3 dated" in Path(policy(repo)).read_text()
    assert "revision 3 dated" in (repo.head.commit.tree / "medical/canes.policy").data_stream.read().decode()


# ---------------------------------------------------------------- the language server

needs_lsp = pytest.mark.skipif(
    importlib.util.find_spec("pygls") is None or importlib.util.find_spec("pytest_lsp") is None,
    reason="the lsp extra is not installed",
)

if importlib.util.find_spec("pygls") is not None and importlib.util.find_spec("pytest_lsp") is not None:
    import pytest_lsp
    from lsprotocol import types
    from pygls.uris import from_fs_path
    from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

    @pytest_lsp.fixture(
        scope="module",
        config=ClientServerConfig(server_command=[sys.executable, "-m", "medpol.cli", "lsp"]),
    )
    async def lsp(lsp_client: LanguageClient):
        await lsp_client.initialize_session(types.InitializeParams(capabilities=client_capabilities("neovim")))
        yield
        await lsp_client.shutdown_session()


async def _diagnostics(client, uri: str) -> list:
    for _ in range(60 * 50):
        if uri in client.diagnostics:
            return client.diagnostics[uri]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no diagnostics for {uri}; published for {list(client.diagnostics)}")


@needs_lsp
@pytest.mark.asyncio(loop_scope="module")
async def test_a_document_whose_uri_is_percent_encoded_is_served(lsp, tmp_path):
    folder = tmp_path / "my policies"
    folder.mkdir()
    path = folder / "canes.policy"
    path.write_text(canes(1, "2025-01-01"))
    uri = from_fs_path(str(path))
    assert "%20" in uri
    lsp.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="medpol", version=1, text=canes(1, "2025-01-01"))
        )
    )
    # Published under the editor's own spelling of the URI, and the document is found by it.
    assert list(await _diagnostics(lsp, uri)) == []
    hover = await lsp.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri), position=types.Position(6, 4))
    )
    assert hover is not None and "walks_unaided" in hover.contents.value
    outline = await lsp.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri))
    )
    assert outline


@needs_lsp
@pytest.mark.asyncio(loop_scope="module")
async def test_a_change_to_a_document_not_open_is_ignored(lsp, tmp_path):
    uri = from_fs_path(str(tmp_path / "never-opened.policy"))
    lsp.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="policy x")],
        )
    )
    # The server goes on serving, and has shown no error in the editor.
    outline = await lsp.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri))
    )
    assert outline is None
    assert not [m for m in lsp.messages if m.type == types.MessageType.Error], lsp.messages


def test_history_shows_control_characters_in_a_note_as_escapes(tmp_path):
    # An escape sequence in a revision's note would restyle the terminal the table is read in.
    repo = new_repo(tmp_path / "plan")
    text = canes(1, "2025-01-01").replace(
        "effective 2025-01-01\n", 'effective 2025-01-01\n    note "plain \x1b[31mred\x1b[0m"\n'
    )
    commit(repo, "medical/canes.policy", text, "revision 1")
    result = CliRunner().invoke(main, ["history", policy(repo)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "plain \\x1b[31mred\\x1b[0m" in result.output
