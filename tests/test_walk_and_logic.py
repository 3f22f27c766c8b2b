"""The one walk of a condition, the one three-valued logic, the one error decision and the
one place outcomes are said: each agrees with what it replaced."""

from __future__ import annotations

import itertools
from pathlib import Path

import attrs
import pytest

from medpol.api import load_policy
from medpol.compiler import logic, runtime, words
from medpol.dsl import ir
from medpol.engine.errors import error_decision

ROOT = Path(__file__).resolve().parent.parent
POLICIES = sorted((ROOT / "policies").glob("*.policy"))
KINDS = (ir.AllOf, ir.AnyOf, ir.AtLeast, ir.Not, ir.Clause, ir.Truth, ir.Is, ir.In, ir.Compare, ir.DiagnosisIn)
KINDS += (ir.BilledWith, ir.DrugIn, ir.LineOutcome, ir.HasModifier, ir.Within, ir.CriteriaOf, ir.Always)


def _every_condition(node):
    """Every condition reachable through any field: what `walk` must not miss."""
    if isinstance(node, KINDS):
        yield node
    if attrs.has(type(node)):
        for field in attrs.fields(type(node)):
            yield from _every_condition(getattr(node, field.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _every_condition(item)


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.stem)
def test_the_walk_reaches_every_condition_a_policy_writes(path):
    model = load_policy(path).model
    tops = [c for rule in model.rules for c in (*rule.requires, rule.condition)]
    tops += [crit.condition for crit in model.criteria.values()]
    for top in tops:
        walked = list(ir.walk(top))
        assert [id(c) for c in walked] == [id(c) for c in _every_condition(top)]
        assert list(ir.clauses(top)) == [c for c in walked if isinstance(c, ir.Clause)]


def test_children_are_the_parts_written_inside():
    leaf = ir.Truth("home_use", ir.NO_SPAN)
    negated = ir.Not(leaf, ir.NO_SPAN)
    group = ir.AtLeast(1, (leaf, negated), ir.NO_SPAN)
    item = ir.Clause("1", "first", ir.ALWAYS, (), ir.AllOf((group,), ir.NO_SPAN), ir.NO_SPAN)
    assert ir.children(leaf) == ()
    assert ir.children(negated) == (leaf,)
    assert ir.children(group) == (leaf, negated)
    assert ir.children(item) == (item.condition,)
    assert list(ir.walk(item)) == [item, item.condition, group, leaf, negated, leaf]


VALUES = (True, False, frozenset({"a"}), frozenset({"b"}))
COMBINATIONS = [c for n in range(4) for c in itertools.product(VALUES, repeat=n)]


@pytest.mark.parametrize("values", COMBINATIONS, ids=str)
def test_three_valued_logic(values):
    assert logic.all_of(values) == runtime.all_of(values)
    # any of is the negation of all of the negations; at least 1 is any of, at least all is all of
    assert logic.any_of(values) == logic.not_(logic.all_of(logic.not_(v) for v in values))
    if values:
        assert logic.at_least(1, values) == logic.any_of(values)
        assert logic.at_least(len(values), values) == logic.all_of(values)
    for value in values:
        assert logic.not_(value) == runtime.not_(value)
        assert logic.is_unknown(value) == isinstance(value, frozenset)


def test_at_least_is_unknown_only_while_the_unknowns_could_decide_it():
    a, b = frozenset({"a"}), frozenset({"b"})
    assert logic.at_least(2, (True, False, a)) == a
    assert logic.at_least(2, (False, False, a)) is False
    assert logic.at_least(2, (True, True, a)) is True
    assert logic.at_least(2, (a, b, False)) == a | b


def test_the_error_decision_keeps_the_contracts_key_order():
    assert list(error_decision("C-1", "is required", field="member")) == [
        "claim",
        "outcome",
        "field",
        "message",
        "lines",
    ]
    named = error_decision(None, "not valid JSON", under=("p", "22"))
    assert named == {
        "claim": None,
        "policy": "p",
        "revision": "22",
        "outcome": "error",
        "message": "not valid JSON",
        "lines": [],
    }
    assert list(named) == ["claim", "policy", "revision", "outcome", "message", "lines"]
    assert error_decision("C-1", "is required", field="member")["message"] == "member: is required"


def test_outcomes_in_words():
    denied = {"outcome": "denied", "category": "not_covered"}
    assert words.outcome_words(denied) == "denied as not covered"
    assert words.outcome_words({"outcome": "covered", "denied_units": 2}) == "covered in part"
    assert words.outcome_words({"outcome": "not_applicable"}) == "not applicable"
    assert words.line_outcome_words(denied) == "denied (not covered)"
    pending = {"outcome": "pending", "missing": ["a", "b"]}
    assert words.line_outcome_words(pending) == "pending (needs a, b)"
    assert words.line_outcome_words(pending, needs="missing") == "pending (missing a, b)"
    assert words.category_words("incorrect_coding") == "incorrect coding"
