"""The reasons a decision cites: for each rule and numbered item, its id, text and source."""

from __future__ import annotations

from medpol.compiler.passages import SourceDocument, normalize
from medpol.compiler.resolve import Model
from medpol.dsl import ir


def clauses(cond, owner: str):
    """Every clause inside a condition, with the id it is cited by."""
    for clause in ir.clauses(cond):
        yield f"{owner}.{clause.name}", clause


def _text(passages, document: SourceDocument | None) -> str:
    if document is None:
        return " ".join(normalize(p.text) for p in passages)
    return " ".join(document.expand(p.text) for p in passages)


def build_reasons(model: Model, document: SourceDocument | None) -> dict[str, dict]:
    reasons: dict[str, dict] = {}
    for rule in model.rules:
        reasons[rule.id] = {"rule": rule.id, "text": _text(rule.passages, document), "source": rule.section}
        for clause_id, clause in clauses(rule.condition, rule.id):
            reasons[clause_id] = {
                "rule": clause_id,
                "text": _text(clause.passages, document),
                "source": f"{rule.section}, item {clause.label}",
            }
    for crit in model.criteria.values():
        # A named set of criteria is cited by its name, unless a rule has that id.
        reasons.setdefault(crit.name, {"rule": crit.name, "text": _text(crit.passages, document), "source": crit.title})
        for clause_id, clause in clauses(crit.condition, crit.name):
            reasons[clause_id] = {
                "rule": clause_id,
                "text": _text(clause.passages, document),
                "source": f"{crit.title}, item {clause.label}",
            }
    return reasons
