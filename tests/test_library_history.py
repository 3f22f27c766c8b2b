"""A library in git: the history of every policy of a folder, and two versions of the library
compared policy by policy, with the claim lines that flip."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from medpol.cli.main import main
from medpol.compiler.diff import diff_libraries
from medpol.dsl.diagnostics import PolicyError
from medpol.history import report
from medpol.history.impact import library_impact
from medpol.history.revisions import RefError, library_history, load_library_version

CANES_1 = """\
medpol 1

policy canes "Canes"
  revision 1 dated 2025-01-01 effective 2025-01-01

facts
  walks_unaided: bool
    "Can the member walk without help?"

codes canes "Canes"
  E0100 "cane"
  E0135 "walker, folding"
  A4637 "replacement tip"

codes quad "Quad canes"
  E0105 "quad cane"

precedence
  deny as not covered
  deny as not reasonable and necessary
  cover

section ONE "Canes"
  rule cane
    cover canes unless walks_unaided
  rule cane_denied
    deny canes as not reasonable and necessary when walks_unaided
  rule quad
    deny quad as not covered
"""

# Revision 2 covers quad canes, and leaves the folding walker to the walker policy.
CANES_2 = (
    CANES_1.replace(
        "revision 1 dated 2025-01-01 effective 2025-01-01", "revision 2 dated 2025-06-01 effective 2025-07-01"
    )
    .replace('  E0135 "walker, folding"\n', "")
    .replace("    deny quad as not covered\n", "    cover quad unless walks_unaided\n")
)

WALKERS_1 = """\
medpol 1

policy walkers "Walkers"
  revision 1 dated 2025-06-01 effective 2025-06-01

facts
  walks_unaided: bool
    "Can the member walk without help?"

codes walkers "Walkers"
  E0130 "walker, rigid"
  E0135 "walker, folding"
  A4637 "replacement tip"

precedence
  deny as not reasonable and necessary
  cover

section ONE "Walkers"
  rule walker
    cover walkers unless walks_unaided
  rule walker_denied
    deny walkers as not reasonable and necessary when walks_unaided
"""


def commit(repo: git.Repo, files: dict[str, str | None], message: str, tag: str | None = None) -> str:
    """Write (or, for None, delete) files of the repository and commit them."""
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        path = root / name
        if text is None:
            repo.index.remove([name], working_tree=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        repo.index.add([name])
    sha = repo.index.commit(message).hexsha
    if tag:
        repo.create_tag(tag, ref=sha)
    return sha


def new_repo(path: Path) -> git.Repo:
    repo = git.Repo.init(path)
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Policy Team")
        cfg.set_value("user", "email", "policy@example.org")
    return repo


@pytest.fixture
def repo(tmp_path) -> git.Repo:
    """v1: canes r1. v2: canes r2 and walkers r1. v3: walkers removed, canes moved to a subfolder."""
    repo = new_repo(tmp_path / "plan")
    commit(repo, {"medical/canes.policy": CANES_1}, "canes revision 1", tag="v1")
    commit(repo, {"medical/canes.policy": CANES_2, "medical/walkers.policy": WALKERS_1}, "canes r2, walkers", tag="v2")
    commit(
        repo,
        {"medical/walkers.policy": None, "medical/canes.policy": None, "medical/mobility/canes.policy": CANES_2},
        "walkers withdrawn; canes filed under mobility",
        tag="v3",
    )
    return repo


def folder(repo: git.Repo) -> str:
    return str(Path(repo.working_tree_dir) / "medical")


def claim(claim_id: str, code: str, **facts) -> dict:
    return {
        "id": claim_id,
        "member": {"id": f"M-{claim_id}", "birth_date": "1950-01-01", "line_of_business": "commercial"},
        "diagnoses": [],
        "lines": [{"seq": 1, "hcpcs": code, "service_date": "2025-08-01"}],
        "facts": facts,
    }


CLAIMS = [
    claim("quad", "E0105", walks_unaided=False),  # canes r1 denies it, r2 covers it
    claim("walker", "E0130", walks_unaided=False),  # no policy of v1 governs it; walkers covers it
    claim("folding", "E0135", walks_unaided=False),  # covered by canes, then by walkers
    claim("cane", "E0100", walks_unaided=False),  # covered by canes in both
    {"id": "malformed", "lines": []},  # in error under both versions
]


# ---------------------------------------------------------------- history


def test_history_of_a_folder_groups_every_policy_by_id(repo):
    found = {h.policy: h for h in library_history(folder(repo))}
    assert sorted(found) == ["canes", "walkers"]
    # Moved to a subfolder, the policy keeps its revisions under both paths.
    assert [r.number for r in found["canes"].revisions] == ["2", "1"]
    assert set(found["canes"].paths) == {"medical/canes.policy", "medical/mobility/canes.policy"}
    assert found["canes"].removed is None
    assert [r.number for r in found["walkers"].revisions] == ["1"]
    removed = found["walkers"].removed
    assert removed is not None and repo.commit(removed.commit).message.startswith("walkers withdrawn")


def test_uncommitted_changes_and_new_files_show_as_the_working_tree(repo):
    root = Path(repo.working_tree_dir)
    (root / "medical" / "walkers.policy").write_text(WALKERS_1, encoding="utf-8")  # back, not committed
    found = {h.policy: h for h in library_history(folder(repo))}
    walkers = found["walkers"]
    assert walkers.removed is None
    assert [(r.number, r.commit is None) for r in walkers.revisions] == [("1", True), ("1", False)]


def test_cli_history_of_a_folder(repo):
    result = CliRunner().invoke(main, ["history", folder(repo)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["policy", "revision", "dated", "effective", "commit", "description"]
    rows = [line.split()[:3] for line in lines[1:] if line.strip()]
    assert rows == [
        ["canes", "2", "2025-06-01"],
        ["canes", "1", "2025-01-01"],
        ["walkers", "removed", repo.commit("v3").hexsha[:10]],
        ["walkers", "1", "2025-06-01"],
    ]
    assert "" in lines  # a blank line between policies
    # One file keeps its own history, as before.
    single = CliRunner().invoke(main, ["history", str(Path(folder(repo)) / "mobility" / "canes.policy")])
    assert single.exit_code == 0 and [line.split()[0] for line in single.output.splitlines()[1:]] == ["2"]


def test_cli_history_of_a_file_that_never_existed(repo):
    result = CliRunner().invoke(main, ["history", str(Path(folder(repo)) / "crutches.policy")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_cli_history_of_a_folder_without_policies_or_outside_git(repo, tmp_path):
    empty = Path(repo.working_tree_dir) / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["history", str(empty)])
    assert result.exit_code == 2 and "no .policy files" in result.output and "Traceback" not in result.output
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canes.policy").write_text(CANES_1, encoding="utf-8")
    result = CliRunner().invoke(main, ["history", str(outside)])
    assert result.exit_code == 2 and "is not in a git repository" in result.output


# ---------------------------------------------------------------- versions of a library


def test_a_library_version_from_a_commit_a_tag_and_the_working_tree(repo):
    base = folder(repo)
    v1 = load_library_version(f"{base}@v1")
    assert {pid: p.revision for pid, p in v1.library.policies.items()} == {"canes": "1"}
    assert v1.title == "v1" and v1.ref("medical/canes.policy") == "medical/canes.policy@v1"
    v2 = load_library_version(f"{base}@{repo.commit('v2').hexsha}")
    assert {pid: p.revision for pid, p in v2.library.policies.items()} == {"canes": "2", "walkers": "1"}
    now = load_library_version(base)
    assert now.spec is None and now.title == "working tree" and list(now.library.policies) == ["canes"]


def test_a_library_version_on_a_date_is_each_policy_as_published_then(tmp_path):
    """As `medpol eval --known-at` reads the folder: a policy not yet published is left out."""
    repo = new_repo(tmp_path / "plan")
    commit(repo, {"medical/canes.policy": CANES_1}, "canes revision 1")
    commit(repo, {"medical/canes.policy": CANES_2, "medical/walkers.policy": WALKERS_1}, "canes r2, walkers")
    base = folder(repo)
    early = load_library_version(f"{base}@2025-05-01")
    assert {pid: p.revision for pid, p in early.library.policies.items()} == {"canes": "1"}
    assert len(early.left_out) == 1 and "walkers.policy" in early.left_out[0]
    later = load_library_version(f"{base}@2025-06-01")
    assert {pid: p.revision for pid, p in later.library.policies.items()} == {"canes": "2", "walkers": "1"}
    result = CliRunner().invoke(main, ["diff", f"{base}@2025-05-01", f"{base}@2025-06-01"])
    assert result.exit_code == 0, result.output
    assert "Not in 2025-05-01:" in result.stdout and "| added | `walkers` |" in result.stdout


@pytest.mark.parametrize(
    "spec,message",
    [
        ("no-such-tag", "is not a commit, a tag or a date"),
        ("r2", "would name a revision of one policy"),
        ("2025-02-30", "is not a date"),
        ("", "names no version"),
    ],
)
def test_bad_library_references(repo, spec, message):
    with pytest.raises(RefError, match=message):
        load_library_version(f"{folder(repo)}@{spec}")
    result = CliRunner().invoke(main, ["diff", f"{folder(repo)}@{spec}", folder(repo)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_a_folder_missing_at_a_version(repo):
    with pytest.raises(RefError, match="does not exist at `v1`"):
        load_library_version(f"{folder(repo)}/mobility/@v1")


# ---------------------------------------------------------------- diff of two versions


def versions(repo, a: str, b: str):
    old, new = load_library_version(f"{folder(repo)}@{a}"), load_library_version(f"{folder(repo)}@{b}")
    models = [{pid: p.model for pid, p in v.library.policies.items()} for v in (old, new)]
    return old, new, diff_libraries(*models)


def test_library_diff_names_the_policies_added_and_changed(repo):
    _, _, diff = versions(repo, "v1", "v2")
    assert [p.policy for p in diff.added] == ["walkers"]
    assert diff.added[0].codes == ("A4637", "E0130", "E0135")
    assert diff.removed == () and diff.unchanged == ()
    [canes] = diff.changed
    assert (canes.policy, canes.before.revision, canes.after.revision) == ("canes", "1", "2")
    # The policy's own diff, as `medpol diff FILE@A FILE@B` gives it.
    assert [r.id for r in canes.diff.rules_changed] == ["quad"]
    assert [e.entry for t in canes.diff.tables for e in t.entries] == ["E0135"]


def test_library_diff_a_policy_removed_and_one_moved_unchanged(repo):
    _, _, diff = versions(repo, "v2", "v3")
    assert [p.policy for p in diff.removed] == ["walkers"]
    assert [p.policy for p in diff.unchanged] == ["canes"] and diff.changed == ()


def test_library_impact_names_the_lines_that_flip_and_the_policy_before_and_after(repo):
    old, new, _ = versions(repo, "v1", "v2")
    found = library_impact(old.library, new.library, CLAIMS, unreadable=["claims.jsonl:6: not valid JSON"])
    flipped = {
        (line.claim, line.seq, line.hcpcs, line.policy_before, line.policy_after, line.change) for line in found.changed
    }
    assert flipped == {
        ("quad", 1, "E0105", "canes", "canes", "denied -> covered"),
        ("walker", 1, "E0130", None, "walkers", "not_applicable -> covered"),
    }
    quad = next(line for line in found.changed if line.claim == "quad")
    assert (quad.revision_before, quad.revision_after, quad.before.category) == ("1", "2", "not_covered")
    assert [(g.policy, len(g.lines)) for g in found.groups] == [("canes", 1), ("walkers", 1)]
    assert [(m.claim, m.policy_before, m.policy_after, m.change) for m in found.moved] == [
        ("folding", "canes", "walkers", "covered -> covered")
    ]
    assert (found.claims, found.lines, found.claims_changed, found.lines_changed) == (5, 4, 2, 2)
    assert found.claims_in_error == 1 and found.unreadable == ("claims.jsonl:6: not valid JSON",)


def write_claims(path: Path) -> Path:
    lines = [json.dumps(c) for c in CLAIMS]
    lines.insert(2, "{not json")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_library_diff_in_markdown(repo, tmp_path):
    claims = write_claims(tmp_path / "claims.jsonl")
    base = folder(repo)
    result = CliRunner().invoke(main, ["diff", f"{base}/@v1", f"{base}/@v2", "--claims", str(claims)])
    assert result.exit_code == 0, result.output
    md = result.stdout
    assert "# Library `medical`: v1 → v2" in md
    assert "| added | `walkers` | Walkers | | revision 1 |" in md
    assert "| changed | `canes` | Canes | revision 1 | revision 2 |" in md
    assert "Rules changed: `quad`" in md
    assert f"medpol diff {base}/canes.policy@v1 {base}/canes.policy@v2" in md
    assert "| quad | 1 | E0105 | `canes` r1 | denied (not covered) | `canes` r2 | covered |" in md
    assert "| walker | 1 | E0130 | none | not_applicable | `walkers` r1 | covered |" in md
    assert "| folding | 1 | E0135 | covered | `canes` r1 | `walkers` r1 |" in md
    # The unreadable line is counted and named, in the report and on stderr.
    assert "**1 claim line could not be read**" in md and f"{claims}:3: not valid JSON" in md
    assert "could not be read" in result.stderr
    assert "1 claim is in error as a whole under both versions" in md


def test_cli_library_diff_in_json_and_html(repo, tmp_path):
    claims = write_claims(tmp_path / "claims.jsonl")
    base = folder(repo)
    result = CliRunner().invoke(main, ["diff", f"{base}@v1", base, "--claims", str(claims), "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "medpol.library-diff/1"
    assert (data["a"]["title"], data["b"]["title"]) == ("v1", "working tree")
    assert data["summary"] == {
        "empty": False,
        "policies_added": 0,
        "policies_removed": 0,
        "policies_changed": 1,
        "policies_unchanged": 0,
    }
    [canes] = data["changed"]
    assert canes["diff"]["schema"] == "medpol.diff/1" and canes["diff"]["summary"]["rules_changed"] == 1
    assert canes["command"] == f"medpol diff {base}/canes.policy@v1 {base}/mobility/canes.policy"
    assert len(data["impact"]["unreadable"]) == 1
    out = tmp_path / "diff.html"
    result = CliRunner().invoke(
        main, ["diff", f"{base}@v1", f"{base}@v2", "--claims", str(claims), "--format", "html", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "walkers" in html and "not valid JSON" in html
    assert "{not json" not in html or "&lt;" not in html  # the claim text is escaped, never markup


def test_cli_library_diff_with_nothing_changed(repo):
    base = folder(repo)
    result = CliRunner().invoke(main, ["diff", f"{base}@v3", base])
    assert result.exit_code == 0 and "No policy was added, removed or changed in meaning." in result.output


def test_cli_library_diff_usage_errors(repo, tmp_path):
    base = folder(repo)
    runner = CliRunner()
    mixed = runner.invoke(main, ["diff", f"{base}@v1", f"{base}/mobility/canes.policy"])
    assert mixed.exit_code == 2 and "compare a folder with a folder" in mixed.output
    missing = runner.invoke(main, ["diff", f"{base}@v1", base, "--claims", str(tmp_path / "none.jsonl")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = runner.invoke(main, ["diff", str(empty), str(empty)])
    assert nothing.exit_code == 2 and "no .policy files" in nothing.output


def test_cli_library_diff_with_a_policy_error_exits_1(repo):
    base = folder(repo)
    (Path(base) / "mobility" / "canes.policy").write_text(
        CANES_2.replace("cover quad", "cover quadd"), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["diff", f"{base}@v2", base])
    assert result.exit_code == 1 and "no diff was made" in result.output and "Traceback" not in result.output


def test_the_single_policy_diff_reports_unreadable_claim_lines(repo, tmp_path):
    claims = write_claims(tmp_path / "claims.jsonl")
    policy = f"{folder(repo)}/canes.policy"
    result = CliRunner().invoke(
        main, ["diff", f"{policy}@v1", f"{policy}@v2", "--claims", str(claims), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    impact = json.loads(result.stdout)["impact"]
    assert impact["unreadable"] == [
        f"{claims}:3: not valid JSON: " + impact["unreadable"][0].split("not valid JSON: ")[1]
    ]
    assert impact["claims"] == 5
    md = CliRunner().invoke(main, ["diff", f"{policy}@v1", f"{policy}@v2", "--claims", str(claims)]).stdout
    assert "**1 claim line could not be read**" in md


def test_library_reports_are_deterministic(repo):
    old, new, diff = versions(repo, "v1", "v2")
    found = library_impact(old.library, new.library, CLAIMS, as_of=datetime.date(2025, 8, 1))
    sides = {"library": "medical", "a": report.Side("v1", "v1"), "b": report.Side("v2", "v2")}
    again = versions(repo, "v1", "v2")[2]
    assert report.render_library_markdown(diff, found, **sides) == report.render_library_markdown(again, found, **sides)
    assert report.render_library_html(diff, found, **sides) == report.render_library_html(again, found, **sides)
    assert "as of 2025-08-01" in report.render_library_markdown(diff, found, **sides)


def test_a_library_version_reads_its_settings_as_committed(repo):
    base = folder(repo)
    commit(repo, {"medical/library.toml": 'name = "Mobility aids"\n'}, "name the library", tag="named")
    assert load_library_version(f"{base}@named").library.name == "Mobility aids"
    assert load_library_version(f"{base}@v3").library.name == "medical"
    commit(repo, {"medical/library.toml": 'precedence = ["covered"]\n'}, "a bad order", tag="bad")
    with pytest.raises(PolicyError) as err:
        load_library_version(f"{base}@bad")
    [problem] = err.value.diagnostics
    assert problem.code == "bad-library-settings" and problem.path.endswith("library.toml@bad")
    # Shown with the committed line under it and a caret, as the working tree's settings are.
    shown = err.value.render().splitlines()
    assert shown[0].startswith(f"{problem.path}:1:") and shown[1] == '1 | precedence = ["covered"]'
    assert shown[2].strip().startswith("^")
