"""The general constructs, each on a small policy: limits over periods, dates and arithmetic,
history, other lines' outcomes, and the smaller forms. Every decision is checked with the
compiled predicates and with the reference interpreter."""

from __future__ import annotations

import pytest

from medpol.api import compile_text
from medpol.dsl.diagnostics import PolicyError

HEAD = """\
policy demo "Demo"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  insulin_treated: bool
  order_date: date
  visit_date: date or none
  supply_end_date: date, per line
  supply_months: number months, per line, default 3

codes strips "test strips, per 50"
  A4253 "strips"
  A4259 "lancets"

codes cgm "continuous glucose monitors"
  E2102 "adjunctive"
  E2103 "non-adjunctive"
  A4239 "non-adjunctive allowance"
"""


def policy(body: str, head: str = HEAD):
    return compile_text(head + body, "demo.policy")


def decide(p, lines, facts=None, history=None, diagnoses=()):
    claim = {
        "id": "c1",
        "member": {"id": "m", "birth_date": "1970-01-01", "line_of_business": "commercial"},
        "diagnoses": list(diagnoses),
        "lines": [
            {"seq": i + 1, "service_date": "2026-03-10", **(line if isinstance(line, dict) else {"hcpcs": line})}
            for i, line in enumerate(lines)
        ],
        "facts": facts or {},
    }
    if history is not None:
        claim["history"] = history
    compiled = p.decide(claim)
    interpreted = p.explain(claim)
    for a, b in zip(compiled["lines"], interpreted["lines"], strict=True):
        b = {k: v for k, v in b.items() if k != "trace"}
        assert a == b, f"compiled and interpreted differ: {a} / {b}"
    return compiled["lines"]


def brief(line: dict) -> tuple:
    return (line["outcome"], line.get("category"), line.get("allowed_units"), line.get("denied_units"))


STRIPS = """
section s "S"
  rule usual
    limit A4253 to 2 units within 3 months, excess denied when not insulin_treated
  rule usual_insulin
    limit A4253 to 6 units within 3 months, excess denied when insulin_treated
  rule cover
    cover strips
  rule otherwise
    otherwise deny as not reasonable and necessary
"""


def test_excess_denied_pays_the_units_within_the_limit():
    p = policy(STRIPS)
    line = decide(p, [{"hcpcs": "A4253", "units": 4}], {"insulin_treated": False})[0]
    assert brief(line) == ("covered", None, 2, 2)
    assert line["denied_category"] == "not_reasonable_and_necessary"
    assert [r["rule"] for r in line["denied_reasons"]] == ["usual"]


def test_a_line_within_every_limit_carries_no_unit_fields():
    line = decide(policy(STRIPS), [{"hcpcs": "A4253", "units": 2}], {"insulin_treated": False})[0]
    assert brief(line) == ("covered", None, None, None)


def test_the_limits_condition_is_asked_only_past_the_limit():
    p = policy(STRIPS)
    assert brief(decide(p, [{"hcpcs": "A4253", "units": 2}])[0]) == ("covered", None, None, None)
    past = decide(p, [{"hcpcs": "A4253", "units": 3}])[0]
    assert past["outcome"] == "pending" and past["missing"] == ["insulin_treated"]


def test_earlier_lines_and_history_in_the_window_count_and_nothing_left_is_a_denial():
    p = policy(STRIPS)
    facts = {"insulin_treated": False}
    lines = decide(
        p,
        [{"hcpcs": "A4253", "units": 1, "service_date": "2026-03-30"}, {"hcpcs": "A4253", "units": 2}],
        facts,
        history=[{"hcpcs": "A4253", "service_date": "2025-12-11", "units": 1}],
    )
    # seq 2 is served first (2026-03-10): 1 in history + 2 -> 1 allowed; seq 1 then has nothing left.
    assert brief(lines[1]) == ("covered", None, 1, 1)
    assert brief(lines[0]) == ("denied", "not_reasonable_and_necessary", 0, 1)


@pytest.mark.parametrize(
    "served,counted",
    [("2025-12-10", False), ("2025-12-11", True), ("2026-03-10", True)],
    ids=["the-day-three-months-before-is-outside", "the-day-after-is-inside", "the-day-itself"],
)
def test_a_window_of_months_is_the_days_after_the_same_day_months_before(served, counted):
    lines = decide(
        policy(STRIPS),
        [{"hcpcs": "A4253", "units": 2}],
        {"insulin_treated": False},
        history=[{"hcpcs": "A4253", "service_date": served, "units": 2}],
    )
    assert lines[0]["outcome"] == ("denied" if counted else "covered")


def test_each_of_counts_every_code_on_its_own():
    body = """
section s "S"
  rule together
    limit strips to 2 units per calendar quarter, excess denied
  rule cover
    cover strips, cgm
"""
    together = decide(policy(body), [{"hcpcs": "A4253", "units": 2}, {"hcpcs": "A4259", "units": 2}])
    assert brief(together[1]) == ("denied", "not_reasonable_and_necessary", 0, 2)
    each = decide(
        policy(body.replace("limit strips", "limit each of strips")),
        [{"hcpcs": "A4253", "units": 2}, {"hcpcs": "A4259", "units": 2}],
    )
    assert [brief(line) for line in each] == [("covered", None, None, None)] * 2


def test_a_limit_without_excess_denied_denies_the_whole_line():
    body = """
section s "S"
  rule three
    limit A4239 to 3 units within 90 days
  rule cover
    cover cgm
"""
    line = decide(policy(body), [{"hcpcs": "A4239", "units": 4}])[0]
    assert brief(line) == ("denied", "not_reasonable_and_necessary", None, None)


def test_a_computed_amount_per_line_is_rounded_down_and_the_smallest_allowance_wins():
    body = """
section s "S"
  rule three_months
    limit A4253 to (units * 3 months / supply_months) units per line, excess denied when supply_months > 3 months
  rule usual
    limit A4253 to 5 units within 3 months, excess denied
  rule cover
    cover strips
"""
    p = policy(body)
    seven_months = decide(p, [{"hcpcs": "A4253", "units": 4, "facts": {"supply_months": 7}}])[0]
    assert brief(seven_months) == ("covered", None, 1, 3)  # 4 * 3 / 7 = 1.7 -> 1
    two_months = decide(p, [{"hcpcs": "A4253", "units": 8, "facts": {"supply_months": 2}}])[0]
    assert brief(two_months) == ("covered", None, 5, 3)


DATES = """
section s "S"
  rule visit
    deny E2102 as not reasonable and necessary unless visit_date within 6 months before order_date
  rule continued
    deny E2103 as not reasonable and necessary unless service_date within 6 months after order_date
  rule refill
    deny A4253 as not reasonable and necessary when service_date < supply_end_date - 10 days
  rule cover
    cover strips, cgm
"""


@pytest.mark.parametrize(
    "visit,outcome",
    [("2026-02-28", "covered"), ("2026-02-27", "denied"), ("2026-08-31", "covered"), ("none", "denied")],
)
def test_within_months_before_clamps_to_the_months_end_and_none_is_in_no_period(visit, outcome):
    line = decide(policy(DATES), ["E2102"], {"order_date": "2026-08-31", "visit_date": visit})[0]
    assert line["outcome"] == outcome


def test_none_fails_the_test_even_when_the_other_date_is_unknown():
    assert decide(policy(DATES), ["E2102"], {"visit_date": "none"})[0]["outcome"] == "denied"
    pending = decide(policy(DATES), ["E2102"], {"visit_date": "2026-01-01"})[0]
    assert pending["outcome"] == "pending" and pending["missing"] == ["order_date"]


@pytest.mark.parametrize("served,outcome", [("2026-03-10", "covered"), ("2026-03-11", "denied")])
def test_service_date_within_months_after_includes_the_last_day(served, outcome):
    line = decide(policy(DATES), [{"hcpcs": "E2103", "service_date": served}], {"order_date": "2025-09-10"})[0]
    assert line["outcome"] == outcome


@pytest.mark.parametrize("end,outcome", [("2026-03-20", "covered"), ("2026-03-21", "denied")])
def test_date_arithmetic_in_days(end, outcome):
    line = decide(policy(DATES), [{"hcpcs": "A4253", "facts": {"supply_end_date": end}}])[0]
    assert line["outcome"] == outcome


def test_none_is_only_for_a_date_or_none_fact():
    claim_line = decide(policy(DATES), [{"hcpcs": "A4253", "facts": {"supply_end_date": "none"}}])[0]
    assert claim_line["outcome"] == "error" and "supply_end_date" in claim_line["message"]


@pytest.mark.parametrize(
    "condition,code",
    [
        ("order_date + 3 hours > service_date", "unit-mismatch"),
        ("supply_months > 3 days", "unit-mismatch"),
        ("order_date > 3", "type-mismatch"),
        ("insulin_treated within 6 months before order_date", "type-mismatch"),
        ("visit_date is none and order_date is none", "type-mismatch"),
        ("supply_months * 3 months / 0 months > 1", "division-by-zero"),
    ],
)
def test_units_and_types_are_checked(condition, code):
    body = f"""
section s "S"
  rule r
    cover strips when {condition}
"""
    with pytest.raises(PolicyError) as err:
        policy(body)
    assert code in {d.code for d in err.value.diagnostics}


HISTORY = """
section s "S"
  rule replaced
    deny strips as not reasonable and necessary when billed with E2103, A4239 within 90 days
  rule earlier
    deny E2102 as not reasonable and necessary when earlier units of E2102 within 1 year >= 2
  rule cover
    cover strips, cgm
"""


@pytest.mark.parametrize("served,outcome", [("2025-12-11", "denied"), ("2025-12-10", "covered")])
def test_billed_with_within_looks_back_over_history(served, outcome):
    lines = decide(policy(HISTORY), ["A4253"], history=[{"hcpcs": "A4239", "service_date": served, "units": 1}])
    assert lines[0]["outcome"] == outcome


def test_billed_with_reads_the_claims_own_lines_whatever_their_date():
    lines = decide(policy(HISTORY), ["A4253", {"hcpcs": "E2103", "service_date": "2026-09-01"}])
    assert lines[0]["outcome"] == "denied"


def test_earlier_units_count_history_and_this_claims_earlier_lines():
    p = policy(HISTORY)
    history = [{"hcpcs": "E2102", "service_date": "2025-06-01", "units": 1}]
    assert decide(p, ["E2102"], history=history)[0]["outcome"] == "covered"
    lines = decide(p, ["E2102", "E2102"], history=history)
    assert [line["outcome"] for line in lines] == ["covered", "denied"]


OUTCOMES = """
section s "S"
  rule pcl
    deny E2103 as incorrect coding unless insulin_treated
  rule with_its_device
    deny A4239 as incorrect coding when E2103 is denied as incorrect coding
  rule strips_follow
    cover A4253 when cgm is covered
  rule cover
    cover cgm, A4259
  rule otherwise
    otherwise deny as not reasonable and necessary
"""


def test_other_lines_outcomes_are_read_whatever_the_line_order():
    p = policy(OUTCOMES)
    lines = decide(p, ["A4239", "A4253", "E2103"], {"insulin_treated": False})
    assert [brief(line)[:2] for line in lines] == [
        ("denied", "incorrect_coding"),
        ("denied", "not_reasonable_and_necessary"),
        ("denied", "incorrect_coding"),
    ]
    lines = decide(p, ["A4239", "A4253", "E2103"], {"insulin_treated": True})
    assert [line["outcome"] for line in lines] == ["covered", "covered", "covered"]


def test_a_pending_line_leaves_the_lines_that_read_it_pending():
    lines = decide(policy(OUTCOMES), ["A4239", "E2103"])
    assert [(line["outcome"], line.get("missing")) for line in lines] == [
        ("pending", ["insulin_treated"]),
        ("pending", ["insulin_treated"]),
    ]


SMALLER = """
section s "S"
  rule general
    deny all lines except cgm when not insulin_treated
  rule roman
    cover strips when any of
      item i first
        insulin_treated
      item ii second
        place_of_service is 12
  rule cgm
    deny cgm when service_date < 2026-03-01
  rule cover_cgm
    cover cgm
  rule otherwise
    otherwise deny as incorrect coding
"""


def test_all_lines_except_and_a_denial_taking_the_policys_category():
    p = policy(SMALLER)
    lines = decide(p, ["A4253", "E2102", {"hcpcs": "E2103", "service_date": "2026-02-01"}], {"insulin_treated": False})
    assert [brief(line)[:2] for line in lines] == [
        ("denied", "incorrect_coding"),
        ("covered", None),
        ("denied", "incorrect_coding"),
    ]


def test_roman_items_and_an_unquoted_place_of_service():
    p = policy(SMALLER)
    line = decide(p, [{"hcpcs": "A4253", "place_of_service": "12"}], {"insulin_treated": False})[0]
    assert line["outcome"] == "denied"  # the general rule comes first
    line = decide(p, [{"hcpcs": "A4253", "place_of_service": "12"}], {"insulin_treated": True})[0]
    assert line["outcome"] == "covered" and "roman" in [r["rule"] for r in line["reasons"]]


def test_an_impossible_place_of_service_is_a_warning():
    p = policy(SMALLER.replace("place_of_service is 12", "place_of_service is home"))
    text = HEAD + SMALLER.replace("place_of_service is 12", "place_of_service is home")
    line = text[: text.index("place_of_service is home")].count("\n") + 1
    found = [(d.code, d.severity, d.line) for d in p.warnings if d.code != "unused-fact"]
    assert found == [("unknown-value", "warning", line)]


def test_codes_tables_continue_over_lines_and_a_revision_may_take_effect_before_it_is_dated():
    head = HEAD.replace("dated 2026-01-01 effective 2026-01-01", "dated 2026-02-15 effective 2026-01-01").replace(
        '  A4253 "strips"\n  A4259 "lancets"\n', "  A4253, A4259\n  A4256\n"
    )
    p = policy('\nsection s "S"\n  rule r\n    cover strips\n', head)
    lines = decide(p, ["A4253", "A4259", "A4256", "A4258"])
    assert [line["outcome"] for line in lines] == ["covered", "covered", "covered", "not_applicable"]


def test_a_denial_without_a_category_needs_an_otherwise_rule():
    with pytest.raises(PolicyError) as err:
        policy('\nsection s "S"\n  rule r\n    deny strips when insulin_treated\n')
    assert [d.code for d in err.value.diagnostics] == ["missing-category"]


def test_a_settled_denial_is_not_held_pending_by_an_undecided_denial_of_another_category():
    """Denied either way: the undecided coding rule could change only the category."""
    covered_unless = decide(policy(OUTCOMES), ["E2103"])[0]
    assert covered_unless["outcome"] == "pending" and covered_unless["missing"] == ["insulin_treated"]
    lines = decide(policy(OUTCOMES.replace("cover cgm, A4259", "cover A4259")), ["E2103"])
    assert brief(lines[0])[:2] == ("denied", "not_reasonable_and_necessary")


def test_default_none_on_a_date_or_none_fact_is_no_such_event():
    p = policy(DATES, HEAD.replace("visit_date: date or none", "visit_date: date or none, default none"))
    assert decide(p, ["E2102"], {"order_date": "2026-08-31"})[0]["outcome"] == "denied"


NEBULIZER = """\
policy nebulizers "Nebulizers"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  nebulizer_drug: code
  owned_nebulizer: code, default none
  copd: bool
  order_on_file: bool

codes nebulizer "nebulizers"
  E0570 "nebulizer, with compressor"

codes nebulizer_supplies "supplies"
  A7003 "administration set"

drugs inhalation "inhalation drugs"
  albuterol J7613
  budesonide J7626

section s "S"
  rule s.albuterol
    cover albuterol when copd
  rule s.budesonide
    effective 2026-03-01
    cover budesonide when copd
  rule s.order
    deny nebulizer as not reasonable and necessary unless any of
      nebulizer_owned
      order_on_file
  rule s.relation
    nebulizer administer drugs else nebulizer_drug
    drugs, nebulizer_supplies follow the nebulizer else owned_nebulizer
  rule s.otherwise
    otherwise deny as not reasonable and necessary
"""


def test_the_base_and_dependent_relation_serves_any_device():
    p = compile_text(NEBULIZER, "nebulizers.policy")
    facts = {"copd": True, "order_on_file": True}
    lines = decide(p, ["E0570", "J7613", "A7003"], facts)
    assert [line["outcome"] for line in lines] == ["covered", "covered", "covered"]
    # The base is decided by the drug it serves; its supplies follow it.
    lines = decide(p, ["E0570", "J7613", "A7003"], {**facts, "copd": False})
    assert [line["outcome"] for line in lines] == ["denied", "denied", "denied"]
    # Without a base line, the member's own stands in, and NOUN_owned says so.
    lines = decide(p, ["J7613"], {"copd": True, "owned_nebulizer": "E0570"})
    assert lines[0]["outcome"] == "covered"
    # Without a drug line, the fact names the drug the base serves.
    assert decide(p, ["E0570"], {**facts, "nebulizer_drug": "J7613"})[0]["outcome"] == "covered"
    pending = decide(p, ["E0570"], facts)[0]
    assert pending["outcome"] == "pending" and pending["missing"] == ["nebulizer_drug"]


def test_each_dependent_is_decided_as_of_its_own_date():
    p = compile_text(NEBULIZER, "nebulizers.policy")
    lines = decide(
        p,
        [{"hcpcs": "E0570", "service_date": "2026-03-05"}, {"hcpcs": "J7626", "service_date": "2026-02-20"}],
        {"copd": True, "order_on_file": True},
    )
    # Budesonide is covered from 2026-03-01: the base served on 03-05 does not carry a drug
    # line served on 02-20 into that coverage.
    assert [line["outcome"] for line in lines] == ["covered", "denied"]


def test_other_lines_decided_by_a_named_rule():
    body = OUTCOMES.replace(
        "deny A4239 as incorrect coding when E2103 is denied as incorrect coding",
        "deny A4239 as incorrect coding when E2103 is denied by pcl",
    ).replace(
        "  rule pcl\n",
        "  rule too_early\n    deny E2103 as incorrect coding when service_date < 2023-01-01\n  rule pcl\n",
    )
    p = policy(body)
    early = [{"hcpcs": "E2103", "service_date": "2022-12-01"}, "A4239"]
    assert [brief(line)[:2] for line in decide(p, early, {"insulin_treated": True})] == [
        ("denied", "incorrect_coding"),
        ("covered", None),
    ]
    assert [brief(line)[:2] for line in decide(p, ["E2103", "A4239"], {"insulin_treated": False})] == [
        ("denied", "incorrect_coding"),
        ("denied", "incorrect_coding"),
    ]
    with pytest.raises(PolicyError) as err:
        policy(body.replace("denied by pcl", "denied by pcl_typo"))
    assert "undefined-rule" in {d.code for d in err.value.diagnostics}


def test_one_of_facts_take_options_weights_in_pounds_and_capital_item_labels():
    head = """\
policy demo "Demo"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  wheelchair: one of manual, power, per line
  transfers: one of alone, assisted, default alone
  weight: number pounds

codes bases "bases"
  K0001 "standard"
"""
    body = """
section s "S"
  rule heavy_duty
    cover K0001 when
      item A manual
        wheelchair is manual
      item B weight
        weight > 250 pounds
      transfers is alone
"""
    p = policy(body, head)
    assert p.model.facts["wheelchair"].per_line and p.model.facts["wheelchair"].type.values == ("manual", "power")
    assert p.model.facts["transfers"].default == "alone"
    covered = decide(p, [{"hcpcs": "K0001", "facts": {"wheelchair": "manual"}}], {"weight": 300})
    assert covered[0]["outcome"] == "covered"
    assert [r["source"] for r in covered[0]["reasons"]][1:] == ["S, item A", "S, item B"]
    assert decide(p, [{"hcpcs": "K0001", "facts": {"wheelchair": "power"}}], {"weight": 300})[0]["outcome"] != "covered"
    with pytest.raises(PolicyError) as err:
        policy(body.replace("250 pounds", "250 hours"), head)
    assert "unit-mismatch" in {d.code for d in err.value.diagnostics}


def test_a_one_of_value_carries_the_words_a_reader_sees_and_keeps_its_options():
    head = """\
policy demo "Demo"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  wheelchair: one of manual "a manual wheelchair (other than a transport chair)", power, per line
  transfers: one of alone "transfers alone", assisted, default alone

codes bases "bases"
  K0001 "standard"
"""
    body = """
section s "S"
  rule manual_only
    cover K0001 when
      wheelchair is manual
      transfers is alone
"""
    p = policy(body, head)
    wheelchair = p.model.facts["wheelchair"]
    assert wheelchair.per_line and wheelchair.type.values == ("manual", "power")
    assert wheelchair.type.label("manual") == "a manual wheelchair (other than a transport chair)"
    assert wheelchair.type.label("power") is None
    assert p.model.facts["transfers"].default == "alone"
    # A claim answers with the value's name, never its words.
    assert decide(p, [{"hcpcs": "K0001", "facts": {"wheelchair": "manual"}}], {})[0]["outcome"] == "covered"
    words = "a manual wheelchair (other than a transport chair)"
    wrong = decide(p, [{"hcpcs": "K0001", "facts": {"wheelchair": words}}], {})
    assert wrong[0]["outcome"] == "error"
