"""Policy pages read as the policy: rules in plain words, the policy code one click away."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medpol.api import compile_text
from medpol.engine.library import load_library
from medpol.publish.plain import Wording
from medpol.publish.site import build

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

PUMPS = """\
medpol 1

policy pumps "Pumps"
  revision 1 dated 2025-08-01 effective 2025-08-01

facts
  infusion_hours: number hours
    "How many hours does each infusion last?"
  home_use: bool
    "Is the pump used in the home?"
  setting: one of first_line, relapsed_refractory "relapsed or refractory (R/R)"
    "In which setting is the drug given?"
  order_date: date
    "On what date was the pump ordered?"
  visit_date: date
    "On what date was the member last seen?"

codes pumps "Infusion pumps"
  E0779 "pump"
  E0780 "pump, disposable"

diagnoses pain "intractable pain"
  G89.3

section ONE "Pumps"
  rule pumps.cover
    cover pumps when
      diagnosis in pain
      any of
        item 1 long
          infusion_hours >= 8 hours
          home_use
        item 2 relapsed effective 2026-01-25
          setting is relapsed_refractory
          visit_date within 6 months before order_date
"""


@pytest.fixture(scope="module")
def wording() -> Wording:
    policy = compile_text(PUMPS, "pumps.policy")
    return Wording(policy.model, policy.passage_text)


def test_a_rule_is_a_sentence_of_labels_and_codes(wording):
    rule = wording.model.policy.rules[0]
    sentence, points = wording.sentence(rule)
    assert sentence == (
        "Covered: Infusion pumps (E0779, E0780) for intractable pain (G89.3), when one of the following holds:"
    )
    assert [p.label for p in points] == ["Item 1", "Item 2"]
    assert points[1].window == "effective 2026-01-25"
    assert wording.title(rule) == "Coverage of Infusion pumps"


def test_each_condition_is_its_question_and_the_answer_required(wording):
    rule = wording.model.policy.rules[0]
    _sentence, (first, second) = wording.sentence(rule)
    assert [p.text for p in first.points] == [
        "How many hours does each infusion last? At least 8 hours.",
        "Is the pump used in the home? Yes.",
    ]
    assert [p.text for p in second.points] == [
        "In which setting is the drug given? Relapsed or refractory (R/R).",
        "On what date was the member last seen? Within 6 months before the order date.",
    ]


def test_a_value_reads_as_its_label_and_one_without_a_label_by_its_name(wording):
    assert wording.value("setting", "relapsed_refractory") == "relapsed or refractory (R/R)"
    assert wording.value("setting", "first_line") == "first line"
    fact = next(f for f in wording.model.policy.facts if f.name == "setting")
    assert wording.answer_kind(fact) == "One of: first line, relapsed or refractory (R/R)"


def test_a_negated_yes_no_fact_answers_no(wording):
    from medpol.dsl import ir

    assert wording.leaf(ir.Not(ir.Truth("home_use", ir.NO_SPAN), ir.NO_SPAN)) == "Is the pump used in the home? No."


# A raw identifier: a name written with underscores, as the policy code names sets, facts and rules.
IDENTIFIER = re.compile(r"\b[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+\b")


def _names(policy) -> set[str]:
    pol = policy.model.policy
    names = {f.name for f in pol.facts} | {c.name for c in pol.code_sets} | {t.name for t in pol.drug_tables}
    names |= {d.name for t in pol.drug_tables for d in t.drugs} | set(policy.model.criteria)
    names |= {r.id for r in pol.rules}
    return {n for n in names if "_" in n}


def _visible(html: str) -> str:
    """The text of a page a reader sees without opening anything: no scripts, no policy code."""
    html = re.sub(r'<details class="policy-code">.*?</details>', " ", html, flags=re.S)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("plain")
    return out, build(POLICIES, out)


def test_policy_pages_show_no_raw_identifier_outside_the_policy_code(site):
    out, html = site
    library = load_library([POLICIES])
    for pid, policy in library.policies.items():
        names = _names(policy)
        assert names, pid
        pages = [html / f"{pid}.html", *sorted(html.glob(f"{pid}-r*.html"))]
        for page in pages:
            text = _visible(page.read_text(encoding="utf-8"))
            assert not IDENTIFIER.findall(text), (page.name, sorted(set(IDENTIFIER.findall(text)))[:10])
        # Headings (and so the table of contents) use the rule's words, not its id.
        md = (out / "docs" / f"{pid}.md").read_text(encoding="utf-8")
        outside = re.sub(r'<details class="policy-code">.*?</details>', "", md, flags=re.S)
        for line in outside.splitlines():
            if line.startswith("#"):
                heading = re.sub(r"\{ #[^}]*\}", "", line)
                assert not any(name in heading for name in names), line
            assert not IDENTIFIER.findall(re.sub(r"\{ #[^}]*\}|\]\([^)]*\)", "", line)), line


def test_the_policy_code_of_every_rule_is_one_click_away(site):
    out, _html = site
    md = (out / "docs" / "external-infusion-pump.md").read_text(encoding="utf-8")
    summary = '<details class="policy-code"><summary>Policy code</summary>\n'
    blocks = re.findall(re.escape(summary) + r"<pre><code>(.*?)</code>", md, re.S)
    rules = load_library([POLICIES]).policies["external-infusion-pump"].model.policy.rules
    assert {block.splitlines()[0] for block in blocks} >= {f"rule {rule.id}" for rule in rules}
    assert "Covered: blinatumomab (J9039) for B-cell precursor acute lymphoblastic leukemia (C91.0)" in md
    assert "#### Coverage of blinatumomab { #j-blinatumomab }" in md
