"""What an editor asks of a policy: the names it declares and reads, what a name means, where
it is declared and used, what may be written next, and the outline of the file.

The language server (medpol.authoring.lsp) answers its requests from here. Everything works on a
policy's text and the library around it (the policies beside it in its folder), read through
the same parser, lowering and resolution as `medpol check`. Lines and columns are counted
from 0, in characters; the server converts them to the editor's units.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs
from lark import Token, Tree

from medpol.compiler import words
from medpol.compiler.resolve import ALL_DRUGS, BUILTIN_FACTS, Model
from medpol.dsl import ir
from medpol.dsl.lower import unquote
from medpol.dsl.parser import parse

# Kinds of names. A name's kind is the kind of what declares it.
FACT = "fact"
CODES = "codes"
DIAGNOSES = "diagnoses"
DRUGS = "drugs"  # a drug table
DRUG = "drug"
CRITERIA = "criteria"
RULE = "rule"
ITEM = "item"
SECTION = "section"
POLICY = "policy"
CODE = "code"
DATE = "date"
VALUE = "value"
OTHER_CRITERIA = "criteria of another policy"
UNKNOWN = "unknown"

# Looking a name up: the kinds in the order a name is tried.
_NAMED_KINDS = (CRITERIA, FACT, CODES, DIAGNOSES, DRUGS, DRUG, RULE)
_SETS = (CODES, DRUGS, DRUG)

KEYWORDS_TOP = ("facts", "codes", "diagnoses", "drugs", "criteria", "section", "precedence", "change history")
KEYWORDS_RULE = (
    "cover",
    "deny",
    "limit",
    "refer",
    "otherwise deny as",
    "effective",
    "until",
    "show",
)
KEYWORDS_SECTION = ("rule", "section", "require")
KEYWORDS_CONDITION = (
    "all of",
    "any of",
    "none of",
    "at least",
    "not",
    "item",
    "diagnosis in",
    "billed with",
    "drug in",
    "has modifier",
    "meets",
    "service_date",
    "units",
)
TYPES = ("bool", "int", "number", "date", "date or none", "code", "one of")
CATEGORIES = tuple(words.CATEGORY_WORDS.values())


@attrs.frozen
class Occurrence:
    """A name written in the policy: where, what kind of name, and whether it declares it.

    `owner` is the fact of a value, the policy of another policy's criteria, and for a date
    the words saying what it governs.
    """

    name: str
    kind: str
    line: int
    start: int
    end: int
    declares: bool = False
    owner: str | None = None

    def contains(self, line: int, column: int) -> bool:
        return self.line == line and self.start <= column <= self.end


@attrs.frozen
class Symbol:
    """An entry of the file's outline."""

    name: str
    detail: str
    kind: str
    range: tuple[int, int, int, int]  # start line, start column, end line, end column
    selection: tuple[int, int, int, int]
    children: tuple[Symbol, ...] = ()


def _token_place(tok: Token) -> tuple[int, int, int]:
    return tok.line - 1, tok.column - 1, tok.end_column - 1


class Analysis:
    """A policy's text that parses: its tree, its resolved model, and every name in it.

    Raises PolicyError (from the parser or lowering) for a text that does not read.
    """

    def __init__(self, text: str, path: str):
        from medpol.api import resolved

        self.text = text
        self.path = path
        self.tree = parse(text, path)
        self.model: Model = resolved(text, path)
        self.policy = self.model.policy
        self.occurrences: list[Occurrence] = []
        self.declared: dict[tuple[str, str], Occurrence] = {}
        self._walk(self.tree, [])
        for occ in self.occurrences:
            if occ.declares:
                self.declared.setdefault((occ.kind, occ.name), occ)

    # ------------------------------------------------------------ the names in the tree

    def kind_of(self, name: str) -> str:
        """What a name written in a condition or a target list refers to."""
        model = self.model
        if name in model.criteria:
            return CRITERIA
        if name in model.facts or name in BUILTIN_FACTS or name == model.owned_name:
            return FACT
        for cs in self.policy.code_sets:
            if cs.name == name:
                return CODES if cs.kind == "codes" else DIAGNOSES
        if name in model.drug_tables or name == ALL_DRUGS:
            return DRUGS
        if name in model.drugs:
            return DRUG
        if any(rule.id == name for rule in self.policy.rules):
            return RULE
        return UNKNOWN

    def _add(self, tok: Token, kind: str, declares: bool = False, owner: str | None = None) -> None:
        line, start, end = _token_place(tok)
        self.occurrences.append(Occurrence(str(tok), kind, line, start, end, declares, owner))

    def _walk(self, tree: Tree, ancestors: list[Tree]) -> None:
        data = tree.data
        kids = tree.children
        tokens = [c for c in kids if isinstance(c, Token)]
        ids = [t for t in tokens if t.type == "ID"]
        declared_here = {
            "fact": FACT,
            "codes": CODES,
            "diagnoses": DIAGNOSES,
            "drugs": DRUGS,
            "criteria": CRITERIA,
            "rule": RULE,
            "clause": ITEM,
        }
        skip: set[int] = set()
        if data in declared_here and ids:
            self._add(ids[0], declared_here[data], declares=True)
            skip.add(id(ids[0]))
        elif data == "drug" and ids:
            # A drug listed again by name alone refers to its first declaration.
            has_codes = any(t.type == "CODE" for t in tokens)
            self._add(ids[0], DRUG, declares=has_codes)
            skip.add(id(ids[0]))
        elif data == "section":
            for t in tokens:
                if t.type == "SECTION_ID":
                    self._add(t, SECTION, declares=True)
        elif data == "policy_header":
            for t in tokens:
                if t.type == "POLICY_ID":
                    self._add(t, POLICY, declares=True)
        elif data == "criteria_of":
            policy = next((t for t in tokens if t.type == "POLICY_ID"), None)
            if ids and policy is not None:
                self._add(ids[0], OTHER_CRITERIA, owner=str(policy))
                self._add(policy, POLICY)
            return
        elif data == "refer":
            for t in tokens:
                if t.type == "POLICY_ID":
                    self._add(t, POLICY)
        elif data in ("is_", "is_not", "in_") and ids:
            fact = ids[0]
            self._add(fact, self.kind_of(str(fact)))
            for t in tokens[1:]:
                if t.type in ("ID", "NUMBER", "STRING"):
                    self._add(t, VALUE, owner=str(fact))
            for child in kids:
                if isinstance(child, Tree):
                    self._walk_values(child, str(fact))
            return
        elif data == "has_modifier":
            return  # a billing modifier, not a name of the policy
        elif data == "follow" and len(ids) == 2:
            skip.add(id(ids[0]))  # the author's word for a base, not a name
        elif data == "diagnosis_in":
            for t in ids:
                self._add(t, DIAGNOSES if self.kind_of(str(t)) in (DIAGNOSES, UNKNOWN) else self.kind_of(str(t)))
                skip.add(id(t))
        elif data == "decided_by":
            for t in ids:
                self._add(t, RULE)
                skip.add(id(t))
        elif data == "type_enum":
            fact = ancestors[-1].children[0] if ancestors and ancestors[-1].data == "fact" else None
            for t in tokens:
                if t.type == "VALUE":
                    self._add(t, VALUE, declares=True, owner=str(fact) if fact is not None else None)
        for t in tokens:
            if id(t) in skip:
                continue
            if t.type == "ID":
                self._add(t, self.kind_of(str(t)))
            elif t.type == "CODE":
                self._add(t, CODE, declares=data == "code_entry" or data == "dx_entry")
            elif t.type == "DATE":
                self._add(t, DATE, owner=self._date_words(t, tree, ancestors))
        for child in kids:
            if isinstance(child, Tree):
                self._walk(child, ancestors + [tree])

    def _walk_values(self, tree: Tree, fact: str) -> None:
        for t in tree.scan_values(lambda v: isinstance(v, Token)):
            if t.type in ("ID", "NUMBER", "STRING"):
                self._add(t, VALUE, owner=fact)

    def _date_words(self, tok: Token, tree: Tree, ancestors: list[Tree]) -> str:
        """What a date of the policy governs, in words."""
        day = str(tok)
        if tree.data == "revision":
            dates = [t for t in tree.children if isinstance(t, Token) and t.type == "DATE"]
            number = str(tree.children[0])
            if dates and tok is dates[0]:
                return f"the date revision {number} was published (`dated`); `--known-at` picks revisions by it"
            return f"revision {number} decides lines served on or after {day} (its `effective` date)"
        if tree.data == "date_literal":
            return "a date compared in a condition"
        if tree.data not in ("effective", "until"):
            return "a date"
        starts = tree.data == "effective"
        when = f"from {day}" if starts else f"before {day} (until the day before)"
        owner = ancestors[-1] if ancestors else None
        if owner is None:
            return "a window"
        owner_tokens = [c for c in owner.children if isinstance(c, Token)]
        if owner.data == "code_entry":
            code = str(owner_tokens[0])
            table = _first_id(ancestors[-2]) if len(ancestors) >= 2 else "?"
            return f"code `{code}` is a member of `{table}` {when}"
        if owner.data == "dx_entry":
            codes = "-".join(str(t) for t in owner_tokens if t.type == "CODE")
            diag = next((a for a in reversed(ancestors) if a.data == "diagnoses"), None)
            return f"diagnosis `{codes}` is in `{_first_id(diag) if diag else '?'}` {when}"
        if owner.data == "drug":
            table = next((a for a in reversed(ancestors) if a.data == "drugs"), None)
            return f"drug `{owner_tokens[0]}` is in table `{_first_id(table) if table else '?'}` {when}"
        if owner.data == "rule_window":
            rule = next((a for a in reversed(ancestors) if a.data == "rule"), None)
            return f"rule `{_first_id(rule) if rule else '?'}` decides lines served {when}; outside it, it is left out"
        if owner.data == "clause":
            label = str(owner_tokens[0])
            name = next((str(t) for t in owner_tokens if t.type == "ID"), "?")
            within = next((a for a in reversed(ancestors) if a.data in ("rule", "criteria")), None)
            where = f" of {within.data} `{_first_id(within)}`" if within is not None else ""
            return (
                f"item {label} `{name}`{where} is read for lines served {when}; "
                "outside it, it is left out, as if it were not written"
            )
        return f"in effect {when}"

    # ------------------------------------------------------------ lookups

    def at(self, line: int, column: int) -> Occurrence | None:
        for occ in self.occurrences:
            if occ.contains(line, column):
                return occ
        return None

    def declaration(self, occ: Occurrence) -> Occurrence | None:
        """Where the name `occ` is declared in this policy, if it is."""
        if occ.kind == CODE:
            return self.declared.get((CODE, occ.name))
        if occ.kind == VALUE:
            return next(
                (
                    o
                    for o in self.occurrences
                    if o.kind == VALUE and o.declares and o.name == occ.name and o.owner == occ.owner
                ),
                None,
            )
        return self.declared.get((occ.kind, occ.name))

    def uses(self, kind: str, name: str) -> list[Occurrence]:
        if kind == VALUE:
            return []
        return [o for o in self.occurrences if o.kind == kind and o.name == name]

    def rules_deciding(self, code: str) -> list[ir.Rule]:
        model = self.model
        found = [rule for rule in self.policy.rules if code in model.targets.get(rule.id, {})]
        if model.follow is not None and (code in model.bases or code in model.dependents):
            if model.follow not in found:
                found.append(model.follow)
        return found

    def sets_listing(self, code: str) -> list[str]:
        listed = [name for name, members in self.model.code_sets.items() if code in members]
        listed += [name for name, members in self.model.drug_tables.items() if code in members]
        return listed

    # ------------------------------------------------------------ hover

    def hover(self, occ: Occurrence, library: LibraryView | None = None) -> str | None:
        """Markdown saying what the name at `occ` is."""
        model, policy = self.model, self.policy
        name = occ.name
        if occ.kind == FACT:
            fact = model.facts.get(name)
            if fact is None:
                ftype = model.fact_type(name)
                if ftype is None:
                    return None
                return f"**built-in fact** `{name}`: {ftype.describe()}"
            return _fact_words(fact)
        if occ.kind in (CODES, DIAGNOSES):
            cs = next((c for c in policy.code_sets if c.name == name), None)
            return _set_words(cs, model) if cs is not None else None
        if occ.kind == DRUGS:
            if name == ALL_DRUGS:
                return f"**drugs**: every drug of every table ({len(model.drug_codes)} codes)"
            table = next((t for t in policy.drug_tables if t.name == name), None)
            return _drug_table_words(table, model) if table is not None else None
        if occ.kind == DRUG:
            drug = model.drugs.get(name)
            if drug is None:
                return None
            tables = [t.name for t in policy.drug_tables if any(d.name == name for d in t.drugs)]
            text = f"**drug** `{name}`: {', '.join(_code_words(c, model) for c in drug.codes)}"
            if drug.vial_units:
                text += f"\n\na vial is {words._number(drug.vial_units)} units"
            return text + "\n\nin " + ", ".join(f"`{t}`" for t in tables)
        if occ.kind == CRITERIA:
            crit = model.criteria.get(name)
            return _criteria_words(crit, policy.id) if crit is not None else None
        if occ.kind == OTHER_CRITERIA:
            other = library.analysis_of_policy(occ.owner) if library is not None else None
            if other is None:
                return f"**criteria** `{name}` of policy `{occ.owner}`, which the library does not hold"
            crit = other.model.criteria.get(name)
            if crit is None:
                return f"policy `{occ.owner}` has no criteria `{name}`"
            return _criteria_words(crit, occ.owner)
        if occ.kind == RULE:
            rule = next((r for r in policy.rules if r.id == name), None)
            return _rule_words(rule) if rule is not None else None
        if occ.kind == ITEM:
            return self._item_hover(occ)
        if occ.kind == SECTION:
            section = next((s for s in _sections(policy.sections) if s.id == name), None)
            return f'**section** {name} "{section.title}"' if section is not None else None
        if occ.kind == POLICY:
            if name == policy.id:
                return _policy_words(policy)
            other = library.analysis_of_policy(name) if library is not None else None
            if other is None:
                return f"policy `{name}` is not a policy of the library"
            return _policy_words(other.policy)
        if occ.kind == CODE:
            return self._code_hover(name)
        if occ.kind == DATE:
            return f"**{name}**: {occ.owner}"
        if occ.kind == VALUE:
            fact = model.facts.get(occ.owner or "")
            if fact is None:
                return None
            label = fact.type.label(name)
            shown = f" ({label})" if label else ""
            return f"value `{name}`{shown} of fact `{fact.name}`: {fact.type.describe()}"
        return None

    def _item_hover(self, occ: Occurrence) -> str:
        """An item of a rule or criteria: its label, where it is, its window and first passage."""
        for owner, condition in [(f"criteria `{c.name}`", c.condition) for c in self.policy.criteria] + [
            (f"rule `{r.id}`", r.condition) for r in self.policy.rules
        ]:
            for clause in ir.clauses(condition):
                if clause.name == occ.name and clause.span.line == occ.line + 1:
                    text = f"**item {clause.label}** `{clause.name}` of {owner}, cited on its own in decisions"
                    window = words.window_words(clause.window)
                    if window:
                        text += f"; {window}"
                    if clause.passages:
                        text += f"\n\n> {clause.passages[0].text}"
                    return text
        return f"**item** `{occ.name}`, cited on its own in decisions"

    def _code_hover(self, code: str) -> str:
        model = self.model
        dx_sets = [cs.name for cs in self.policy.code_sets if cs.kind == "diagnoses" and _dx_lists(cs, code)]
        if dx_sets and code not in model.descriptions and code not in model.governed:
            return f"**{code}** (ICD-10-CM)\n\nin diagnoses " + ", ".join(f"`{s}`" for s in dx_sets)
        lines = [f"**{code}** {model.descriptions.get(code, '')}".rstrip()]
        listed = self.sets_listing(code)
        if listed:
            lines.append("listed in " + ", ".join(f"`{s}`" for s in listed))
        deciding = self.rules_deciding(code)
        if deciding:
            lines.append("decided by:\n\n" + "\n".join(f"- rule `{r.id}`: {words.decision(r)}" for r in deciding))
        else:
            lines.append("no rule of this policy decides it")
        return "\n\n".join(lines)

    # ------------------------------------------------------------ outline

    def outline(self) -> list[Symbol]:
        return [s for child in self.tree.children if isinstance(child, Tree) for s in _symbols(child)]


def _first_id(tree: Tree | None) -> str:
    if tree is None:
        return "?"
    return next((str(t) for t in tree.children if isinstance(t, Token) and t.type in ("ID", "SECTION_ID")), "?")


def _sections(sections: Iterable[ir.Section]) -> Iterator[ir.Section]:
    for s in sections:
        yield s
        yield from _sections(s.sections)


def _dx_lists(cs: ir.CodeSet, code: str) -> bool:
    return any(isinstance(e, ir.CodeEntry) and (e.code == code or e.last == code) for e in cs.entries)


def _fact_words(fact: ir.Fact) -> str:
    options = []
    if fact.per_line:
        options.append("per line")
    if fact.has_default:
        default = fact.default
        options.append(f"default {str(default).lower() if isinstance(default, bool) else default}")
    head = f"**fact** `{fact.name}`: {fact.type.describe()}" + ("".join(f", {o}" for o in options))
    return head + (f"\n\n{fact.question}" if fact.question else "")


def _code_words(code: str, model: Model) -> str:
    described = model.descriptions.get(code)
    return f"`{code}` {described}" if described else f"`{code}`"


_MAX_ROWS = 40


def _set_words(cs: ir.CodeSet, model: Model) -> str:
    head = f"**{cs.kind}** `{cs.name}`: {cs.title}"
    rows = []
    if cs.kind == "diagnoses":
        for entry in cs.entries:
            if isinstance(entry, ir.CodeEntry):
                rows.append(f"`{entry.code}-{entry.last}`" if entry.last else f"`{entry.code}`")
        return head + "\n\n" + ", ".join(rows)
    members = model.code_sets.get(cs.name, {})
    for code in members:
        rows.append(f"- {_code_words(code, model)}")
    if len(rows) > _MAX_ROWS:
        rows = rows[:_MAX_ROWS] + [f"- ... {len(members) - _MAX_ROWS} more"]
    return head + "\n\n" + "\n".join(rows)


def _drug_table_words(table: ir.DrugTable, model: Model) -> str:
    rows = []
    for drug in table.drugs:
        codes = drug.codes or (model.drugs[drug.name].codes if drug.name in model.drugs else ())
        window = words.window_words(drug.window)
        rows.append(f"- {drug.name}: {', '.join(codes)}" + (f" ({window})" if window else ""))
    return f"**drugs** `{table.name}`: {table.title}\n\n" + "\n".join(rows[:_MAX_ROWS])


def _criteria_words(crit: ir.Criteria, policy_id: str) -> str:
    text = f"**criteria** `{crit.name}` of policy `{policy_id}`: {crit.title}"
    if crit.passages:
        text += f"\n\n> {crit.passages[0].text}"
    items = [c for c in crit.condition.items if isinstance(c, ir.Clause)]
    if items:
        text += "\n\n" + "\n".join(f"- item {c.label} `{c.name}`" for c in items)
    return text


def _rule_words(rule: ir.Rule) -> str:
    text = f"**rule** `{rule.id}` ({rule.section}): {words.decision(rule)}"
    window = words.window_words(rule.window)
    if window:
        text += f", {window}"
    if rule.passages:
        text += f"\n\n> {rule.passages[0].text}"
    return text


def _policy_words(policy: ir.Policy) -> str:
    text = f'**policy** `{policy.id}` "{policy.title}"'
    if policy.revision is not None:
        rev = policy.revision
        text += f"\n\nrevision {rev.number} dated {rev.dated.isoformat()} effective {rev.effective.isoformat()}"
    return text + f"\n\n{policy.path}"


_SYMBOL_KINDS = {
    "policy_header": "module",
    "facts": "namespace",
    "fact": "field",
    "codes": "enum",
    "diagnoses": "enum",
    "drugs": "enum",
    "criteria": "function",
    "section": "namespace",
    "rule": "method",
    "clause": "constant",
    "precedence": "object",
    "change_history": "object",
}


def _range(tree: Tree) -> tuple[int, int, int, int]:
    meta = tree.meta
    if getattr(meta, "empty", True):
        return (0, 0, 0, 0)
    return (meta.line - 1, meta.column - 1, meta.end_line - 1, meta.end_column - 1)


def _symbols(tree: Tree) -> list[Symbol]:
    data = tree.data
    children = [s for child in tree.children if isinstance(child, Tree) for s in _symbols(child)]
    if data not in _SYMBOL_KINDS:
        return children
    tokens = [c for c in tree.children if isinstance(c, Token)]
    whole = _range(tree)
    name_tok = next((t for t in tokens if t.type in ("ID", "SECTION_ID", "POLICY_ID")), None)
    strings = [unquote(t) for t in tokens if t.type == "STRING"]
    if data == "clause":
        name = f"item {tokens[0]} {name_tok}"
    elif data == "facts":
        name = "facts"
    elif data == "precedence":
        name, children = "precedence", []
    elif data == "change_history":
        name, children = "change history", []
    elif data == "policy_header":
        name, children = f"policy {name_tok}", []
    elif data in ("codes", "diagnoses", "drugs", "criteria", "section"):
        name = f"{data} {name_tok}"
    else:
        name = str(name_tok)
    detail = strings[0] if strings and data != "clause" else ""
    if data == "fact":
        detail = ""
    if name_tok is not None:
        line, start, end = _token_place(name_tok)
        selection = (line, start, line, end)
    else:
        selection = (whole[0], whole[1], whole[0], whole[1])
    if data in ("codes", "diagnoses", "drugs"):
        children = []
    return [Symbol(name, detail, _SYMBOL_KINDS[data], whole, selection, tuple(children))]


# ---------------------------------------------------------------- the library around a policy


class LibraryView:
    """The policies beside a policy file in its folder, each read from the editor when it is
    open there (`text_of`), else from disk."""

    def __init__(self, path: str, text_of: Callable[[str], str | None]):
        self.path = path
        self.text_of = text_of

    def files(self) -> list[str]:
        return sorted(str(f) for f in Path(self.path).parent.glob("*.policy"))

    def analysis_of(self, path: str) -> Analysis | None:
        text = self.text_of(path)
        if text is None:
            return None
        return analyse(text, path)

    def analysis_of_policy(self, policy_id: str | None) -> Analysis | None:
        for path in self.files():
            text = self.text_of(path)
            if text is None or _declared_id(text) != policy_id:
                continue
            return analyse(text, path)
        return None

    def policies(self) -> dict[str, Analysis]:
        found = {}
        for path in self.files():
            analysis = self.analysis_of(path)
            if analysis is not None:
                found.setdefault(analysis.policy.id, analysis)
        return found


_HEADER = re.compile(r"^policy\s+([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b", re.MULTILINE)


def _declared_id(text: str) -> str | None:
    found = _HEADER.search(text)
    return found.group(1) if found else None


@functools.lru_cache(maxsize=16)
def _analyse(text: str, path: str) -> Analysis | None:
    from medpol.dsl.diagnostics import PolicyError

    try:
        return Analysis(text, path)
    except PolicyError:
        return None


def analyse(text: str, path: str) -> Analysis | None:
    """The analysis of a policy's text, or None when the text does not parse; kept for the texts last asked about."""
    return _analyse(text, path)


# ---------------------------------------------------------------- definition and references


def definitions(analysis: Analysis, occ: Occurrence, library: LibraryView | None) -> list[tuple[str, Occurrence]]:
    """Where the name at `occ` is declared: (path, occurrence) pairs."""
    if occ.kind == POLICY:
        other = library.analysis_of_policy(occ.name) if library is not None else None
        target = other if other is not None else (analysis if occ.name == analysis.policy.id else None)
        if target is None:
            return []
        decl = target.declared.get((POLICY, occ.name))
        return [(target.path, decl)] if decl is not None else []
    if occ.kind == OTHER_CRITERIA:
        other = library.analysis_of_policy(occ.owner) if library is not None else None
        if other is None:
            return []
        decl = other.declared.get((CRITERIA, occ.name))
        return [(other.path, decl)] if decl is not None else []
    decl = analysis.declaration(occ)
    return [(analysis.path, decl)] if decl is not None else []


def references(
    analysis: Analysis, occ: Occurrence, library: LibraryView | None, include_declaration: bool = True
) -> list[tuple[str, Occurrence]]:
    """Every place the name at `occ` is written, across the library for policies and criteria."""
    found: list[tuple[str, Occurrence]] = []
    others = library.policies() if library is not None else {analysis.policy.id: analysis}
    if occ.kind in (POLICY, OTHER_CRITERIA, CRITERIA):
        if occ.kind == POLICY:
            wanted_policy, wanted = occ.name, None
        elif occ.kind == OTHER_CRITERIA:
            wanted_policy, wanted = occ.owner, occ.name
        else:
            wanted_policy, wanted = analysis.policy.id, occ.name
        for other in others.values():
            for o in other.occurrences:
                if wanted is None and o.kind == POLICY and o.name == wanted_policy:
                    found.append((other.path, o))
                elif wanted is not None and o.kind == OTHER_CRITERIA and o.owner == wanted_policy and o.name == wanted:
                    found.append((other.path, o))
                elif (
                    wanted is not None and other.policy.id == wanted_policy and o.kind == CRITERIA and o.name == wanted
                ):
                    found.append((other.path, o))
        if occ.kind == CRITERIA and analysis.policy.id not in others:
            found += [(analysis.path, o) for o in analysis.uses(CRITERIA, occ.name)]
    elif occ.kind == ITEM:
        found = [(analysis.path, occ)]  # an item is named where it is written, and nowhere else
    elif occ.kind == VALUE:
        found = [
            (analysis.path, o)
            for o in analysis.occurrences
            if o.kind == VALUE and o.name == occ.name and o.owner == occ.owner
        ]
    else:
        found = [(analysis.path, o) for o in analysis.uses(occ.kind, occ.name)]
    if not include_declaration:
        found = [(p, o) for p, o in found if not o.declares]
    seen, unique = set(), []
    for path, o in found:
        key = (path, o.line, o.start)
        if key not in seen:
            seen.add(key)
            unique.append((path, o))
    return unique


# ---------------------------------------------------------------- completion


@attrs.frozen
class Completion:
    label: str
    kind: str  # a kind of name, "keyword", "type" or "value"
    detail: str = ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _openers(lines: list[str], row: int, indent: int) -> list[str]:
    """The lines that open the blocks around a position, innermost first (stripped)."""
    found = []
    for number in range(row - 1, -1, -1):
        line = lines[number]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _indent(line) < indent:
            found.append(stripped)
            indent = _indent(line)
            if indent == 0:
                break
    return found


_CONDITION_OPENER = re.compile(r"(\bwhen|\bunless|\ball of|\bany of|\bnone of|\bat least \d+ of|\brequire)\s*(#.*)?$")
_TARGETS = re.compile(
    r"(?:^\s*(?:cover|deny|limit(?: each of)?|refer)|\bexcept|\bbilled with|\bdrug in|\bother than|\bearlier units of"
    r"|^\s*codes \w+ \"[^\"]*\" =)\s+(?:[\w.]+\s*,\s*)*[\w.]*$"
)


def completions(
    text: str, line: int, column: int, analysis: Analysis | None, library: LibraryView | None = None
) -> list[Completion]:
    """What may be written at a position, from the text as it is now (it may not parse) and
    the names of the policy's last text that did."""
    lines = text.split("\n")
    current = lines[line] if line < len(lines) else ""
    prefix = current[:column]
    stripped = prefix.lstrip(" ")
    model = analysis.model if analysis is not None else None

    def names(*kinds: str) -> list[Completion]:
        if analysis is None:
            return []
        out = []
        for (kind, name), _occ in analysis.declared.items():
            if kind in kinds:
                out.append(Completion(name, kind, _detail(analysis, kind, name)))
        if FACT in kinds:
            out += [Completion(name, FACT, f"built-in: {t.describe()}") for name, t in BUILTIN_FACTS.items()]
        if DRUGS in kinds:
            out.append(Completion(ALL_DRUGS, DRUGS, "every drug of every table"))
        return out

    def keywords(words_: Iterable[str]) -> list[Completion]:
        return [Completion(w, "keyword") for w in words_]

    if re.search(r'"[^"]*$', prefix.replace('\\"', "")):
        return []  # inside a passage
    if re.search(r"\bdiagnosis in\s+(?:\w+\s*,\s*)*\w*$", prefix):
        return names(DIAGNOSES)
    found = re.search(r"\bmeets\s+(\w+)\s+of\s+[\w-]*$", prefix)
    if found:
        return [
            Completion(pid, POLICY, other.policy.title)
            for pid, other in _library_policies(library).items()
            if found.group(1) in other.model.criteria
        ]
    if re.search(r"\bmeets\s+\w*$", prefix):
        out = []
        for pid, other in _library_policies(library).items():
            if analysis is not None and pid == analysis.policy.id:
                continue
            for crit in other.model.criteria.values():
                out.append(Completion(f"{crit.name} of {pid}", OTHER_CRITERIA, crit.title))
        return out
    if re.search(r"\bto\s+policy\s+[\w-]*$", prefix):
        return [Completion(pid, POLICY, other.policy.title) for pid, other in _library_policies(library).items()]
    if re.search(r"\bas\s+[\w ]*$", prefix) and not re.search(r"\bas\s+\w+\s+\w+\s+\w+\s+\w+\s", prefix):
        return keywords(CATEGORIES)
    found = re.search(r"\b(\w+)\s+(?:is(?:\s+not)?|in)\s+(?:\w+\s*,\s*)*\w*$", prefix)
    if found and model is not None:
        fact = model.facts.get(found.group(1))
        ftype = model.fact_type(found.group(1))
        if ftype is not None and ftype.kind == "enum":
            out = [Completion(v, VALUE, ftype.label(v) or f"of {found.group(1)}") for v in ftype.values]
            if re.search(r"\bis\s+\w*$", prefix):
                out.append(Completion("not", "keyword"))
            return out
        if ftype is not None and ftype.kind == "date" and fact is not None and fact.type.or_none:
            return [Completion("none", VALUE), Completion("not", "keyword")]
        if ftype is not None and ftype.kind == "bool":
            return [Completion("true", VALUE), Completion("false", VALUE)]
    if _TARGETS.search(prefix):
        return names(*_SETS)
    if re.match(r"^\s*\w+\s*:\s*[\w ]*$", prefix) and _openers(lines, line, _indent(current) or column)[-1:] == [
        "facts"
    ]:
        return [Completion(t, "type") for t in TYPES]
    if not stripped or re.fullmatch(r"[\w.]*", stripped):
        indent = len(prefix) - len(stripped)
        if indent == 0:
            return keywords(KEYWORDS_TOP)
        openers = _openers(lines, line, indent)
        inner = openers[0] if openers else ""
        if _CONDITION_OPENER.search(inner) or inner.startswith(("item ", "criteria ")):
            return names(FACT, CRITERIA) + keywords(KEYWORDS_CONDITION)
        if inner.startswith("rule "):
            return keywords(KEYWORDS_RULE)
        if inner.startswith("section "):
            return keywords(KEYWORDS_SECTION)
        if inner.startswith(("codes ", "drugs ", "diagnoses ", "facts", "policy ", "revision ", "precedence")):
            return []
        return names(FACT, CRITERIA) + keywords(KEYWORDS_CONDITION)
    # A condition written after `when` or `unless`: a name or a condition's first words.
    if re.search(r"\b(when|unless)\s+[\w.]*$", prefix):
        return names(FACT, CRITERIA) + keywords(KEYWORDS_CONDITION)
    # Inside a condition, after `and`, `or`, `not`, `(` or a comparison: a name.
    if re.search(r"(\band|\bor|\bnot|\(|[<>=!]=?|[-+*/])\s*[\w.]*$", prefix):
        return names(FACT, CRITERIA)
    return []


def _library_policies(library: LibraryView | None) -> dict[str, Analysis]:
    return library.policies() if library is not None else {}


def _detail(analysis: Analysis, kind: str, name: str) -> str:
    model = analysis.model
    if kind == FACT and name in model.facts:
        return model.facts[name].type.describe()
    if kind in (CODES, DIAGNOSES):
        cs = next((c for c in analysis.policy.code_sets if c.name == name), None)
        return cs.title if cs is not None else ""
    if kind == DRUGS:
        table = next((t for t in analysis.policy.drug_tables if t.name == name), None)
        return table.title if table is not None else ""
    if kind == CRITERIA and name in model.criteria:
        return model.criteria[name].title
    if kind == DRUG and name in model.drugs:
        return ", ".join(model.drugs[name].codes)
    return kind
