"""Resolve a policy's names: code sets to codes, drugs to HCPCS, rules to their precedence.

The result, a `Model`, is what checks, the interpreter and the code generator share.
Resolution never fails: a name it cannot resolve becomes a diagnostic and an empty set.
"""

from __future__ import annotations

import datetime

import attrs

from medpol.dsl import ir
from medpol.dsl.diagnostics import Diagnostic

# Names the language defines for every policy.
BUILTIN_FACTS: dict[str, ir.FactType] = {
    "age": ir.FactType("number", unit="years"),
    "line_of_business": ir.FactType(
        "enum", values=("commercial", "medicare", "medicaid"), labels=("Commercial", "Medicare", "Medicaid")
    ),
    "supplier_licensed_in_state": ir.FactType("bool"),
    "place_of_service": ir.FactType("text"),
    # The line's date of service, or the date a claim is decided as of.
    "service_date": ir.FactType("date"),
}
ALL_DRUGS = "drugs"

DEFAULT_PRECEDENCE = (
    ("refer", None),
    ("deny", "not_covered"),
    ("deny", "incorrect_coding"),
    ("deny", "not_reasonable_and_necessary"),
    ("limit", None),
    ("cover", None),
    ("otherwise", None),
)

# Windows per code: None means always in effect, otherwise a tuple of windows.
Members = dict[str, "tuple[ir.Window, ...] | None"]


def coerce_value(ftype: ir.FactType | None, value):
    """A value as a fact of `ftype` holds it: a text fact reads `12` as the text "12"."""
    if ftype is not None and ftype.kind == "text" and not isinstance(value, (str, bool)):
        return str(value)
    return value


def normalize_icd(code: str) -> str:
    return code.replace(".", "").upper()


@attrs.frozen
class DiagnosisSet:
    """ICD-10-CM codes by prefix (a code covers every code below it) or prefix range."""

    ranges: tuple[tuple[str, str, ir.Window | None], ...]
    # By code met: True when a range without a window holds it, else the windows of the
    # ranges that hold it. A batch meets the same few hundred diagnoses over and over.
    _found: dict[str, bool | tuple[ir.Window, ...]] = attrs.field(factory=dict, init=False, eq=False, repr=False)

    def contains(self, code: str, day: datetime.date) -> bool:
        found = self._found.get(code)
        if found is None:
            found = self._windows(code)
            if len(self._found) >= _FOUND_LIMIT:
                self._found.clear()
            self._found[code] = found
        if found is True:
            return True
        return any(window.contains(day) for window in found)

    def _windows(self, code: str) -> bool | tuple[ir.Window, ...]:
        windows = []
        for lo, hi, window in self.ranges:
            if lo <= code[: len(lo)] <= hi:
                if window is None:
                    return True
                windows.append(window)
        return tuple(windows)


_FOUND_LIMIT = 100_000


@attrs.define
class Model:
    policy: ir.Policy
    facts: dict[str, ir.Fact]
    code_sets: dict[str, Members]
    diagnosis_sets: dict[str, DiagnosisSet]
    drugs: dict[str, ir.Drug]  # by drug name, the declaration with codes
    drug_tables: dict[str, Members]
    drug_codes: Members  # every drug's HCPCS
    vial_units: dict[str, float]  # HCPCS -> units per vial
    criteria: dict[str, ir.Criteria]
    rules: tuple[ir.Rule, ...]  # in precedence order
    steps: tuple[tuple[str, str | None], ...]
    follow: ir.Rule | None
    bases: Members  # the codes of base lines, decided by the items they serve
    dependents: Members  # the codes of lines that follow their base
    served: Members  # the codes of the items bases serve
    governed: Members  # every code some rule decides
    targets: dict[str, Members]  # rule id -> codes it decides
    descriptions: dict[str, str]  # HCPCS -> descriptor from the tables
    diagnostics: list[Diagnostic]

    def fact_type(self, name: str) -> ir.FactType | None:
        fact = self.facts.get(name)
        if fact is not None:
            return fact.type
        if name == self.owned_name:
            return ir.FactType("bool")
        return BUILTIN_FACTS.get(name)

    @property
    def owned_name(self) -> str | None:
        """`pump_owned` for `follow the pump`: true while the member's own base stands in."""
        if self.follow is None or not self.follow.base_noun:
            return None
        return f"{self.follow.base_noun}_owned"


def _merge(into: Members, code: str, window: ir.Window | None) -> None:
    window = None if window is None or window.always else window
    if code not in into:
        into[code] = None if window is None else (window,)
        return
    existing = into[code]
    if existing is None:
        return
    into[code] = None if window is None else existing + (window,)


def in_members(members: Members, code: str, day: datetime.date) -> bool:
    if code not in members:
        return False
    windows = members[code]
    return windows is None or any(w.contains(day) for w in windows)


def resolve(policy: ir.Policy) -> Model:
    diags: list[Diagnostic] = []
    path = policy.path

    def problem(span: ir.Span, code: str, message: str, help: str | None = None) -> None:
        diags.append(Diagnostic(path, span.line or 1, span.column or 1, code, message, width=span.width, help=help))

    facts: dict[str, ir.Fact] = {}
    for fact in policy.facts:
        if fact.name in facts:
            problem(fact.span, "duplicate-fact", f"fact `{fact.name}` is declared twice")
        elif fact.name in BUILTIN_FACTS:
            problem(fact.span, "reserved-name", f"`{fact.name}` is a built-in fact and cannot be declared")
        facts.setdefault(fact.name, fact)

    # Drugs first: code sets may name drugs, and drug tables may name drugs declared earlier.
    drugs: dict[str, ir.Drug] = {}
    drug_tables: dict[str, Members] = {}
    drug_codes: Members = {}
    vial_units: dict[str, float] = {}
    descriptions: dict[str, str] = {}
    for table in policy.drug_tables:
        members: Members = {}
        for drug in table.drugs:
            if drug.codes:
                if drug.name in drugs:
                    problem(
                        drug.span,
                        "duplicate-drug",
                        f"drug `{drug.name}` is declared with codes twice",
                        help="list it without codes in later tables",
                    )
                else:
                    drugs[drug.name] = drug
                codes = drug.codes
                if drug.vial_units is not None:
                    for code in codes:
                        vial_units[code] = drug.vial_units
            elif drug.name in drugs:
                codes = drugs[drug.name].codes
            else:
                problem(
                    drug.span,
                    "undefined-drug",
                    f"drug `{drug.name}` has no codes here and none earlier",
                    help="give its HCPCS code, e.g. `blinatumomab J9039`",
                )
                codes = ()
            for code in codes:
                _merge(members, code, drug.window)
                _merge(drug_codes, code, drug.window)
        if table.name in drug_tables:
            problem(table.span, "duplicate-set", f"drug table `{table.name}` is declared twice")
        drug_tables[table.name] = members

    code_sets: dict[str, Members] = {}
    diagnosis_sets: dict[str, DiagnosisSet] = {}
    names_seen: dict[str, ir.Span] = {}
    for cs in policy.code_sets:
        if cs.name in names_seen or cs.name in drug_tables or cs.name in drugs:
            problem(cs.span, "duplicate-set", f"`{cs.name}` is declared twice")
        names_seen[cs.name] = cs.span
        if cs.kind == "diagnoses":
            ranges = []
            for entry in cs.entries:
                if isinstance(entry, ir.Ref):
                    continue
                lo = normalize_icd(entry.code)
                hi = normalize_icd(entry.last) if entry.last else lo
                window = None if entry.window.always else entry.window
                ranges.append((lo, hi, window))
            diagnosis_sets[cs.name] = DiagnosisSet(tuple(ranges))
            continue
        members = {}
        for entry in cs.entries:
            if isinstance(entry, ir.Ref):
                ref = _lookup(entry.name, code_sets, drug_tables, drugs, drug_codes)
                if ref is None:
                    problem(entry.span, "undefined-set", f"`{entry.name}` is not a code set declared above")
                    continue
                for code, windows in ref.items():
                    for w in windows or (None,):
                        _merge(members, code, w)
            else:
                _merge(members, entry.code, entry.window)
                if entry.description:
                    descriptions.setdefault(entry.code, entry.description)
        code_sets[cs.name] = members

    criteria: dict[str, ir.Criteria] = {}
    for crit in policy.criteria:
        if crit.name in criteria:
            problem(crit.span, "duplicate-criteria", f"criteria `{crit.name}` are declared twice")
        criteria.setdefault(crit.name, crit)

    steps = tuple((s.kind, s.category) for s in policy.precedence) or DEFAULT_PRECEDENCE
    step_index = {step: i for i, step in enumerate(steps)}
    ordered: list[tuple[int, int, ir.Rule]] = []
    follow = None
    seen_rules: dict[str, ir.Rule] = {}
    targets: dict[str, Members] = {}
    governed: Members = {}
    for position, rule in enumerate(policy.rules):
        if rule.id in seen_rules:
            problem(
                rule.span,
                "duplicate-rule",
                f"rule `{rule.id}` is declared twice",
                help=f"the first is on line {seen_rules[rule.id].span.line}",
            )
            continue
        seen_rules[rule.id] = rule
        key = rule.precedence_key
        if key not in step_index:
            problem(
                rule.span,
                "missing-precedence",
                f"rule `{rule.id}` is a `{_kind_words(key)}` rule, which the precedence does not list",
            )
            continue
        if rule.kind == "follow":
            if follow is not None:
                problem(rule.span, "duplicate-follow", "a policy has one rule relating base items and their dependents")
            follow = rule
        resolved = resolve_targets(
            rule.targets,
            code_sets,
            drug_tables,
            drugs,
            drug_codes,
            lambda ref: problem(ref.span, "undefined-set", f"`{ref.name}` is not a code, code set or drug"),
        )
        targets[rule.id] = resolved
        if rule.kind != "otherwise" and not rule.targets.all_lines:
            for code, windows in resolved.items():
                for w in windows or (None,):
                    _merge(governed, code, w)
        ordered.append((step_index[key], position, rule))
    bases: Members = {}
    dependents: Members = {}
    served: Members = {}
    if follow is not None:
        for part, into in ((follow.bases, bases), (follow.dependents, dependents), (follow.targets, served)):
            if part is None:
                continue
            resolved = resolve_targets(
                part,
                code_sets,
                drug_tables,
                drugs,
                drug_codes,
                lambda ref: problem(ref.span, "undefined-set", f"`{ref.name}` is not a code, code set or drug"),
            )
            into.update(resolved)
            if into is served:
                continue  # a served item is governed by the rules that name it
            for code, windows in resolved.items():
                for w in windows or (None,):
                    _merge(governed, code, w)
    ordered.sort(key=lambda t: (t[0], t[1]))
    return Model(
        policy=policy,
        facts=facts,
        code_sets=code_sets,
        diagnosis_sets=diagnosis_sets,
        drugs=drugs,
        drug_tables=drug_tables,
        drug_codes=drug_codes,
        vial_units=vial_units,
        criteria=criteria,
        rules=tuple(r for _, _, r in ordered),
        steps=steps,
        follow=follow,
        bases=bases,
        dependents=dependents,
        served=served,
        governed=governed,
        targets=targets,
        descriptions=descriptions,
        diagnostics=diags,
    )


def _kind_words(key: tuple[str, str | None]) -> str:
    kind, category = key
    return f"deny as {category.replace('_', ' ')}" if category else kind


def _lookup(name, code_sets, drug_tables, drugs, drug_codes) -> Members | None:
    if name == ALL_DRUGS:
        return drug_codes
    if name in code_sets:
        return code_sets[name]
    if name in drug_tables:
        return drug_tables[name]
    if name in drugs:
        drug = drugs[name]
        members: Members = {}
        for code in drug.codes:
            _merge(members, code, drug.window)
        return members
    return None


def resolve_targets(targets: ir.Targets, code_sets, drug_tables, drugs, drug_codes, on_missing) -> Members:
    """The codes a target list names, with the windows in which each is named."""
    out: Members = {}
    for ref in targets.include:
        found = _lookup(ref.name, code_sets, drug_tables, drugs, drug_codes)
        if found is None:
            if _looks_like_code(ref.name):
                _merge(out, ref.name, None)
            else:
                on_missing(ref)
            continue
        for code, windows in found.items():
            for w in windows or (None,):
                _merge(out, code, w)
    for ref in targets.exclude:
        found = _lookup(ref.name, code_sets, drug_tables, drugs, drug_codes)
        if found is None:
            if _looks_like_code(ref.name):
                out.pop(ref.name, None)
            else:
                on_missing(ref)
            continue
        for code in found:
            out.pop(code, None)
    return out


def _looks_like_code(name: str) -> bool:
    return len(name) >= 3 and name[0].isupper() and name[1].isdigit()
