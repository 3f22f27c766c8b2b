"""What an editor asks of a policy (medpol.authoring.editing), without a client: completion in the
places the language server tests do not reach, and `medpol lsp` without its extra."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from click.testing import CliRunner

from medpol.authoring import editing
from medpol.cli.main import main as cli
from medpol.engine.library import check_files

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
SEATING = POLICIES / "wheelchair-seating.policy"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _library(path: Path) -> editing.LibraryView:
    return editing.LibraryView(str(path), lambda p: Path(p).read_text(encoding="utf-8"))


def _complete(path: Path, line_text: str) -> set[str]:
    """The labels offered at the end of `line_text`, typed as a new last line of the policy."""
    text = _read(path) + line_text
    lines = text.split("\n")
    analysis = editing.analyse(_read(path), str(path))
    found = editing.completions(text, len(lines) - 1, len(lines[-1]), analysis, _library(path))
    return {c.label for c in found}


def test_completion_of_categories_policies_criteria_and_types():
    assert _complete(SEATING, "    deny E2601 as ") == set(editing.CATEGORIES)
    assert "manual-wheelchair-bases" in _complete(SEATING, "    refer E2601 to policy ")
    assert "basic_coverage of manual-wheelchair-bases" in _complete(SEATING, "      meets ")
    assert _complete(SEATING, "      meets basic_coverage of ") == {"manual-wheelchair-bases"}
    text = _read(SEATING).replace("\nfacts\n", "\nfacts\n  new_fact: \n", 1)
    lines = text.split("\n")
    row = lines.index("  new_fact: ")
    found = editing.completions(text, row, len(lines[row]), editing.analyse(_read(SEATING), str(SEATING)))
    assert {c.label for c in found} == set(editing.TYPES)


def test_no_completion_inside_a_passage():
    assert _complete(SEATING, '    "The beneficiary has ') == set()


def test_the_check_of_a_text_in_an_editor_is_the_check_of_the_file(tmp_path: Path):
    # The same pipeline: a policy's text given for its path is checked as the file would be.
    text = _read(SEATING).replace("meets basic_coverage of", "meets basic_coverrage of", 1)
    path = tmp_path / SEATING.name
    for file in POLICIES.glob("*"):
        if file.suffix in (".policy", ".txt"):
            (tmp_path / file.name).write_bytes(file.read_bytes())
    in_editor = check_files([str(path)], (), {str(path): text})
    path.write_text(text, encoding="utf-8")
    on_disk = check_files([str(path)])
    assert in_editor == on_disk
    assert [d.code for d in in_editor[0][1]] == ["undefined-criteria"]


def test_without_the_extra_medpol_lsp_names_it_and_exits_2(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pygls" else real(name, *a))
    result = CliRunner().invoke(cli, ["lsp"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: `medpol lsp` needs the lsp extra: pip install 'medpol[lsp]'"
