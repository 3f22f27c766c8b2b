"""Policy diffs: what changed between two versions in meaning, and which claim lines it moves."""

from __future__ import annotations

import copy
import datetime
import functools
import json
from pathlib import Path

import jinja2
import pytest

from medpol.api import CompiledPolicy, compile_text
from medpol.compiler.diff import diff_policies
from medpol.history import report
from medpol.history.impact import impact

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"
TEXT = POLICY.read_text(encoding="utf-8")

CD19_ITEM = """\
          item 3 cd19_ph_negative effective 2026-01-25
            "Effective 1-25-26 Blinatumomab is added to adult and pediatric members 1 month or older with CD19 \
positive Philadelphia chromosome-negative B Cell precursor acute lymphoblastic leukemia (ALL)."
            all_setting is cd19_ph_negative
            age >= 1 month
            cd19_positive
            ph_negative
"""
PARKINSONS_RULE = """\
    rule J.parkinsons_infusion
      "Also for infusion based therapy for the treatment of motor control symptoms associated with Parkinsons \
that are inadequately controlled by non-infusion based therapy."
      effective 2026-01-25
      cover foscarbidopa_foslevodopa when
        diagnosis in parkinsons
        pd_motor_symptoms_uncontrolled_without_infusion

"""
PARKINSONS_DRUG = "  foscarbidopa_foslevodopa J7356 effective 2026-01-25\n"
HEADER_22 = "revision 22 dated 2025-12-15 effective 2026-01-25"
HEADER_21 = "revision 21 dated 2025-12-11 effective 2025-12-11"
A4223 = '  A4223 "INFUSION SUPPLIES NOT USED WITH EXTERNAL INFUSION PUMP'
A4224 = '  A4224 "SUPPLIES FOR MAINTENANCE OF INSULIN INFUSION CATHETER, PER WEEK"\n'


def edit(text: str, old: str, new: str) -> str:
    """Replace exactly one occurrence, so a test cannot pass on an edit that silently did nothing."""
    assert text.count(old) == 1, f"expected one occurrence of {old[:60]!r}"
    return text.replace(old, new)


@functools.cache
def compiled(text: str) -> CompiledPolicy:
    # The real path, so the source document next to the policy is found and passages are checked.
    return compile_text(text, str(POLICY))


def revision_21() -> str:
    text = edit(TEXT, CD19_ITEM, "")
    text = edit(text, PARKINSONS_RULE, "")
    text = edit(text, PARKINSONS_DRUG, "")
    return edit(text, HEADER_22, HEADER_21)


def revision_16() -> str:
    """Revision 22 with A4224 still in group 2, as it was before revision 18 removed it."""
    return edit(TEXT, A4223, A4224 + A4223)


@pytest.fixture(scope="module")
def r21() -> CompiledPolicy:
    return compiled(revision_21())


@pytest.fixture(scope="module")
def r22() -> CompiledPolicy:
    return compiled(TEXT)


@pytest.fixture(scope="module")
def diff_21_22(r21, r22):
    return diff_policies(r21.model, r22.model)


# ---------------------------------------------------------------- revision 21 -> 22


def test_21_to_22_names_the_changed_rule_and_its_added_item(diff_21_22):
    assert [r.id for r in diff_21_22.rules_changed] == ["J.blinatumomab"]
    change = diff_21_22.rules_changed[0]
    assert change.changed == ("condition", "items")
    assert not change.fields  # same decision, window, require and section
    [item] = change.items
    assert (item.name, item.label, item.change, item.window) == (
        "cd19_ph_negative",
        "3",
        "added",
        "effective 2026-01-25",
    )
    assert "cd19_positive" in item.condition
    assert "cd19_ph_negative" not in change.condition_before
    assert "item 3 (effective 2026-01-25):" in change.condition_after


def test_21_to_22_names_the_added_rule_and_drug(diff_21_22):
    assert [r.id for r in diff_21_22.rules_added] == ["J.parkinsons_infusion"]
    added = diff_21_22.rules_added[0]
    assert added.decision == "cover foscarbidopa_foslevodopa"
    assert added.window == "effective 2026-01-25"
    assert added.codes == ("J7356",)
    assert added.require == "criteria_set_1 or criteria_set_2"
    assert diff_21_22.rules_removed == ()
    assert diff_21_22.rule_changes == 2

    [table] = diff_21_22.tables
    assert (table.name, table.kind, table.change) == ("blinatumomab_table", "drugs", "changed")
    [entry] = table.entries
    assert (entry.entry, entry.change, entry.codes, entry.window) == (
        "foscarbidopa_foslevodopa",
        "added",
        ("J7356",),
        "effective 2026-01-25",
    )


def test_21_to_22_reports_the_revision_header_and_rules_that_reach_the_new_drug(diff_21_22):
    fields = {f.field: (f.before, f.after) for f in diff_21_22.metadata}
    assert fields == {
        "revision": ("21", "22"),
        "dated": ("2025-12-11", "2025-12-15"),
        "effective": ("2025-12-11", "2026-01-25"),
    }
    # Rules naming `drugs` read the same but now decide J7356 too; they are not counted as rewritten.
    reach = {r.id: [(c.code, c.change, c.after) for c in r.codes] for r in diff_21_22.reach}
    assert reach["misc.follow_pump"] == [("J7356", "added", "effective 2026-01-25")]
    assert "J.blinatumomab" not in reach
    assert not (diff_21_22.facts or diff_21_22.criteria or diff_21_22.history or diff_21_22.sections)
    assert diff_21_22.precedence is None


def test_22_to_21_is_the_mirror_image(r21, r22):
    back = diff_policies(r22.model, r21.model)
    assert [r.id for r in back.rules_removed] == ["J.parkinsons_infusion"]
    assert back.rules_added == ()
    [item] = back.rules_changed[0].items
    assert (item.name, item.change) == ("cd19_ph_negative", "removed")
    assert back.tables[0].entries[0].change == "removed"


def test_21_to_22_reports_in_markdown_html_and_json(diff_21_22):
    md = report.render_markdown(diff_21_22)
    html = report.render_html(diff_21_22)
    data = report.to_json(diff_21_22)
    text = json.dumps(data)
    for out in (md, html, text):
        for needle in ("J.blinatumomab", "cd19_ph_negative", "2026-01-25", "J.parkinsons_infusion", "J7356"):
            assert needle in out, needle
    assert md.startswith("# External Infusion Pump and Supplies: r21 → r22\n")
    assert "### Changed: `J.blinatumomab`" in md
    assert "- **added** item 3 `cd19_ph_negative`, effective 2026-01-25:" in md
    assert "| added | foscarbidopa_foslevodopa | J7356 |  | effective 2026-01-25 |  |" in md

    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<link" not in html and "src=" not in html
    assert "<style>" in html

    assert data["schema"] == "medpol.diff/1"
    assert data["a"] == {"title": "r21", "revision": "21"}
    assert data["b"] == {"title": "r22", "revision": "22"}
    assert data["summary"]["rule_changes"] == 2
    assert data["summary"]["empty"] is False
    assert data["rules_changed"][0]["items"][0]["name"] == "cd19_ph_negative"
    assert data["rules_added"][0]["codes"] == ["J7356"]
    assert data["tables"][0]["entries"][0]["codes"] == ["J7356"]
    assert data["impact"] is None


# ---------------------------------------------------------------- revision 16 -> 18


def test_a4224_removed_from_group_two():
    old = compiled(revision_16())
    new = compiled(TEXT)
    diff = diff_policies(old.model, new.model)
    [table] = diff.tables
    assert (table.name, table.kind) == ("group_two", "codes")
    [entry] = table.entries
    assert (entry.entry, entry.change) == ("A4224", "removed")
    assert entry.description == "SUPPLIES FOR MAINTENANCE OF INSULIN INFUSION CATHETER, PER WEEK"
    assert diff.rule_changes == 0
    md = report.render_markdown(diff, title_a="r16", title_b="r18")
    assert "### HCPCS codes `group_two`: HCPCS Group 2 Codes" in md
    assert "| removed | A4224 | A4224 | SUPPLIES FOR MAINTENANCE OF INSULIN INFUSION CATHETER, PER WEEK |" in md
    assert "r16 → r18" in md


def test_entry_dates_moved_facts_and_history_rows():
    new_text = edit(TEXT, PARKINSONS_DRUG, PARKINSONS_DRUG.replace("2026-01-25", "2026-02-01"))
    new_text = edit(
        new_text,
        '"How many doses do the claim\'s cassettes or bags serve?"',
        '"How many doses (< 3 & more) do the cassettes serve?"',
    )
    old_text = edit(TEXT, '  revision "22" dated "12-15-25"', '  revision "22" dated "12-16-25"')
    diff = diff_policies(compiled(old_text).model, compiled(new_text).model)
    [entry] = diff.tables[0].entries
    assert entry.change == "changed"
    assert [(f.field, f.before, f.after) for f in entry.fields] == [
        ("window", "effective 2026-01-25", "effective 2026-02-01")
    ]
    [fact] = diff.facts
    assert (fact.name, fact.change, fact.fields[0].field) == ("doses", "changed", "question")
    [row] = diff.history
    assert (row.revision, row.change) == ("22", "changed")
    assert [(f.field, f.before, f.after) for f in row.fields] == [("dated", "12-16-25", "12-15-25")]
    # The rule that covers J7356 now decides it from another day: it reads the same, so it is reach.
    assert "J.parkinsons_infusion" in {r.id for r in diff.reach}

    html = report.render_html(diff)
    assert "(&lt; 3 &amp; more)" in html and "(< 3 & more)" not in html
    md = report.render_markdown(diff)
    assert "window: effective 2026-01-25 → effective 2026-02-01" in md


def test_every_kind_of_change_is_reported():
    # Without the source line, passages need not be found in the document, so they can be edited.
    base = edit(TEXT, '  source "external-infusion-pump-rev22.txt"\n', "")
    text = edit(base, "    infusion_hours >= 8 hours\n    prolonged", "    infusion_hours >= 6 hours\n    prolonged")
    text = edit(text, 'section G "G. Ziconotide"', 'section G "G. Ziconotide | intrathecal"')
    text = edit(text, "  limit\n  cover\n", "  cover\n  limit\n")
    text = edit(text, "  doses: int\n", '  new_fact: bool\n    "A new question?"\n  doses: int\n')
    text = edit(text, "    deny E1399 as not reasonable and necessary", "    deny E1399 as not covered")
    text = edit(text, "a stationary infusion pump (E0791) is covered.", "a stationary pump (E0791) is covered.")
    text = edit(text, "= G20\n", "= G20, G21\n")
    text = edit(text, 'codes batteries "replacement batteries"', 'codes batteries "batteries"')
    text = edit(
        text, "  rule misc.infusion_controller\n", "  rule misc.infusion_controller\n    effective 2026-03-01\n"
    )
    text = edit(
        text,
        '  rule exclusions.non_covered\n    "Non-Covered HCPCS Codes:"\n    deny non_covered as not covered\n\n',
        "",
    )
    text += '  revision "23" dated "1-1-27" "Annual review."\n'
    diff = diff_policies(compiled(base).model, compiled(text).model)

    assert diff.precedence.before[4:6] == ("limit", "cover")
    assert diff.precedence.after[4:6] == ("cover", "limit")
    assert [r.id for r in diff.rules_removed] == ["exclusions.non_covered"]
    changed = {r.id: r for r in diff.rules_changed}
    assert set(changed) == {"G.ziconotide", "misc.infusion_controller", "misc.iv_pole"}
    assert changed["G.ziconotide"].changed == ("section",)
    assert [(f.field, f.before, f.after) for f in changed["misc.infusion_controller"].fields] == [
        ("decision", "deny E1399 as not reasonable and necessary", "deny E1399 as not covered"),
        ("window", "always", "effective 2026-03-01"),
    ]
    assert changed["misc.iv_pole"].passages_added == (
        "An IV pole (E0776) is covered only when a stationary pump (E0791) is covered.",
    )
    assert [(s.id, s.fields[0].field) for s in diff.sections] == [("G", "title")]
    tables = {t.name: t for t in diff.tables}
    assert tables["batteries"].fields[0].after == "batteries" and tables["batteries"].entries == ()
    assert [(e.entry, e.change) for e in tables["parkinsons"].entries] == [("G21", "added")]
    assert [(f.name, f.change) for f in diff.facts] == [("new_fact", "added")]
    [criteria] = diff.criteria
    assert [(i.name, i.change) for i in criteria.items] == [("prolonged_infusion", "changed")]
    assert [(h.revision, h.change) for h in diff.history] == [("23", "added")]

    md = report.render_markdown(diff)
    for heading in ("## Precedence", "## Rules", "## Sections", "## Codes", "## Facts", "## Criteria", "## Change"):
        assert f"\n{heading}" in md
    assert "| section | G. Ziconotide | G. Ziconotide \\| intrathecal |" in md
    html = report.render_html(diff)
    assert html.count("<table") == html.count("</table>")
    assert html.count("<section") == html.count("</section>")


# ---------------------------------------------------------------- cosmetic edits


def cosmetic() -> str:
    text = TEXT
    # Comments re-indented, added, and blank lines added.
    text = edit(
        text,
        "      # The corrected calcium informs the reviewer",
        "  # The corrected calcium informs the reviewer",
    )
    text = edit(
        text,
        "    # The examination and documentation precede",
        "        # The examination and documentation precede",
    )
    text = edit(text, 'section misc "MISCELLANEOUS"\n', 'section misc "MISCELLANEOUS"\n\n  # A new comment.\n\n')
    text = edit(text, "codes group_one", "\n\n# Pumps and equipment.\ncodes group_one")
    # Two rules of a section swapped.
    five_days, one_course = text.index("    rule F.five_days"), text.index("    rule F.one_course")
    end = text.index('  section G "G. Ziconotide"')
    first, second = text[five_days:one_course], text[one_course:end]
    text = text[:five_days] + second.rstrip("\n") + "\n\n" + first.rstrip("\n") + "\n\n" + text[end:]
    # Two facts swapped, and two code entries.
    unresectable = '  unresectable: bool\n    "Is the liver or colorectal cancer unresectable?"\n'
    refused = '  refused_surgery: bool\n    "Has the member refused surgical excision?"\n'
    text = edit(text, unresectable + refused, refused + unresectable)
    a4305 = '  A4305 "DISPOSABLE DRUG DELIVERY SYSTEM, FLOW RATE OF 50 ML OR GREATER PER HOUR"\n'
    a4306 = '  A4306 "DISPOSABLE DRUG DELIVERY SYSTEM, FLOW RATE OF LESS THAN 50 ML PER HOUR"\n'
    return edit(text, a4305 + a4306, a4306 + a4305)


def test_cosmetic_edits_change_nothing(r22):
    text = cosmetic()
    assert text != TEXT
    other = compiled(text)
    assert [r.id for r in other.ir.rules] != [r.id for r in r22.ir.rules]  # the swap happened
    diff = diff_policies(r22.model, other.model)
    assert diff.rule_changes == 0
    assert diff.tables == ()
    assert diff.code_changes == 0
    assert diff.reach == ()
    assert diff.is_empty
    md = report.render_markdown(diff, title_a="before", title_b="after")
    assert "No changes in meaning" in md
    assert report.to_json(diff)["summary"]["empty"] is True


def test_a_policy_against_itself_is_empty(r22):
    assert diff_policies(r22.model, r22.model).is_empty


# ---------------------------------------------------------------- impact on claims


def claim(claim_id: str, served: str, lines: list[dict], facts: dict, diagnoses: list[str], **member) -> dict:
    return {
        "id": claim_id,
        "member": {"id": f"M-{claim_id}", "birth_date": "2025-05-10", "line_of_business": "commercial", **member},
        "diagnoses": diagnoses,
        "lines": [{"service_date": served, **line} for line in lines],
        "facts": facts,
    }


ACA_6407 = {
    "face_to_face_date": "2025-12-15",
    "written_order_date": "2026-01-05",
    "documentation_received_before_delivery": True,
}
CRITERIA_SET_1 = {
    "home_parenteral_necessary": True,
    "pump_necessary_for_safety": True,
    "infusion_hours": 24,
    "prolonged_infusion_efficacy_proven": True,
    "regimen_advantage_proven": True,
}
BLINATUMOMAB_LINES = [
    {"seq": 1, "hcpcs": "E0781", "modifiers": ["RR"], "units": 1},
    {"seq": 2, "hcpcs": "J9039", "units": 140},
    {"seq": 3, "hcpcs": "A4222", "units": 2},
]
CD19 = {**CRITERIA_SET_1, **ACA_6407, "all_setting": "cd19_ph_negative", "cd19_positive": True, "ph_negative": True}


def claims() -> list[dict]:
    return [
        claim("blin-cd19-after", "2026-02-10", BLINATUMOMAB_LINES, CD19, ["C91.00"]),
        claim("blin-cd19-before", "2026-01-20", BLINATUMOMAB_LINES, CD19, ["C91.00"]),
        claim(
            "deferoxamine",
            "2026-03-02",
            [{"seq": 1, "hcpcs": "E0791", "modifiers": ["RR"]}, {"seq": 2, "hcpcs": "J0895", "units": 8}],
            ACA_6407,
            ["E83.111"],
            birth_date="1970-03-02",
        ),
        claim(
            "medicare",
            "2026-02-10",
            BLINATUMOMAB_LINES,
            CD19,
            ["C91.00"],
            line_of_business="medicare",
        ),
        claim(
            "parkinsons",
            "2026-02-10",
            [{"seq": 1, "hcpcs": "E0779", "modifiers": ["RR"]}, {"seq": 2, "hcpcs": "J7356", "units": 1}],
            {**CRITERIA_SET_1, **ACA_6407, "pd_motor_symptoms_uncontrolled_without_infusion": True},
            ["G20.A1"],
            birth_date="1950-01-01",
        ),
        {"id": "malformed", "lines": []},  # an error under both versions, with the same message
    ]


def test_impact_lists_exactly_the_lines_that_flip(r21, r22):
    result = impact(r21, r22, claims())
    assert (result.claims, result.claims_changed, result.lines_changed) == (6, 2, 5)
    assert (result.old_revision, result.new_revision, result.as_of) == ("21", "22", None)
    flipped = [(line.claim, line.seq, line.hcpcs, line.change) for line in result.changed]
    assert sorted(flipped) == [
        ("blin-cd19-after", 1, "E0781", "denied -> covered"),
        ("blin-cd19-after", 2, "J9039", "denied -> covered"),
        ("blin-cd19-after", 3, "A4222", "denied -> covered"),
        ("parkinsons", 1, "E0779", "pending -> covered"),
        ("parkinsons", 2, "J7356", "not_applicable -> covered"),
    ]
    assert {(c.change, c.count) for c in result.counts} == {
        ("denied -> covered", 3),
        ("not_applicable -> covered", 1),
        ("pending -> covered", 1),
    }
    for line in result.changed:
        assert line.before.category == ("not_reasonable_and_necessary" if line.claim.startswith("blin") else None)
    parkinsons = next(line for line in result.changed if line.claim == "parkinsons" and line.seq == 1)
    assert parkinsons.before.missing == ("pump_drug",)


def test_impact_groups_lines_by_the_rule_that_decided_them(r21, r22):
    result = impact(r21, r22, claims())
    decided = r22.decide(claims()[0])
    first_rule = {line["seq"]: line["reasons"][0]["rule"] for line in decided["lines"]}
    for line in result.changed:
        if line.claim == "blin-cd19-after":
            assert line.rule == first_rule[line.seq]
    groups = {g.rule: [(line.claim, line.seq) for line in g.lines] for g in result.groups}
    assert groups["J.blinatumomab"] == [("blin-cd19-after", 1), ("blin-cd19-after", 2)]
    assert groups["J.parkinsons_infusion"] == [("parkinsons", 1), ("parkinsons", 2)]
    assert [g.rule for g in result.groups] == sorted(groups)


def test_impact_as_of_a_day_before_the_change(r21, r22):
    result = impact(r21, r22, claims(), as_of=datetime.date(2026, 1, 20))
    # Item 3 and J7356 are not in effect yet; only the pump's drug is now known, so the pump is decided.
    assert [(line.claim, line.seq, line.change) for line in result.changed] == [("parkinsons", 1, "pending -> denied")]
    assert result.as_of == datetime.date(2026, 1, 20)
    assert report.to_json(diff_policies(r21.model, r22.model), result)["impact"]["as_of"] == "2026-01-20"


class Stub:
    """A policy that answers with fixed decisions, to pair claim-level errors with decided lines."""

    def __init__(self, revision: str, decisions: dict[str, dict]):
        self.revision = revision
        self.decisions = decisions

    def decide(self, claim, as_of=None):
        return self.decisions[claim["id"]]


def test_impact_pairs_a_claim_error_with_the_lines_of_the_other_version():
    error = {"claim": "c", "outcome": "error", "field": "facts.x", "message": "facts.x: expected a number", "lines": []}
    decided = {
        "claim": "c",
        "lines": [
            {"seq": 1, "hcpcs": "E0781", "outcome": "covered", "reasons": [{"rule": "J.blinatumomab"}]},
            {"seq": 2, "hcpcs": "J9039", "outcome": "pending", "missing": ["cd19_positive"]},
        ],
    }
    same = {**error, "claim": "d"}
    before, after = {**error, "claim": "e"}, {**error, "claim": "e", "message": "facts.y: expected a date"}
    result = impact(
        Stub("1", {"c": error, "d": same, "e": before}),
        Stub("2", {"c": decided, "d": same, "e": after}),
        [{"id": "c"}, {"id": "d"}, {"id": "e"}],
    )
    # Groups sort by rule: `J.blinatumomab`, `error`, `pending: ...`; the same error twice is no change.
    assert [(line.claim, line.seq, line.rule, line.change) for line in result.changed] == [
        ("c", 1, "J.blinatumomab", "error -> covered"),
        ("e", None, "error", "error -> error"),
        ("c", 2, "pending: cd19_positive", "error -> pending"),
    ]
    assert result.claims_changed == 2
    assert result.changed[0].before.message == "facts.x: expected a number"


def test_impact_in_reports(r21, r22, diff_21_22):
    result = impact(r21, r22, claims())
    md = report.render_markdown(diff_21_22, result)
    assert "## Impact on claims" in md
    assert "| denied -> covered | 3 |" in md
    assert "| blin-cd19-after | 1 | E0781 | denied (not reasonable and necessary) | covered |" in md
    assert "blin-cd19-before" not in md and "deferoxamine" not in md and "malformed" not in md
    html = report.render_html(diff_21_22, result)
    assert "denied -&gt; covered" in html
    assert "blin-cd19-before" not in html
    data = report.to_json(diff_21_22, result)
    json.dumps(data)
    assert data["impact"]["counts"][0] == {"change": "denied -> covered", "count": 3}
    assert data["impact"]["groups"][0]["lines"][0]["before"]["outcome"] == "denied"


# ---------------------------------------------------------------- determinism and strictness


def test_reports_are_deterministic(r21, r22):
    result = impact(r21, r22, claims())
    one = diff_policies(r21.model, r22.model)
    # A second compile of the same texts: equal inputs, equal bytes.
    two = diff_policies(compile_text(revision_21(), str(POLICY)).model, compile_text(TEXT, str(POLICY)).model)
    assert one == two
    assert report.render_markdown(one, result) == report.render_markdown(two, result)
    assert report.render_html(one, result) == report.render_html(two, result)
    assert json.dumps(report.to_json(one, result)) == json.dumps(report.to_json(two, result))
    assert report.render_markdown(one, result).endswith("\n")


@pytest.mark.parametrize("name", ["diff.md.j2", "diff.html.j2"])
def test_templates_are_strict(name, diff_21_22):
    env = report.environment()
    assert env.undefined is jinja2.StrictUndefined
    template = env.get_template(name)
    with pytest.raises(jinja2.UndefinedError):
        template.render()
    data = copy.deepcopy(report.to_json(diff_21_22))
    del data["rules_changed"]
    with pytest.raises(jinja2.UndefinedError):
        template.render(report=data)
