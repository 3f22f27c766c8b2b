"""Check a resolved policy and report every problem in one run, each with a stable code.

Checks run in a fixed order, one function each (as sqlglot runs its optimizer rules),
and only collect diagnostics; nothing here raises for a user's mistake.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from medpol.compiler import icd10, types
from medpol.compiler import words as _words
from medpol.compiler.passages import SourceDocument
from medpol.compiler.resolve import ALL_DRUGS, BUILTIN_FACTS, Model, coerce_value
from medpol.dsl import ir
from medpol.dsl.diagnostics import Diagnostic

HCPCS = re.compile(r"^[A-V][0-9]{4}$")
# Every language version a policy in git may declare; each stays readable forever.
SUPPORTED_LANGUAGES = (1,)


class _Checker:
    def __init__(self, model: Model, document: SourceDocument | None, doc_path: str | None):
        self.model = model
        self.policy = model.policy
        self.path = model.policy.path
        self.document = document
        self.doc_path = doc_path
        self.out: list[Diagnostic] = list(model.diagnostics)
        self.used_facts: set[str] = set()
        self.used_sets: set[str] = set()

    def report(self, node_or_span, code: str, message: str, help: str | None = None, severity: str = "error") -> None:
        span = node_or_span if isinstance(node_or_span, ir.Span) else getattr(node_or_span, "span", ir.NO_SPAN)
        self.out.append(
            Diagnostic(
                self.path,
                span.line or 1,
                span.column or 1,
                code,
                message,
                severity=severity,
                width=span.width,
                help=help,
            )
        )

    # ------------------------------------------------------------ the checks, in order

    def run(self) -> list[Diagnostic]:
        self.check_header()
        self.check_facts()
        self.check_codes()
        self.check_diagnoses()
        self.check_windows()
        for crit in self.policy.criteria:
            self.check_condition(crit.condition, owner=crit.name, clause_names=set())
        self.check_rules()
        self.check_follow()
        self.check_unused()
        self.check_reachability()
        self.check_passages()
        return sorted(set(self.out))

    def check_header(self) -> None:
        if self.policy.language not in SUPPORTED_LANGUAGES:
            self.report(
                self.policy.language_span if self.policy.language_span.line else self.policy.span,
                "unknown-language-version",
                f"this file is written in medpol language {self.policy.language}, which this compiler does not know",
                help="versions read: " + ", ".join(map(str, SUPPORTED_LANGUAGES)),
            )
        # A revision may take effect before the date it is published: CMS routinely
        # publishes an LCD revision that is effective retroactively.

    def check_facts(self) -> None:
        for fact in self.policy.facts:
            ftype = fact.type
            if ftype.kind == "int" and ftype.low is not None and ftype.low > ftype.high:
                self.report(fact, "empty-range", f"fact `{fact.name}` has the empty range {ftype.low} to {ftype.high}")
            if ftype.kind == "enum" and len(set(ftype.values)) != len(ftype.values):
                self.report(fact, "duplicate-value", f"fact `{fact.name}` lists a value twice")
            if fact.has_default and fact.default is not None and not _fits(ftype, fact.default):
                self.report(
                    fact, "type-mismatch", f"the default `{fact.default}` of `{fact.name}` is not a {ftype.describe()}"
                )

    def check_codes(self) -> None:
        for cs in self.policy.code_sets:
            if cs.kind != "codes":
                continue
            for entry in cs.entries:
                if isinstance(entry, ir.CodeEntry) and not HCPCS.match(entry.code):
                    self.report(
                        entry,
                        "malformed-hcpcs",
                        f"`{entry.code}` is not a HCPCS Level II code",
                        help="a HCPCS Level II code is a letter A-V and four digits, e.g. `E0781`",
                    )
        for table in self.policy.drug_tables:
            for drug in table.drugs:
                for code in drug.codes:
                    if not HCPCS.match(code):
                        self.report(
                            drug,
                            "malformed-hcpcs",
                            f"`{code}` (drug `{drug.name}`) is not a HCPCS Level II code",
                            help="a HCPCS Level II code is a letter A-V and four digits, e.g. `J9039`",
                        )

    def check_diagnoses(self) -> None:
        for cs in self.policy.code_sets:
            if cs.kind != "diagnoses":
                continue
            for entry in cs.entries:
                if isinstance(entry, ir.Ref):
                    self.report(entry, "type-mismatch", f"`{entry.name}`: a diagnosis set lists ICD-10-CM codes")
                    continue
                for code in (entry.code, entry.last):
                    if code is not None and not icd10.is_valid(code):
                        self.report(
                            entry,
                            "unknown-icd10",
                            f"`{code}` is not an ICD-10-CM code",
                            help="codes are checked against the ICD-10-CM code set; a category such as "
                            "`C18` covers every code below it",
                        )
                if entry.last is not None and entry.last.replace(".", "") < entry.code.replace(".", ""):
                    self.report(entry, "empty-range", f"the range `{entry.code}-{entry.last}` is empty")

    def check_windows(self) -> None:
        def windows() -> Iterator[tuple[str, str, ir.Window, object]]:
            for cs in self.policy.code_sets:
                for entry in cs.entries:
                    if isinstance(entry, ir.CodeEntry):
                        yield cs.name, entry.code, entry.window, entry
            for table in self.policy.drug_tables:
                for drug in table.drugs:
                    for code in drug.codes or (drug.name,):
                        yield table.name, code, drug.window, drug
            for rule in self.policy.rules:
                yield "", "", rule.window, rule
                for clause in ir.clauses(rule.condition):
                    yield "", "", clause.window, clause

        seen: dict[tuple[str, str], list[ir.Window]] = {}
        for set_name, code, window, node in windows():
            if window.effective and window.until and window.until <= window.effective:
                self.report(
                    window.span if window.span.line else node,
                    "empty-window",
                    f"this window is empty: until {window.until} is not after effective {window.effective}",
                )
                continue
            if not set_name:
                continue
            others = seen.setdefault((set_name, code), [])
            for other in others:
                if _overlap(window, other):
                    self.report(
                        node,
                        "overlapping-window",
                        f"`{code}` is listed in `{set_name}` twice for the same dates",
                        help="give each entry its own `effective` / `until` window",
                    )
                    break
            others.append(window)

    def check_rules(self) -> None:
        for rule in self.policy.rules:
            for ref in rule.targets.include + rule.targets.exclude:
                self.used_sets.add(ref.name)
            if (
                rule.kind in ("cover", "deny", "refer", "limit")
                and not rule.targets.all_lines
                and not self.model.targets.get(rule.id)
            ):
                self.report(rule, "unreachable-rule", f"rule `{rule.id}` names no code a claim line can have")
            for shown in rule.shows:
                self.fact_type(shown.name, shown)
            names: set[str] = set()
            for cond in rule.requires + (rule.condition,):
                self.check_condition(cond, owner=rule.id, clause_names=names)
            if rule.kind == "limit":
                self.check_limit(rule)
        self.check_cited_ids()

    def check_cited_ids(self) -> None:
        """A decision cites a rule by its id and an item by `OWNER.ITEM`, where the owner is a
        rule or a criteria set. Names may hold dots, so item `b.c` of `a` and item `c` of `a.b`
        (or a rule `a.b.c`) would be cited by one id, and one's reason given for the other."""
        cited = {rule.id: f"rule `{rule.id}`" for rule in self.policy.rules}
        owners = [(rule.id, rule.requires + (rule.condition,)) for rule in self.policy.rules]
        owners += [(crit.name, (crit.condition,)) for crit in self.policy.criteria]
        for owner, conditions in owners:
            own: set[str] = set()  # an item twice in one owner is `duplicate-item` already
            for cond in conditions:
                for clause in ir.clauses(cond):
                    cited_as = f"{owner}.{clause.name}"
                    if cited_as in own:
                        continue
                    own.add(cited_as)
                    if cited_as in cited:
                        self.report(
                            clause,
                            "duplicate-item",
                            f"item `{clause.name}` of `{owner}` is cited as `{cited_as}`, as is {cited[cited_as]}",
                            help="rename the item, so that each rule and item is cited by an id of its own",
                        )
                    cited.setdefault(cited_as, f"item `{clause.name}` of `{owner}`")

    def check_limit(self, rule: ir.Rule) -> None:
        if rule.limit.unit == "vials":
            for code in self.model.targets.get(rule.id, {}):
                if code not in self.model.vial_units:
                    self.report(
                        rule,
                        "missing-vial-size",
                        f"`{code}` has no vial size, so a limit in vials cannot be counted",
                        help="declare it on the drug: `blinatumomab J9039 (vial = 35 units)`",
                    )
        lim = rule.limit
        if lim.period == "rolling":
            self.check_period(lim.length_unit, rule)
        if lim.period == "line" and lim.unit == "days":
            self.report(rule, "unsupported-limit", "a line has one date of service: limit its units, not its days")
        if lim.excess and lim.unit == "days":
            self.report(
                rule,
                "unsupported-limit",
                "days of service are not paid in part: a line past the limit is denied whole",
                help="leave out `, excess denied`",
            )
        if not isinstance(lim.amount, (int, float)):
            found = self.operand_type(lim.amount, rule)
            if found is not None and (found[0] != "number" or not types.comparable(found[1], ())):
                self.report(rule, "unit-mismatch", "a limit's amount is a count: its units must cancel out")
            elif found is not None and found[1] and found[1] != types.dimension(types.BILLING_UNITS):
                self.report(
                    rule, "unit-mismatch", f"a limit's amount is a count, and this one is in {types.words(found[1])}"
                )

    def check_follow(self) -> None:
        follow = self.model.follow
        if follow is None:
            return
        for ref in (follow.bases.include if follow.bases else ()) + (
            follow.dependents.include if follow.dependents else ()
        ):
            self.used_sets.add(ref.name)
        for name in (follow.served_fact, follow.owned_fact):
            if name is None:
                continue
            self.used_facts.add(name)
            ftype = self.model.facts.get(name)
            if ftype is None:
                self.report(follow, "undefined-fact", f"`{name}` is not a declared fact")
            elif ftype.type.kind != "code":
                self.report(follow, "type-mismatch", f"`{name}` names a HCPCS code, so it must be a `code` fact")

    # ------------------------------------------------------------ conditions

    def check_condition(self, cond, owner: str, clause_names: set[str]) -> None:
        """Check every condition inside `cond`, in the order written (the IR walk)."""
        for node in ir.walk(cond):
            self._check_one(node, owner, clause_names)

    def _check_one(self, cond, owner: str, clause_names: set[str]) -> None:
        """Check one condition on its own; the walk reaches what is inside it."""
        model = self.model
        if isinstance(cond, ir.AtLeast):
            if not 1 <= cond.count <= len(cond.items):
                self.report(cond, "impossible-count", f"`at least {cond.count} of` has {len(cond.items)} items")
        elif isinstance(cond, ir.Clause):
            if cond.name in clause_names:
                self.report(cond, "duplicate-item", f"item `{cond.name}` appears twice in `{owner}`")
            clause_names.add(cond.name)
        elif isinstance(cond, ir.Truth):
            if cond.name in model.criteria:
                self.used_sets.add(cond.name)
                return
            ftype = self.fact_type(cond.name, cond)
            if ftype is not None and ftype.kind != "bool":
                self.report(
                    cond,
                    "type-mismatch",
                    f"`{cond.name}` is {_a(ftype)}, not a yes/no fact",
                    help=f"compare it, e.g. `{cond.name} is ...` or `{cond.name} >= ...`",
                )
        elif isinstance(cond, (ir.Is, ir.In)):
            ftype = self.fact_type(cond.name, cond)
            values = (cond.value,) if isinstance(cond, ir.Is) else cond.values
            if ftype is not None:
                for value in values:
                    value = coerce_value(ftype, value)
                    if ftype.kind == "date" and value == "none":
                        if not ftype.or_none:
                            self.report(
                                cond,
                                "type-mismatch",
                                f"`{cond.name}` is a date that is always given, so it is never `none`",
                                help=f"declare it `{cond.name}: date or none` if the record may show no such event",
                            )
                        continue
                    if cond.name == "place_of_service" and not _PLACE_OF_SERVICE.match(str(value)):
                        self.report(
                            cond,
                            "unknown-value",
                            f"`{_show(value)}` is not a place of service code, so no claim line matches it",
                            help="write the two-digit CMS code, e.g. `place_of_service is 12` for home",
                            severity="warning",
                        )
                        continue
                    if not _fits(ftype, value):
                        if ftype.kind == "enum":
                            self.report(
                                cond,
                                "unknown-value",
                                f"`{_show(value)}` is not a value of `{cond.name}` ({ftype.describe()})",
                            )
                        else:
                            self.report(
                                cond, "type-mismatch", f"`{cond.name}` is {_a(ftype)} and cannot be `{_show(value)}`"
                            )
        elif isinstance(cond, ir.Compare):
            self.check_compare(cond)
        elif isinstance(cond, ir.DiagnosisIn):
            for ref in cond.sets:
                self.used_sets.add(ref.name)
                if ref.name not in model.diagnosis_sets:
                    self.report(ref, "undefined-set", f"`{ref.name}` is not a diagnosis set")
        elif isinstance(cond, ir.BilledWith):
            for ref in cond.codes.include + (cond.other_than.include if cond.other_than else ()):
                self.used_sets.add(ref.name)
                if not self._is_codes(ref.name):
                    self.report(ref, "undefined-set", f"`{ref.name}` is not a code, code set or drug")
            if cond.period is not None:
                self.check_period(cond.period.unit, cond.period)
        elif isinstance(cond, ir.DrugIn):
            for ref in cond.codes.include:
                self.used_sets.add(ref.name)
                if not self._is_codes(ref.name):
                    self.report(ref, "undefined-set", f"`{ref.name}` is not a code, code set or drug")
        elif isinstance(cond, ir.LineOutcome):
            if cond.by is not None and cond.by.name not in {r.id for r in self.policy.rules}:
                self.report(cond.by, "undefined-rule", f"`{cond.by.name}` is not a rule of this policy")
            for ref in cond.codes.include:
                self.used_sets.add(ref.name)
                if _looks_like_code(ref.name) and not HCPCS.match(ref.name):
                    self.report(cond, "malformed-hcpcs", f"`{ref.name}` is not a HCPCS Level II code")
                elif not self._is_codes(ref.name):
                    self.report(ref, "undefined-set", f"`{ref.name}` is not a code, code set or drug")
        elif isinstance(cond, ir.Within):
            for operand in (cond.subject, cond.anchor):
                found = self.operand_type(operand, cond)
                if found is not None and found[0] != "date":
                    self.report(cond, "type-mismatch", f"`{_words.operand(operand)}` is not a date")
            self.check_period(cond.unit, cond)

    def check_period(self, unit: str, node) -> None:
        if types.UNIT_FAMILY.get(unit) not in types.TIME:
            self.report(node, "unit-mismatch", f"`{unit}` is not a length of time: write days, weeks, months or years")

    def _is_codes(self, name: str) -> bool:
        m = self.model
        return (
            name == ALL_DRUGS
            or name in m.code_sets
            or name in m.drug_tables
            or name in m.drugs
            or bool(HCPCS.match(name))
        )

    def fact_type(self, name: str, node) -> ir.FactType | None:
        if name in self.model.facts:
            self.used_facts.add(name)
            return self.model.facts[name].type
        if name in BUILTIN_FACTS or name == self.model.owned_name:
            return self.model.fact_type(name)
        close = _closest(name, list(self.model.facts) + list(BUILTIN_FACTS) + list(self.model.criteria))
        self.report(
            node,
            "undefined-fact",
            f"`{name}` is not a declared fact",
            help=f"did you mean `{close}`?" if close else "declare it under `facts`",
        )
        return None

    def operand_type(self, operand, node, other=None) -> types.Type | None:
        """The type of an operand, or None when it cannot be typed (each problem reported once)."""
        for name in _fact_names(operand):
            if name != "age":
                self.fact_type(name, node)  # reports an undefined fact, marks a declared one used
        for ref in _code_refs(operand):
            self.used_sets.add(ref.name)
            if not self._is_codes(ref.name):
                self.report(ref, "undefined-set", f"`{ref.name}` is not a code, code set or drug")
        for found in _periods(operand):
            self.check_period(found.unit, found)
        if any(n not in self.model.facts and n not in BUILTIN_FACTS for n in _fact_names(operand)):
            return None
        return types.type_of(self.model, operand, lambda n, code, message: self.report(n, code, message), other)

    def check_compare(self, cond: ir.Compare) -> None:
        if _is_age(cond.left) or _is_age(cond.right):
            other = cond.right if _is_age(cond.left) else cond.left
            found = self.operand_type(other, cond)
            if not isinstance(other, ir.Quantity) or types.time_unit(found[1] if found else ()) not in (
                "months",
                "years",
            ):
                self.report(cond, "unit-mismatch", "compare `age` with months or years, e.g. `age >= 1 month`")
            return
        left = self.operand_type(cond.left, cond, cond.right)
        right = self.operand_type(cond.right, cond, cond.left)
        if left is None or right is None:
            return
        (lk, lu), (rk, ru) = left, right
        if lk != "number" or rk != "number":
            if lk == rk == "date":
                return  # dates compare in calendar order
            if lk != rk or cond.op not in ("==", "!="):
                self.report(
                    cond,
                    "type-mismatch",
                    f"cannot compare a {_kind_words(cond.left, lk)} with a {_kind_words(cond.right, rk)}",
                )
            return
        if not types.comparable(lu, ru):
            self.report(cond, "unit-mismatch", f"cannot compare {types.words(lu)} with {types.words(ru)}")

    # ------------------------------------------------------------ whole-policy checks

    def check_unused(self) -> None:
        for fact in self.policy.facts:
            if fact.name not in self.used_facts:
                self.report(
                    fact, "unused-fact", f"fact `{fact.name}` is declared but no rule reads it", severity="warning"
                )
        # Sets referenced from other sets count as used.
        for cs in self.policy.code_sets:
            for entry in cs.entries:
                if isinstance(entry, ir.Ref):
                    self.used_sets.add(entry.name)
        for table in self.policy.drug_tables:
            for drug in table.drugs:
                if not drug.codes:
                    self.used_sets.add(drug.name)
        declared = [(cs.name, cs, "code set") for cs in self.policy.code_sets]
        declared += [(t.name, t, "drug table") for t in self.policy.drug_tables]
        declared += [(c.name, c, "criteria") for c in self.policy.criteria]
        for name, node, what in declared:
            if name in self.used_sets:
                continue
            if what == "drug table" and (
                ALL_DRUGS in self.used_sets or any(d.name in self.used_sets for d in node.drugs)
            ):
                continue
            if (
                what == "code set"
                and getattr(node, "entries", None)
                and any(isinstance(e, ir.CodeEntry) and e.description for e in node.entries)
            ):
                continue  # a HCPCS table of the policy stands for itself
            self.report(node, "unused-set", f"{what} `{name}` is declared but no rule uses it", severity="warning")

    def check_reachability(self) -> None:
        """A rule is unreachable when an earlier rule always decides every code it names."""
        model = self.model
        decided: dict[str, ir.Rule] = {}
        for rule in model.rules:
            if rule.kind in ("otherwise", "follow"):
                continue
            codes = model.targets.get(rule.id, {})
            if codes and rule.window.always and all(code in decided for code in codes):
                first = decided[next(iter(codes))]
                self.report(
                    rule,
                    "unreachable-rule",
                    f"rule `{rule.id}` can never decide: `{first.id}` (line {first.span.line}) "
                    "always decides its codes first",
                )
            if (
                rule.kind in ("cover", "deny", "refer")
                and isinstance(rule.condition, ir.Always)
                and not rule.requires
                and rule.window.always
                and not rule.targets.all_lines
            ):
                for code, windows in codes.items():
                    if windows is None:
                        decided.setdefault(code, rule)

    def check_passages(self) -> None:
        if not self.policy.source:
            return
        if self.document is None:
            self.report(
                self.policy.span,
                "missing-source",
                f"the source document `{self.policy.source}` cannot be read",
                help=f"keep the policy text beside the policy file, at `{self.doc_path}`",
            )
            return
        for passage in _all_passages(self.policy):
            if self.document.locate(passage.text) is None:
                self.report(
                    passage,
                    "quote-not-found",
                    "this passage is not in the source document",
                    help="quote the policy text exactly; leave words out with `...`",
                )


_PLACE_OF_SERVICE = re.compile(r"^[0-9]{2}$")


def _is_age(operand) -> bool:
    return isinstance(operand, ir.FactRef) and operand.name == "age"


def _fact_names(operand) -> Iterator[str]:
    if isinstance(operand, ir.FactRef):
        yield operand.name
    elif isinstance(operand, ir.Arith):
        yield from _fact_names(operand.left)
        yield from _fact_names(operand.right)


def _code_refs(operand) -> Iterator[ir.Ref]:
    if isinstance(operand, ir.EarlierUnits):
        yield from operand.codes.include
    elif isinstance(operand, ir.Arith):
        yield from _code_refs(operand.left)
        yield from _code_refs(operand.right)


def _periods(operand) -> Iterator[ir.Period]:
    if isinstance(operand, ir.EarlierUnits):
        yield operand.period
    elif isinstance(operand, ir.Arith):
        yield from _periods(operand.left)
        yield from _periods(operand.right)


def _looks_like_code(name: str) -> bool:
    return len(name) >= 3 and name[0].isupper() and name[1].isdigit()


def _a(ftype: ir.FactType) -> str:
    """`a bool`, `an int`, `one of A, B`: a fact's type as a phrase."""
    text = ftype.describe()
    if text.startswith("one of"):
        return text
    return ("an " if text[0] in "aeiou" else "a ") + text


def _show(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _kind_words(operand, kind: str) -> str:
    name = getattr(operand, "name", None)
    return f"{kind} (`{name}`)" if name else kind


def _fits(ftype: ir.FactType, value) -> bool:
    kind = ftype.kind
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "enum":
        return value in ftype.values
    if kind == "code":
        return isinstance(value, str)
    if kind == "text":
        return isinstance(value, str)
    if kind == "date":
        return hasattr(value, "isoformat")
    return False


def _overlap(a: ir.Window, b: ir.Window) -> bool:
    a_start, b_start = a.effective, b.effective
    a_end, b_end = a.until, b.until
    starts_before_b_ends = b_end is None or a_start is None or a_start < b_end
    b_starts_before_a_ends = a_end is None or b_start is None or b_start < a_end
    return starts_before_b_ends and b_starts_before_a_ends


def _all_passages(policy: ir.Policy) -> Iterator[ir.Passage]:
    for section in policy.sections:
        yield from _section_passages(section)
    for crit in policy.criteria:
        yield from crit.passages
        for clause in ir.clauses(crit.condition):
            yield from clause.passages
    if policy.revision is not None:
        yield from policy.revision.description
    yield from policy.description


def _section_passages(section: ir.Section) -> Iterator[ir.Passage]:
    yield from section.passages
    for rule in section.rules:
        yield from rule.passages
        for clause in ir.clauses(rule.condition):
            yield from clause.passages
    for sub in section.sections:
        yield from _section_passages(sub)


def _closest(name: str, candidates: list[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    return found[0] if found else None


def check(model: Model, document: SourceDocument | None = None, doc_path: str | None = None) -> list[Diagnostic]:
    """Every problem in a resolved policy, sorted by position."""
    return _Checker(model, document, doc_path).run()
