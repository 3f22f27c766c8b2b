"""Names and literals a policy author writes, as hostile as the grammar lets them be, reach
generated Python only as data or through repr: they compile, decide as the reference
interpreter does, or are refused with a diagnostic."""

from __future__ import annotations

import pytest

from medpol.api import check_text, compile_text
from medpol.dsl.diagnostics import PolicyError

HEADER = """\
medpol 1

policy p "P"
  revision 1 dated 2026-01-01 effective 2026-01-01

"""

OTHERWISE = """
  rule o
    "o"
    otherwise deny as not covered
"""


def claim(facts: dict, code: str = "E1399") -> dict:
    return {
        "id": "c",
        "member": {"id": "m", "birth_date": "1950-01-01", "line_of_business": "commercial"},
        "diagnoses": [],
        "lines": [{"seq": 1, "hcpcs": code, "service_date": "2026-02-01", "units": 1}],
        "facts": facts,
    }


def decide_both(text: str, facts: dict, code: str = "E1399") -> tuple[dict, dict]:
    """The line's decision, compiled and interpreted (without the interpreter's trace)."""
    policy = compile_text(text, "/tmp/p.policy")
    compiled = policy.decide(claim(facts, code))["lines"][0]
    interpreted = policy.interpreted().decide(claim(facts, code))["lines"][0]
    interpreted.pop("trace", None)
    return compiled, interpreted


def errors(text: str) -> list:
    return [d for d in check_text(text, "/tmp/p.policy") if d.severity == "error"]


def test_a_fact_named_like_a_generated_constant_does_not_hide_it():
    # `NEEDS_x` was read into a local of that name, which hid the constant naming the
    # missing fact `x`: deciding the line raised TypeError.
    text = (
        HEADER
        + 'facts\n  NEEDS_x: bool\n    "q"\n  x: bool\n    "q"\n  CODES_c: bool\n    "q"\n'
        + 'codes c "c"\n  E1399 "x"\n\n'
        + 'section s "s"\n  rule r\n    "r"\n    cover c when\n      NEEDS_x\n      x\n'
        + '  rule r2\n    "r"\n    cover c when\n      CODES_c\n      billed with c\n'
        + OTHERWISE
    )
    for facts in ({"NEEDS_x": True}, {"NEEDS_x": True, "x": True}, {"CODES_c": True}, {"NEEDS_x": False}):
        compiled, interpreted = decide_both(text, facts)
        assert compiled == interpreted
    compiled, _ = decide_both(text, {"NEEDS_x": True})
    assert compiled["outcome"] == "pending" and "x" in compiled["missing"]


@pytest.mark.parametrize(
    ("condition", "dt", "outcome"),
    [
        ("dt is none", "none", "covered"),
        ("dt is none", "2026-01-05", "denied"),
        ("not dt is none", "none", "denied"),
        ("not dt is none", "2026-01-05", "covered"),
        ("dt is not none", "none", "denied"),
        ("not dt is not none", "none", "covered"),
    ],
)
def test_is_none_holds_for_an_event_that_did_not_happen(condition, dt, outcome):
    # `dt is none` compiled to a test that an event that did not happen always failed.
    text = (
        HEADER
        + 'facts\n  dt: date or none\n    "q"\n\ncodes c "c"\n  E1399 "x"\n\n'
        + f'section s "s"\n  rule r\n    "r"\n    cover c when {condition}\n'
        + OTHERWISE
    )
    compiled, interpreted = decide_both(text, {"dt": dt})
    assert compiled == interpreted
    assert compiled["outcome"] == outcome


@pytest.mark.parametrize(
    "condition",
    [
        "h < " + "9" * 400 + ".5 hours",
        "h < " + "9" * 400 + " hours",
        "d within " + "9" * 400 + ".0 days before service_date",
    ],
)
def test_a_number_past_a_floats_range_is_a_diagnostic(condition):
    # Read as float('inf'), whose repr `inf` is no Python literal: NameError when decided.
    text = (
        HEADER
        + 'facts\n  h: number hours\n    "q"\n  d: date\n    "q"\n\ncodes c "c"\n  E1399 "x"\n\n'
        + f'section s "s"\n  rule r\n    "r"\n    cover c when {condition}\n'
        + OTHERWISE
    )
    found = errors(text)
    assert [(d.code, d.line) for d in found] == [("bad-number", 18)]
    with pytest.raises(PolicyError):
        compile_text(text, "/tmp/p.policy")


def test_a_large_number_in_range_still_compiles():
    text = (
        HEADER
        + 'facts\n  h: number hours\n    "q"\n\ncodes c "c"\n  E1399 "x"\n\n'
        + 'section s "s"\n  rule r\n    "r"\n    cover c when h < 1'
        + "0" * 300
        + ".5 hours\n"
        + OTHERWISE
    )
    compiled, interpreted = decide_both(text, {"h": 3})
    assert compiled == interpreted and compiled["outcome"] == "covered"


@pytest.mark.parametrize(
    "condition",
    ["not " * 250 + "t", "h" + " + 1 hours" * 250 + " > 3 hours", "not " * 3000 + "t"],
)
def test_a_condition_nested_too_deep_is_a_diagnostic(condition):
    # 200 nested calls are past what Python's parser takes (SyntaxError: too many nested
    # parentheses); thousands were past the recursion limit of lowering (RecursionError).
    text = (
        HEADER
        + 'facts\n  h: number hours\n    "q"\n  t: bool\n    "q"\n\ncodes c "c"\n  E1399 "x"\n\n'
        + f'section s "s"\n  rule r\n    "r"\n    cover c when {condition}\n'
        + OTHERWISE
    )
    found = errors(text)
    assert [(d.code, d.line) for d in found] == [("too-deep", 18)]
    assert found[0].column > 1
    assert found[0].width <= len("hours")  # a caret under one token, not under the rest of the line


def test_a_condition_nested_a_little_deep_compiles():
    text = (
        HEADER
        + 'facts\n  t: bool\n    "q"\n\ncodes c "c"\n  E1399 "x"\n\n'
        + 'section s "s"\n  rule r\n    "r"\n    cover c when '
        + "not " * 60
        + "t\n"
        + OTHERWISE
    )
    compiled, interpreted = decide_both(text, {"t": True})
    assert compiled == interpreted and compiled["outcome"] == "covered"


def test_items_cited_by_one_id_are_a_diagnostic():
    # Item `b.c` of rule `a` and item `c` of rule `a.b` were both cited as `a.b.c`: a line
    # covered by the first cited the second's passage.
    text = (
        HEADER
        + 'facts\n  t: bool\n    "q"\n  u: bool\n    "q"\n\n'
        + 'codes c1 "c"\n  E1399 "x"\ncodes c2 "c"\n  E0776 "x"\n\n'
        + 'section s "s"\n  rule a\n    "r"\n    cover c1 when any of\n'
        + '      item 1 b.c\n        "first item"\n        t\n'
        + '  rule a.b\n    "r"\n    cover c2 when any of\n'
        + '      item 1 c\n        "second item"\n        u\n'
        + OTHERWISE
    )
    found = errors(text)
    assert [(d.code, d.line, d.column) for d in found] == [("duplicate-item", 27, 7)]
    assert "a.b.c" in found[0].message


def test_an_item_cited_by_a_rules_id_is_a_diagnostic():
    text = (
        HEADER
        + 'facts\n  t: bool\n    "q"\n\ncodes c1 "c"\n  E1399 "x"\n\n'
        + 'criteria a "k"\n  any of\n    item 1 b\n      "crit item"\n      t\n\n'
        + 'section s "s"\n  rule a.b\n    "r"\n    cover c1 when a\n'
        + OTHERWISE
    )
    assert [d.code for d in errors(text)] == ["duplicate-item"]


HOSTILE = 'A\u2028B\u2029C\x85D\x00E\x0cF\x1cG\x0bI\'J\\"K"""L{M}N#O\u200eQ\ufeffR'


def test_hostile_text_and_keyword_names_reach_python_only_through_repr():
    esc = HOSTILE.replace("\\", "\\\\").replace('"', '\\"')
    text = (
        HEADER.replace('"P"', f'"{esc}"')
        + f'facts\n  import: bool\n    "{esc}"\n  None: bool\n    "q"\n  x: bool\n    "q"\n'
        + f'  lambda: one of class "{esc}", def, True\n    "q"\n  a.b: bool\n    "q"\n  a_b: bool\n    "q"\n\n'
        + f'codes c "{esc}"\n  E1399 "{esc}"\n\n'
        + f'criteria True "{esc}"\n  "{esc}"\n  import\n  x\n\n'
        + f'section s "{esc}"\n  rule a.b\n    "{esc}"\n    cover c when\n      True\n      None\n'
        + "      a.b\n      not a_b\n      lambda in class, True\n"
        + f'      place_of_service is "{esc}"\n'
        + f'  rule a_b\n    "r"\n    refer c to "{esc}" when lambda is def\n'
        + OTHERWISE
    )
    policy = compile_text(text, "/tmp/p.policy")
    # The text lands in the source only as repr writes it: no raw line break of any kind.
    assert "\u2028" not in policy.python_source and "\x85" not in policy.python_source
    assert repr(HOSTILE) in policy.python_source
    facts = {"import": True, "None": True, "x": True, "lambda": "def", "a.b": True, "a_b": False}
    compiled, interpreted = decide_both(text, facts)
    assert compiled == interpreted
    assert compiled["outcome"] == "refer" and compiled["refer_to"] == HOSTILE
