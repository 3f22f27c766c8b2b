"""Revisions in git: history by revision header, references to versions, and the two clocks."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import git
import pytest
from click.testing import CliRunner

from medpol.api import compile_text, load_policy
from medpol.cli.main import main
from medpol.history.revisions import RefError, history, import_history, resolve

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"
SOURCE = ROOT / "policies" / "external-infusion-pump-rev22.txt"
CD19_CLAIM = json.loads((ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl").read_text().splitlines()[0])

J3 = """          item 3 cd19_ph_negative effective 2026-01-25
            "Effective 1-25-26 Blinatumomab is added to adult and pediatric members 1 month or older with CD19 \
positive Philadelphia chromosome-negative B Cell precursor acute lymphoblastic leukemia (ALL)."
            all_setting is cd19_ph_negative
            age >= 1 month
            cd19_positive
            ph_negative
"""


def revision_text(number: int, dated: str) -> str:
    """Revision 22's text under another revision header, without the 1-25-26 clause before 22."""
    text = POLICY.read_text()
    old_header = "  revision 22 dated 2025-12-15 effective 2026-01-25\n"
    assert old_header in text
    if number == 22:
        return text
    text = text.replace(old_header, f"  revision {number} dated {dated} effective {dated}\n")
    assert J3 in text
    return text.replace(J3, "")


@pytest.fixture
def repo(tmp_path):
    """A policy repository whose revision 22 was committed before its older revisions."""
    repo = git.Repo.init(tmp_path / "plans")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Policy Team")
        cfg.set_value("user", "email", "policy@example.org")
    folder = Path(repo.working_tree_dir) / "medical"
    folder.mkdir()
    shutil.copy(SOURCE, folder / SOURCE.name)
    policy = folder / "pump.policy"

    def commit(text: str, message: str) -> str:
        policy.write_text(text)
        repo.index.add([str(policy.relative_to(repo.working_tree_dir)), f"medical/{SOURCE.name}"])
        return repo.index.commit(message).hexsha

    commit(revision_text(22, "2025-12-15"), "revision 22")
    commit(revision_text(18, "2022-12-07"), "import revision 18")
    commit(revision_text(21, "2025-12-11"), "import revision 21")
    commit(revision_text(21, "2025-12-11").replace("# External", "#  External"), "revision 21, a typo fixed")
    last = commit(revision_text(22, "2025-12-15"), "back to revision 22")
    repo.create_tag("published-22", ref=last)
    return policy


def test_history_reads_revisions_by_header_not_commit_order(repo):
    revisions = history(str(repo))
    assert [r.number for r in revisions] == ["22", "21", "18"]
    assert revisions[0].dated == datetime.date(2025, 12, 15)
    assert revisions[0].effective == datetime.date(2026, 1, 25)
    assert revisions[0].author == "Policy Team"


def test_several_commits_of_one_revision_are_its_last_commit(repo):
    r21 = next(r for r in history(str(repo)) if r.number == "21")
    commit = git.Repo(repo.parent.parent).commit(r21.commit)
    assert commit.message == "revision 21, a typo fixed"


def test_uncommitted_changes_show_as_the_working_tree(repo):
    repo.write_text(repo.read_text() + "\n# a note in progress\n")
    revisions = history(str(repo))
    assert revisions[0].commit is None and revisions[0].label == "r22 (working tree)"
    assert [r.number for r in revisions[1:]] == ["22", "21", "18"]


def test_history_works_from_any_folder(repo, monkeypatch):
    monkeypatch.chdir(repo.parent)
    assert [r.number for r in history("pump.policy")] == ["22", "21", "18"]


@pytest.mark.parametrize(
    "spec,number",
    [
        ("r21", "21"),
        ("r18", "18"),
        ("2025-12-20", "22"),
        ("2025-12-11", "21"),
        ("2024-01-01", "18"),
        ("published-22", "22"),
    ],
)
def test_references_name_versions(repo, spec, number):
    version = resolve(f"{repo}@{spec}")
    assert version.revision.number == number
    compiled = compile_text(version.text, version.path, read_source=version.source_reader)
    assert compiled.revision == number


def test_a_commit_reference(repo):
    r18 = next(r for r in history(str(repo)) if r.number == "18")
    assert resolve(f"{repo}@{r18.commit[:8]}").revision.number == "18"


def test_two_clocks_service_date_and_known_at(repo):
    """Served 2026-02-10: denied as known before revision 22 was published, covered after."""
    known_before = load_policy(str(repo), known_at=datetime.date(2025, 12, 12))
    known_after = load_policy(str(repo), known_at=datetime.date(2026, 1, 1))
    assert known_before.revision == "21" and known_after.revision == "22"
    assert {line["outcome"] for line in known_before.decide(CD19_CLAIM)["lines"]} == {"denied"}
    assert {line["outcome"] for line in known_after.decide(CD19_CLAIM)["lines"]} == {"covered"}
    # Inside revision 22, the date of service still decides: before 2026-01-25 the clause is not in effect.
    assert {line["outcome"] for line in known_after.decide(CD19_CLAIM, datetime.date(2026, 1, 24))["lines"]} == {
        "denied"
    }


def test_known_at_in_the_cli(repo, tmp_path):
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps(CD19_CLAIM))
    runner = CliRunner()
    before = runner.invoke(main, ["eval", str(repo), str(claim), "--known-at", "2025-12-12"])
    after = runner.invoke(main, ["eval", str(repo), str(claim), "--known-at", "2026-01-01"])
    assert json.loads(before.stdout)["revision"] == "21"
    assert json.loads(after.stdout)["lines"][0]["outcome"] == "covered"


@pytest.mark.parametrize(
    "ref,message",
    [
        ("{p}@r99", "has no revision 99"),
        ("{p}@2020-01-01", "no revision of"),
        ("{p}@no-such-tag", "is not a revision"),
        ("{outside}@r21", "is not in a git repository"),
    ],
)
def test_bad_references_give_one_line_and_exit_2(repo, tmp_path_factory, ref, message):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.policy"
    outside.write_text("")
    ref = ref.format(p=repo, outside=outside)
    with pytest.raises(RefError, match=message):
        resolve(ref)
    result = CliRunner().invoke(main, ["eval", ref, "-"], input="")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output


def test_history_import_builds_history_from_a_folder(tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    for number, dated in (("22", "2025-12-15"), ("18", "2022-12-07"), ("21", "2025-12-11")):
        (archive / f"rev{number}.policy").write_text(revision_text(int(number), dated))
    repo = git.Repo.init(tmp_path / "repo")
    target = Path(repo.working_tree_dir) / "policies" / "pump.policy"
    target.parent.mkdir()
    shutil.copy(SOURCE, target.parent)
    revisions = import_history(str(archive), str(target))
    assert [r.number for r in revisions] == ["22", "21", "18"]
    commits = list(repo.iter_commits())
    assert [c.authored_datetime.date().isoformat() for c in reversed(commits)] == [
        "2022-12-07",
        "2025-12-11",
        "2025-12-15",
    ]


def test_cli_history_lists_newest_first(repo):
    result = CliRunner().invoke(main, ["history", str(repo)])
    assert result.exit_code == 0
    rows = [line.split()[0] for line in result.output.splitlines()[1:]]
    assert rows == ["22", "21", "18"]


def test_every_revision_in_this_repository_compiles():
    """Old revisions stay readable: each one in git compiles with today's compiler."""
    try:
        revisions = history(str(POLICY), include_working_tree=False)
    except RefError:
        pytest.skip("not running inside the project's git repository")
    assert revisions, "the policy has committed revisions"
    for rev in revisions:
        version = resolve(f"{POLICY}@r{rev.number}")
        compiled = compile_text(version.text, version.path, read_source=version.source_reader)
        assert compiled.revision == rev.number


def test_the_reconstructed_history_reads_in_revision_order():
    try:
        numbers = [r.number for r in history(str(POLICY), include_working_tree=False)]
    except RefError:
        pytest.skip("not running inside the project's git repository")
    if len(numbers) < 6:
        pytest.skip("a shallow clone holds only part of the history")
    assert numbers[:6] == ["22", "21", "18", "16", "15", "13"]


def test_diff_21_to_22_names_the_clause_and_its_date(repo, tmp_path):
    result = CliRunner().invoke(main, ["diff", f"{repo}@r21", f"{repo}@r22", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [changed] = [r for r in report["rules_changed"] if r["id"] == "J.blinatumomab"]
    [item] = changed["items"]
    assert item["name"] == "cd19_ph_negative" and item["change"] == "added" and "2026-01-25" in item["window"]


def test_a_cosmetic_commit_changes_no_rule(repo):
    """r21's two commits differ only in a comment: the diff between them has no rule change."""
    r21 = next(r for r in history(str(repo)) if r.number == "21")
    first = git.Repo(repo.parent.parent).commit(r21.commit).parents[0].hexsha
    result = CliRunner().invoke(main, ["diff", f"{repo}@{first}", f"{repo}@{r21.commit}", "--format", "json"])
    report = json.loads(result.output)
    assert report["summary"]["rule_changes"] == 0 and report["summary"]["code_changes"] == 0


def test_impact_lists_exactly_the_claims_that_flip(repo, tmp_path):
    fixtures = (ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl").read_text()
    claims = tmp_path / "claims.jsonl"
    claims.write_text(fixtures)
    result = CliRunner().invoke(
        main, ["diff", f"{repo}@r21", f"{repo}@r22", "--claims", str(claims), "--format", "json"]
    )
    impact = json.loads(result.output)["impact"]
    flipped = {(line["claim"], line["seq"]) for group in impact["groups"] for line in group["lines"]}
    assert flipped == {
        ("ex-blinatumomab-after-effective-date", 1),
        ("ex-blinatumomab-after-effective-date", 2),
        ("ex-blinatumomab-after-effective-date", 3),
        ("ex-blinatumomab-missing-fact", 1),
        ("ex-blinatumomab-missing-fact", 2),
        ("ex-blinatumomab-missing-fact", 3),
    }
    assert {c["change"]: c["count"] for c in impact["counts"]} == {"denied -> covered": 3, "denied -> pending": 3}


@pytest.mark.parametrize("fmt,marker", [("md", "# "), ("html", "<!DOCTYPE html>"), ("json", '"schema"')])
def test_diff_formats(repo, fmt, marker):
    result = CliRunner().invoke(main, ["diff", f"{repo}@r21", f"{repo}@r22", "--format", fmt])
    assert result.exit_code == 0 and marker in result.output


def test_diff_16_to_18_names_a4224():
    try:
        numbers = [r.number for r in history(str(POLICY), include_working_tree=False)]
    except RefError:
        pytest.skip("not running inside the project's git repository")
    if not {"16", "18"} <= set(numbers):
        pytest.skip("a shallow clone holds only part of the history")
    result = CliRunner().invoke(main, ["diff", f"{POLICY}@r16", f"{POLICY}@r18", "--format", "json"])
    report = json.loads(result.output)
    [group_two] = [t for t in report["tables"] if t["name"] == "group_two"]
    assert [(e["entry"], e["change"]) for e in group_two["entries"]] == [("A4224", "removed")]
