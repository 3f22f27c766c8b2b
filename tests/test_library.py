"""A library of policies: routing by code, referrals, criteria read across policies,
the library-wide outcome rule, and the checks that link policies together."""

from __future__ import annotations

import datetime
import pickle
import textwrap
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from medpol.api import load_policy
from medpol.cli.main import main
from medpol.dsl.diagnostics import PolicyError
from medpol.engine.library import load_library

HEAD = """\
medpol 1

policy {id} "{title}"
  revision 1 dated 2026-01-01 effective 2026-01-01
"""

CANES = (
    HEAD
    + """
facts
  walks_unaided: bool
    "Can the member walk without help?"

codes canes "Canes"
  E0100 "cane"
  E0105 "quad cane"

criteria mobility "Mobility criteria"
  not walks_unaided

precedence
  refer
  deny as not reasonable and necessary
  cover

section ONE "Canes"
  rule quad
    refer E0105 to policy quad-canes
  rule cane
    cover E0100 when mobility
  rule cane_denied
    deny E0100 as not reasonable and necessary when walks_unaided
"""
)

QUAD = (
    HEAD
    + """
facts
  walks_unaided: bool
    "Can the member walk without help?"
  balance_impaired: bool
    "Is the member's balance impaired?"

codes quad "Quad canes"
  E0105 "quad cane"

precedence
  deny as not reasonable and necessary
  cover

section ONE "Quad canes"
  rule quad
    cover E0105 when
      meets mobility of canes
      balance_impaired
  rule quad_denied
    deny E0105 as not reasonable and necessary unless meets mobility of canes
"""
)

# A second policy governing E0100, which denies what the first covers.
STRICT = (
    HEAD
    + """
facts
  cane_fitted: bool
    "Was the cane fitted by the supplier?"

codes canes "Canes"
  E0100 "cane"

precedence
  deny as incorrect coding
  cover

section ONE "Fitting"
  rule unfitted
    deny E0100 as incorrect coding unless cane_fitted
  rule fitted
    cover E0100
"""
)


def write(folder, **policies):
    folder.mkdir(exist_ok=True)
    for name, (template, title) in policies.items():
        (folder / f"{name}.policy").write_text(template.format(id=name, title=title), encoding="utf-8")
    return folder


def claim(*codes, **facts):
    return {
        "id": "C-1",
        "member": {"id": "M-1", "birth_date": "1950-01-01", "line_of_business": "commercial"},
        "diagnoses": [],
        "lines": [{"seq": i, "hcpcs": code, "service_date": "2026-03-01"} for i, code in enumerate(codes, 1)],
        "facts": facts,
    }


@pytest.fixture
def library(tmp_path):
    return write(tmp_path / "lib", canes=(CANES, "Canes"), **{"quad-canes": (QUAD, "Quad Canes")})


def test_each_line_is_decided_by_the_policy_governing_its_code(library):
    lib = load_library([library])
    decision = lib.decide(claim("E0100", "A4253", walks_unaided=False))
    cane, strips = decision["lines"]
    assert (cane["outcome"], cane["policy"], cane["revision"]) == ("covered", "canes", "1")
    assert strips == {"seq": 2, "hcpcs": "A4253", "outcome": "not_applicable"}
    assert "policy" not in decision  # a library's decision names its policies line by line


def test_a_referral_into_the_library_ends_in_that_policys_decision(library):
    lib = load_library([library])
    line = lib.decide(claim("E0105", walks_unaided=False, balance_impaired=True))["lines"][0]
    assert (line["outcome"], line["policy"]) == ("covered", "quad-canes")
    assert [(s["policy"], s["outcome"], s["refer_to"]) for s in line["path"]] == [("canes", "refer", "quad-canes")]
    assert line["path"][0]["reasons"][0]["rule"] == "quad"
    denied = lib.decide(claim("E0105", walks_unaided=True, balance_impaired=True))["lines"][0]
    assert (denied["outcome"], denied["policy"], denied["reasons"][0]["rule"]) == (
        "denied",
        "quad-canes",
        "quad_denied",
    )


def test_criteria_of_another_policy_are_read_with_the_claims_facts(library):
    lib = load_library([library])
    pending = lib.decide(claim("E0105", balance_impaired=True))["lines"][0]
    assert (pending["outcome"], pending["missing"]) == ("pending", ["walks_unaided"])
    # Decided on its own, the policy still reads the criteria from the policy beside it,
    # and its referral is its own decision.
    alone = load_policy(library / "quad-canes.policy")
    assert alone.decide(claim("E0105", walks_unaided=False, balance_impaired=True))["lines"][0]["outcome"] == "covered"
    assert "warnings" not in alone.decide(claim("E0105", walks_unaided=False, balance_impaired=True))
    canes = load_policy(library / "canes.policy")
    assert canes.decide(claim("E0105"))["lines"][0]["outcome"] == "refer"


def test_several_policies_most_restrictive_wins_with_every_decision(library):
    write(library, strict=(STRICT, "Strict"))
    lib = load_library([library])
    line = lib.decide(claim("E0100", walks_unaided=False, cane_fitted=False))["lines"][0]
    assert (line["outcome"], line["category"], line["policy"]) == ("denied", "incorrect_coding", "strict")
    assert [(d["policy"], d["outcome"]) for d in line["decisions"]] == [("strict", "denied"), ("canes", "covered")]
    assert {r["policy"] for r in line["reasons"]} == {"strict", "canes"}
    # Pending under one and covered under the other: pending, with what is missing.
    pending = lib.decide(claim("E0100", cane_fitted=True))["lines"][0]
    assert (pending["outcome"], pending["missing"]) == ("pending", ["walks_unaided"])
    covered = lib.decide(claim("E0100", walks_unaided=False, cane_fitted=True))["lines"][0]
    assert covered["outcome"] == "covered" and len(covered["decisions"]) == 2


def test_the_library_may_order_outcomes_itself(library):
    write(library, strict=(STRICT, "Strict"))
    (library / "library.toml").write_text(
        'name = "Cane policies"\n'
        'precedence = ["error", "refer", "covered", "covered in part", "pending", "denied as not covered",'
        ' "denied as incorrect coding", "denied as not reasonable and necessary"]\n'
    )
    lib = load_library([library])
    assert lib.name == "Cane policies"
    line = lib.decide(claim("E0100", walks_unaided=False, cane_fitted=False))["lines"][0]
    assert (line["outcome"], line["policy"]) == ("covered", "canes")


def test_bad_library_settings_are_a_diagnostic(library):
    (library / "library.toml").write_text('precedence = ["covered"]\ncolour = 1\n')
    with pytest.raises(PolicyError) as err:
        load_library([library])
    assert {d.code for d in err.value.diagnostics} == {"bad-library-settings"}


def test_unknown_fact_warnings_speak_of_the_library(library):
    lib = load_library([library])
    decision = lib.decide(claim("E0100", walks_unaided=False, balance_impaired=True, walks_unaide=True))
    assert decision["warnings"] == [
        "`facts.walks_unaide` is not a fact of any policy in the library and was ignored"
        " (did you mean `walks_unaided`?)"
    ]


def test_malformed_claims_and_lines_under_a_library(library):
    lib = load_library([library])
    bad = lib.decide({"id": "C-9", "lines": []})
    assert bad["outcome"] == "error" and bad["claim"] == "C-9" and "field" in bad
    raw = claim("E0100", walks_unaided=False)
    raw["lines"].append({"seq": 2, "service_date": "2026-03-01"})
    raw["lines"].append({"seq": 3, "hcpcs": "E0100", "service_date": "2026-02-30"})
    _, no_code, bad_date = lib.decide(raw)["lines"]
    assert no_code["outcome"] == "error" and no_code["field"] == "lines[1].hcpcs"
    assert bad_date["outcome"] == "error" and bad_date["policy"] == "canes"


def test_a_library_survives_pickling_for_workers(library):
    lib = load_library([library])
    again = pickle.loads(pickle.dumps(lib))
    raw = claim("E0105", "E0100", walks_unaided=False, balance_impaired=True)
    assert again.decide(raw) == lib.decide(raw)
    alone = pickle.loads(pickle.dumps(load_policy(library / "quad-canes.policy")))
    assert alone.decide(raw)["lines"][0]["outcome"] == "covered"


def check(folder, *names):
    paths = [str(folder / n) for n in names] or [str(folder)]
    result = CliRunner().invoke(main, ["check", *paths])
    return result.exit_code, result.output


def test_check_resolves_references_across_the_library(library):
    code, out = check(library)
    assert code == 0, out
    # Criteria read only by another policy are not unused.
    assert "unused-set" not in out


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("to policy quad-canes", "to policy quad-cane"),
            "error[undefined-policy]: `quad-cane` is not a policy of the library",
        ),
        (("of canes", "of cane"), "error[undefined-policy]: `cane` is not a policy of the library"),
        (("mobility of", "mobilty of"), "error[undefined-criteria]: policy `canes` has no criteria `mobilty`"),
    ],
)
def test_unknown_policies_and_criteria_are_diagnostics_with_a_caret(library, edit, expected):
    for file in library.glob("*.policy"):
        file.write_text(file.read_text().replace(*edit))
    code, out = check(library)
    assert code == 1
    assert expected in out
    assert "^" in out.split(expected, 1)[1].splitlines()[2]
    assert "did you mean" in out


def test_a_cycle_of_criteria_is_a_diagnostic_naming_it(library):
    canes = library / "canes.policy"
    canes.write_text(canes.read_text().replace("  not walks_unaided\n", "  meets steady of quad-canes\n"))
    quad = library / "quad-canes.policy"
    quad.write_text(
        quad.read_text().replace(
            "precedence", 'criteria steady "Steady"\n  meets mobility of canes\n  balance_impaired\n\nprecedence'
        )
    )
    code, out = check(library)
    assert code == 1
    assert "error[reference-cycle]: criteria read each other in a cycle:" in out
    assert "canes.mobility -> quad-canes.steady -> canes.mobility" in out or (
        "quad-canes.steady -> canes.mobility -> quad-canes.steady" in out
    )


def test_a_cycle_of_referrals_is_a_diagnostic_naming_it(library):
    quad = library / "quad-canes.policy"
    quad.write_text(
        quad.read_text()
        .replace("precedence\n", "precedence\n  refer\n")
        .replace(
            "  rule quad_denied",
            "  rule back\n    refer E0105 to policy canes when balance_impaired\n  rule quad_denied",
        )
    )
    code, out = check(library)
    assert code == 1
    assert "policies refer lines to each other in a cycle:" in out
    assert "canes -> quad-canes -> canes" in out or "quad-canes -> canes -> quad-canes" in out


def test_one_fact_one_type_across_the_library(library):
    quad = library / "quad-canes.policy"
    quad.write_text(quad.read_text().replace("  walks_unaided: bool", "  walks_unaided: int"))
    code, out = check(library)
    assert code == 1
    assert "error[fact-conflict]: fact `walks_unaided` is" in out


def test_a_referral_by_name_to_a_policy_of_the_library_is_flagged(library):
    canes = library / "canes.policy"
    canes.write_text(canes.read_text().replace("to policy quad-canes", 'to "Quad Canes"'))
    code, out = check(library)
    assert code == 0
    assert "warning[refer-by-name]" in out and "refer ... to policy quad-canes" in out


def test_eval_takes_a_folder_of_policies(library, tmp_path):
    claims = tmp_path / "claims.jsonl"
    claims.write_bytes(
        orjson.dumps(claim("E0100", "E0105", "Z9999", walks_unaided=False, balance_impaired=True)) + b"\nnot json\n"
    )
    result = CliRunner().invoke(main, ["eval", str(library), str(claims), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    first, second = (orjson.loads(line) for line in result.stdout.splitlines())
    assert [(line["outcome"], line.get("policy")) for line in first["lines"]] == [
        ("covered", "canes"),
        ("covered", "quad-canes"),
        ("not_applicable", None),
    ]
    assert second["outcome"] == "error" and "not valid JSON" in second["message"]
    files = CliRunner().invoke(
        main, ["eval", str(library / "canes.policy"), str(library / "quad-canes.policy"), str(claims), "--jobs", "2"]
    )
    assert files.stdout == result.stdout


def test_eval_reports_a_library_with_errors_without_deciding(library, tmp_path):
    (library / "broken.policy").write_text(
        textwrap.dedent(HEAD.format(id="broken", title="Broken")) + "facts\n  x: nope\n"
    )
    claims = tmp_path / "claims.jsonl"
    claims.write_bytes(orjson.dumps(claim("E0100")) + b"\n")
    result = CliRunner().invoke(main, ["eval", str(library), str(claims)])
    assert result.exit_code == 1
    assert "broken.policy" in result.output and "no claims were decided" in result.output


def test_known_at_takes_each_policys_revision_published_by_then(tmp_path):
    import git

    repo = git.Repo.init(tmp_path / "plans")
    with repo.config_writer() as cfg:
        cfg.set_value("user", "name", "Policy Team")
        cfg.set_value("user", "email", "policy@example.org")
    folder = Path(repo.working_tree_dir) / "dme"
    folder.mkdir()

    def commit(name: str, text: str) -> None:
        (folder / f"{name}.policy").write_text(text)
        repo.index.add([f"dme/{name}.policy"])
        repo.index.commit(f"{name}: {text.splitlines()[3].strip()}")

    # Revision 1 of the cane policy neither governs nor refers the quad cane; revision 2,
    # published with the quad cane policy, refers it there.
    first = CANES.format(id="canes", title="Canes").replace("  rule quad\n    refer E0105 to policy quad-canes\n", "")
    commit("canes", first)
    quad = QUAD.format(id="quad-canes", title="Quad Canes").replace("dated 2026-01-01", "dated 2026-02-01")
    commit("quad-canes", quad)
    second = CANES.format(id="canes", title="Canes").replace(
        "revision 1 dated 2026-01-01", "revision 2 dated 2026-02-01"
    )
    commit("canes", second)

    notes: list[str] = []
    raw = claim("E0105", "E0100", walks_unaided=False, balance_impaired=True)
    before = load_library([folder], datetime.date(2026, 1, 15), warn=notes.append)
    assert sorted(before.policies) == ["canes"]
    assert notes and "quad-canes" in notes[0] and "left out of the library" in notes[0]
    quad_line, cane_line = before.decide(raw)["lines"]
    assert quad_line["outcome"] == "not_applicable"
    assert (cane_line["policy"], cane_line["revision"]) == ("canes", "1")
    after = load_library([folder], datetime.date(2026, 3, 1))
    quad_line, cane_line = after.decide(raw)["lines"]
    assert (quad_line["outcome"], quad_line["policy"], quad_line["path"][0]["revision"]) == (
        "covered",
        "quad-canes",
        "2",
    )
    assert cane_line["revision"] == "2"
