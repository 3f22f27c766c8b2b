"""Link a library: resolve the references between its policies and find their cycles.

A policy may refer a line to another policy (`refer S to policy ID`) and read another
policy's named criteria (`meets NAME of ID`). Each policy is resolved and checked on its
own; this pass sees them together, as a linker sees object files, so that a reference
to a policy or criteria the library lacks, or a ring of references, is found before any
claim is decided.
"""

from __future__ import annotations

import difflib

import attrs

from medpol.compiler.resolve import Model
from medpol.dsl import ir
from medpol.dsl.diagnostics import Diagnostic


@attrs.frozen
class Reference:
    kind: str  # "refer" or "criteria"
    policy: str  # the policy referred to
    name: str | None  # the criteria read, for kind "criteria"
    owner: str | None  # the criteria of this policy the reference sits in (None: a rule)
    span: ir.Span


def references(model: Model) -> list[Reference]:
    """What a policy asks of other policies, in the order it is written."""
    found: list[Reference] = []
    for crit in model.criteria.values():
        for cond in ir.walk(crit.condition):
            if isinstance(cond, ir.CriteriaOf):
                found.append(Reference("criteria", cond.policy, cond.name, crit.name, cond.span))
    for rule in model.policy.rules:
        if rule.refer_policy is not None:
            found.append(Reference("refer", rule.refer_policy, None, None, rule.refer_span))
        for top in rule.requires + (rule.condition,):
            for cond in ir.walk(top):
                if isinstance(cond, ir.CriteriaOf):
                    found.append(Reference("criteria", cond.policy, cond.name, None, cond.span))
    return found


def _local_criteria(model: Model, crit: ir.Criteria) -> set[str]:
    """The policy's own criteria that `crit` reads by name."""
    return {cond.name for cond in ir.walk(crit.condition) if isinstance(cond, ir.Truth) and cond.name in model.criteria}


def link(models: list[Model], known_ids: frozenset[str] = frozenset()) -> list[Diagnostic]:
    """Every problem between the policies of a library.

    `known_ids` names policies that are in the library but could not be read (a file with
    syntax errors reports those itself): references to them are not reported again.
    """
    diagnostics: list[Diagnostic] = []

    def report(model: Model, span: ir.Span, code: str, message: str, help: str | None = None, severity="error"):
        diagnostics.append(
            Diagnostic(model.policy.path, span.line, span.column, code, message, severity, span.width, help)
        )

    by_id: dict[str, Model] = {}
    for model in models:
        first = by_id.setdefault(model.policy.id, model)
        if first is not model:
            report(
                model,
                model.policy.span,
                "duplicate-policy",
                f"policy `{model.policy.id}` is also defined in {first.policy.path}",
                help="each policy of a library has an id of its own",
            )
    titles = {m.policy.title.casefold(): pid for pid, m in by_id.items() if m.policy.title}

    criteria_edges: dict[tuple[str, str], list[tuple[tuple[str, str], Model, ir.Span]]] = {}
    refer_edges: dict[str, list[tuple[str, Model, ir.Span]]] = {}
    for model in by_id.values():
        pid = model.policy.id
        for crit in model.criteria.values():
            for name in _local_criteria(model, crit):
                criteria_edges.setdefault((pid, crit.name), []).append(((pid, name), model, crit.span))
        for ref in references(model):
            target = by_id.get(ref.policy)
            if target is None:
                if ref.policy in known_ids:
                    continue
                close = difflib.get_close_matches(ref.policy, list(by_id) + list(known_ids), n=1)
                report(
                    model,
                    ref.span,
                    "undefined-policy",
                    f"`{ref.policy}` is not a policy of the library",
                    help=f"did you mean `{close[0]}`?" if close else "the library holds: " + ", ".join(sorted(by_id)),
                )
                continue
            if ref.kind == "refer":
                if ref.policy == pid:
                    report(model, ref.span, "reference-cycle", f"policy `{pid}` refers lines to itself")
                    continue
                refer_edges.setdefault(pid, []).append((ref.policy, model, ref.span))
                continue
            if ref.name not in target.criteria:
                close = difflib.get_close_matches(ref.name, list(target.criteria), n=1)
                report(
                    model,
                    ref.span,
                    "undefined-criteria",
                    f"policy `{ref.policy}` has no criteria `{ref.name}`",
                    help=f"did you mean `{close[0]}`?"
                    if close
                    else ("its criteria: " + ", ".join(target.criteria) if target.criteria else "it names no criteria"),
                )
                continue
            if ref.owner is not None:
                criteria_edges.setdefault((pid, ref.owner), []).append(((ref.policy, ref.name), model, ref.span))
        for rule in model.policy.rules:
            if rule.kind == "refer" and rule.refer_policy is None and rule.refer_to:
                named = titles.get(rule.refer_to.casefold()) or (rule.refer_to if rule.refer_to in by_id else None)
                if named is not None and named != pid:
                    report(
                        model,
                        rule.span,
                        "refer-by-name",
                        f'"{rule.refer_to}" names policy `{named}` of the library, so the line ends at a name',
                        help=f"write `refer ... to policy {named}` to have that policy decide it",
                        severity="warning",
                    )

    for cycle, model, span in _cycles(criteria_edges):
        path = " -> ".join(f"{p}.{n}" for p, n in cycle)
        report(model, span, "reference-cycle", f"criteria read each other in a cycle: {path}")
    for cycle, model, span in _cycles(refer_edges):
        report(model, span, "reference-cycle", f"policies refer lines to each other in a cycle: {' -> '.join(cycle)}")
    fact_types: dict[str, tuple[str, Model]] = {}
    for model in by_id.values():
        for name, fact in model.facts.items():
            words = _type_words(fact.type)
            seen = fact_types.setdefault(name, (words, model))
            if seen[0] != words:
                report(
                    model,
                    fact.span,
                    "fact-conflict",
                    f"fact `{name}` is {words} here but {seen[0]} in policy `{seen[1].policy.id}`",
                    help="one claim's facts serve every policy of the library: give the fact one type, or another name",
                )
    return diagnostics


def _type_words(ftype) -> str:
    if ftype.kind == "enum":
        return "one of " + ", ".join(sorted(ftype.values))
    return ftype.describe()


def _cycles(edges: dict) -> list[tuple[list, Model, ir.Span]]:
    """Each cycle of the graph once, reported at the edge that closes it."""
    found: list[tuple[list, Model, ir.Span]] = []
    seen: set[frozenset] = set()
    state: dict = {}  # node -> 1 on the current path, 2 done
    for start in list(edges):
        if state.get(start):
            continue
        # Depth first without recursion: a library may be large.
        path = [start]
        stack = [iter(edges.get(start, ()))]
        state[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            node, model, span = step
            if state.get(node) == 1:
                cycle = path[path.index(node) :] + [node]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append((cycle, model, span))
            elif not state.get(node):
                state[node] = 1
                path.append(node)
                stack.append(iter(edges.get(node, ())))
    return found
