"""The generated predicates: readable, deterministic, safe, and traceable to policy lines."""

from __future__ import annotations

import datetime
import linecache
import re
import traceback
from pathlib import Path

import pytest

from medpol.api import compile_text, load_policy
from medpol.compiler.runtime import LineContext

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"

HOSTILE = "x'); __import__('os').system('touch {mark}'); ('"

SMALL = """\
policy demo "Demo {hostile}"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  setting: bool
    "{hostile}"

codes pumps "pumps {hostile}"
  E0781 "{hostile}"

section s "{hostile}"
  rule s.refer
    "{hostile}"
    refer E0781 to "{hostile}" when place_of_service is "{hostile}"
  rule s.cover
    cover E0781 when setting
  rule s.otherwise
    otherwise deny as not reasonable and necessary
"""


def _claim(pos: str) -> dict:
    return {
        "id": "c1",
        "member": {"id": "m", "birth_date": "1970-01-01", "line_of_business": "commercial"},
        "diagnoses": [],
        "lines": [{"seq": 1, "hcpcs": "E0781", "service_date": "2026-02-01", "place_of_service": pos}],
        "facts": {"setting": True},
    }


def test_policy_strings_stay_strings_in_generated_code(tmp_path):
    """A policy string written as code is carried as data and never executed."""
    mark = tmp_path / "pwned"
    hostile = HOSTILE.format(mark=mark).replace('"', "")
    policy = compile_text(SMALL.format(hostile=hostile), str(tmp_path / "demo.policy"))
    assert not mark.exists()
    assert repr(hostile) in policy.python_source
    decided = policy.decide(_claim(hostile))
    assert decided["lines"][0]["outcome"] == "refer"
    assert decided["lines"][0]["refer_to"] == hostile
    assert policy.decide(_claim("12"))["lines"][0]["outcome"] == "covered"
    assert not mark.exists()


def test_generated_code_is_deterministic():
    text = POLICY.read_text()
    first = compile_text(text, str(POLICY)).python_source
    second = compile_text(text, str(POLICY)).python_source
    assert first == second
    assert "def rule_" in first and "PREDICATES = {" in first


def test_generated_code_is_registered_for_tracebacks():
    """A failure inside a predicate shows the generated line, which names the policy line."""
    policy = load_policy(POLICY)
    rule = next(r for r in policy.model.rules if r.id == "J.blinatumomab")
    predicate = policy.engine.predicates[rule.id]
    filename = predicate.__code__.co_filename
    assert filename.startswith("<medpol generated")
    assert linecache.getlines(filename), "generated source is in linecache"
    # A fact of the wrong type, slipped past the claim reader, fails inside the predicate.
    facts = {
        "home_parenteral_necessary": True,
        "pump_necessary_for_safety": True,
        "infusion_hours": "many",
        "prolonged_infusion_efficacy_proven": True,
        "regimen_advantage_proven": True,
    }
    ctx = LineContext(
        facts,
        datetime.date(2026, 2, 1),
        ("C9100",),
        ("E0781",),
        (),
        1,
        datetime.date(2000, 1, 1),
        "commercial",
        True,
        None,
        {},
    )
    with pytest.raises(TypeError) as info:
        predicate(ctx)
    text = "".join(traceback.format_exception(info.value))
    line = next(i for i, t in enumerate(POLICY.read_text().splitlines(), 1) if "infusion_hours >= 8 hours" in t)
    assert f"external-infusion-pump.policy:{line}" in text


def test_show_python_prints_the_predicates(capsys):
    from click.testing import CliRunner

    from medpol.cli.main import main

    result = CliRunner().invoke(main, ["compile", str(POLICY), "--show-python"])
    assert result.exit_code == 0
    assert "'J.blinatumomab'" in result.output
    assert "external-infusion-pump.policy:" in result.output


def test_a_traceback_through_a_decision_names_the_policy_line(monkeypatch):
    """A failure inside generated code, met while deciding a claim, is reported at the
    policy line that code encodes (the line map kept beside the generated code)."""
    policy = load_policy(POLICY)
    facts = {
        "home_parenteral_necessary": True,
        "pump_necessary_for_safety": True,
        "infusion_hours": "many",  # slipped past the fact reader, which would reject it
    }
    monkeypatch.setattr(policy.engine.facts, "read_claim_facts", lambda _raw: (dict(facts), []))
    claim = {
        "id": "c1",
        "member": {"id": "m", "birth_date": "1970-01-01", "line_of_business": "commercial"},
        "diagnoses": ["C91.00"],
        "lines": [
            {"seq": 1, "hcpcs": "E0781", "service_date": "2026-02-01"},
            {"seq": 2, "hcpcs": "J9039", "service_date": "2026-02-01"},
        ],
        "facts": {},
    }
    with pytest.raises(TypeError) as info:
        policy.decide(claim)
    frames = traceback.extract_tb(info.value.__traceback__)
    text = POLICY.read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if "infusion_hours >= 8 hours" in t)
    last = frames[-1]
    assert (last.filename, last.lineno) == (str(POLICY), line)
    assert last.name == "item_criteria_set_1_prolonged_infusion"  # named after the item
    assert last.line == text[line - 1].strip()  # the policy's own words, read from the file
    assert not any(f.filename.startswith("<medpol generated") for f in frames)
    # The frames that call into generated code name the policy lines of the calls.
    assert any(f.filename == str(POLICY) and f.name.startswith("rule_") for f in frames)
    # So does the compiled decision of the line's code, at the rule it was trying.
    decision = next(f for f in frames if f.name == "decide_E0781_for_J9039")
    assert decision.filename == str(POLICY) and decision.line == "rule J.blinatumomab"


def test_show_python_prints_a_codes_decision_rule_by_rule():
    """`--show-python --code J9039`: one function per kind of J9039 line, its rules in the
    policy's precedence, each with its policy line, windows tested inline."""
    from click.testing import CliRunner

    from medpol.cli.main import main

    result = CliRunner().invoke(main, ["compile", str(POLICY), "--show-python", "--code", "j9039"])
    assert result.exit_code == 0, result.output
    source, _, called = result.output.partition("# The predicates these decisions call")
    assert source.startswith("def decide_J9039(run, p, ctx, day):")
    # Then the predicates they call, down to each item: the code's logic reads whole.
    assert "def rule_J_blinatumomab(x):" in called and "def item_J_blinatumomab_relapsed(x, F, hits):" in called
    assert "def rule_E_prostacyclin(x):" not in called  # another drug's rule is not this code's
    policy = load_policy(POLICY)
    plan = [rule.id for rule in policy.model.rules if rule.id in source]
    comments = [line.split("# ", 1)[1] for line in source.splitlines() if line.startswith("    # ")]
    cited = [comment.split()[1] for comment in comments if ".policy:" in comment]
    assert cited == [r for r in plan if r in cited]  # in precedence order
    assert "follow misc.follow_pump" in source and "value = rule_J_blinatumomab(ctx)" in source
    # The base serving J9039 is decided by its own function, with the rule's window inline.
    base = CliRunner().invoke(main, ["compile", str(POLICY), "--show-python", "--code", "E0781"]).output
    assert "def decide_E0781_for_J9039(run, p, ctx, day):" in base
    assert "if DAY_2026_01_25 <= day:" in base
    assert "while True" not in source + base
    unknown = CliRunner().invoke(main, ["compile", str(POLICY), "--show-python", "--code", "X9999"])
    assert unknown.exit_code == 2 and "decides no line of X9999" in unknown.output


def test_generated_code_reads_rule_by_rule():
    """Functions named after rules and items, facts by name, no loops used as jumps."""
    source = load_policy(POLICY).python_source
    assert "def rule_J_blinatumomab(x):" in source
    assert "def item_J_blinatumomab_relapsed(x, F, hits):" in source
    assert "cycle_number = F.get('cycle_number')" in source
    assert "while True" not in source and "break" not in source
    assert not re.search(r"\bv\d+\b|MISSING_\d", source)
