"""Compare two versions of a policy by meaning.

Two versions of a library (a folder of policies) compare policy by policy, matched by id:
each policy added, removed, or changed (with its own diff). What a change does to claims
is medpol/history/impact.py's to measure: it decides them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Mapping

import attrs

from medpol.compiler import words
from medpol.compiler.resolve import ALL_DRUGS, Members, Model, normalize_icd
from medpol.dsl import ir

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"


# ---------------------------------------------------------------- the diff


@attrs.frozen
class FieldChange:
    """One named value, before and after, in words ("" when absent)."""

    field: str
    before: str
    after: str


@attrs.frozen
class ListChange:
    before: tuple[str, ...]
    after: tuple[str, ...]


@attrs.frozen
class ItemChange:
    """A numbered item (clause) of a rule or criteria set, matched by its name."""

    name: str
    label: str
    change: str
    window: str  # the item's window in words, as it stands after (before, when removed)
    condition: str
    passages: tuple[str, ...]
    fields: tuple[FieldChange, ...] = ()


@attrs.frozen
class CodeDelta:
    """A code a rule decides, gained, lost, or decided in other windows."""

    code: str
    change: str
    before: str
    after: str


@attrs.frozen
class RuleSummary:
    """A rule as a whole, for one that was added or removed."""

    id: str
    section: str
    kind: str
    decision: str
    window: str
    require: str
    condition: str
    passages: tuple[str, ...]
    codes: tuple[str, ...]


@attrs.frozen
class RuleChange:
    id: str
    section: str
    decision: str
    changed: tuple[str, ...]  # the aspects that changed: decision, condition, items, passages, window, ...
    fields: tuple[FieldChange, ...]
    condition_before: str | None
    condition_after: str | None
    items: tuple[ItemChange, ...]
    passages_added: tuple[str, ...]
    passages_removed: tuple[str, ...]
    codes: tuple[CodeDelta, ...]


@attrs.frozen
class ReachChange:
    """A rule whose text is unchanged but which decides other codes, through a changed set."""

    id: str
    decision: str
    codes: tuple[CodeDelta, ...]


@attrs.frozen
class SectionChange:
    id: str
    title: str
    change: str
    fields: tuple[FieldChange, ...]
    passages_added: tuple[str, ...]
    passages_removed: tuple[str, ...]


@attrs.frozen
class EntryChange:
    """An entry of a code set, diagnosis set or drug table."""

    entry: str  # the code, ICD-10-CM code or range, set name, or drug name, as written
    change: str
    description: str
    codes: tuple[str, ...]  # the HCPCS the entry puts in its table
    window: str
    is_set: bool = False  # the entry names another set, whose codes it brings in
    fields: tuple[FieldChange, ...] = ()


@attrs.frozen
class TableDiff:
    name: str
    kind: str  # codes | diagnoses | drugs
    title: str
    change: str
    fields: tuple[FieldChange, ...]
    entries: tuple[EntryChange, ...]


@attrs.frozen
class FactChange:
    name: str
    change: str
    type: str
    question: str
    fields: tuple[FieldChange, ...] = ()


@attrs.frozen
class CriteriaChange:
    name: str
    title: str
    change: str
    fields: tuple[FieldChange, ...]
    condition_before: str | None
    condition_after: str | None
    items: tuple[ItemChange, ...]
    passages_added: tuple[str, ...]
    passages_removed: tuple[str, ...]


@attrs.frozen
class HistoryChange:
    revision: str
    change: str
    dated: str
    description: str
    fields: tuple[FieldChange, ...] = ()


@attrs.frozen
class PolicyDiff:
    """Lists follow the new version's file order, then what only the old one had; entries sort by code."""

    policy: str
    title: str
    old_revision: str | None
    new_revision: str | None
    metadata: tuple[FieldChange, ...]
    precedence: ListChange | None
    sections: tuple[SectionChange, ...]
    rules_added: tuple[RuleSummary, ...]
    rules_removed: tuple[RuleSummary, ...]
    rules_changed: tuple[RuleChange, ...]
    reach: tuple[ReachChange, ...]
    tables: tuple[TableDiff, ...]
    facts: tuple[FactChange, ...]
    criteria: tuple[CriteriaChange, ...]
    history: tuple[HistoryChange, ...]

    @property
    def rule_changes(self) -> int:
        """Rules added, removed or rewritten; rules that only reach other codes are counted in `reach`."""
        return len(self.rules_added) + len(self.rules_removed) + len(self.rules_changed)

    @property
    def code_changes(self) -> int:
        return sum(len(t.entries) for t in self.tables)

    @property
    def is_empty(self) -> bool:
        return not (
            self.metadata
            or self.precedence
            or self.sections
            or self.rule_changes
            or self.reach
            or self.tables
            or self.facts
            or self.criteria
            or self.history
        )


# ---------------------------------------------------------------- words


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _field(name: str, before, after) -> FieldChange:
    return FieldChange(name, _text(before), _text(after))


def _fields(pairs: Iterable[tuple[str, object, object]]) -> tuple[FieldChange, ...]:
    return tuple(_field(name, a, b) for name, a, b in pairs if a != b)


def _window(window: ir.Window) -> str:
    return words.window_words(window) or "always"


def _windows(windows: Iterable[ir.Window | None] | None) -> str:
    """Several windows in words, in date order; a code in effect without limit reads `always`."""
    if windows is None:
        return "always"
    found = set(windows)
    if not found or None in found or any(w.always for w in found):
        return "always"
    return "; ".join(words.window_words(w) for w in sorted(found, key=_window_key))


def _window_key(w: ir.Window) -> tuple:
    return (w.effective or datetime.date.min, w.until or datetime.date.max)


def _outline(cond) -> str:
    return "\n".join("  " * depth + line for depth, line in words.outline(cond))


def _passages(passages: Iterable[ir.Passage]) -> tuple[str, ...]:
    return tuple(p.text for p in passages)


def _require(rule_or_section) -> str:
    return "; ".join(words.describe(c) for c in rule_or_section.requires)


def _step(kind: str, category: str | None) -> str:
    if category:
        return f"{kind} as {words.category_words(category)}"
    return kind


def _passage_delta(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """Passages added and removed, and whether the same passages were only put in another order."""
    added = tuple(t for t in new if t not in old)
    removed = tuple(t for t in old if t not in new)
    return added, removed, (not added and not removed and old != new)


def _keyed(items: Iterable, key) -> dict:
    """The first item under each key, in order: later duplicates are the checker's business."""
    out: dict = {}
    for item in items:
        out.setdefault(key(item), item)
    return out


def _matched(old: dict, new: dict) -> Iterator[tuple[str, object, object]]:
    """Keys of both, in the new version's order, then keys only the old version has."""
    for k, v in new.items():
        yield k, old.get(k), v
    for k, v in old.items():
        if k not in new:
            yield k, v, None


# ---------------------------------------------------------------- items and conditions


def _items(cond) -> dict[str, ir.Clause]:
    # The owner is the same on both sides, so an item's name alone keys it.
    return _keyed(ir.clauses(cond), lambda c: c.name)


def _item_change(old: ir.Clause | None, new: ir.Clause | None) -> ItemChange | None:
    if old == new:
        return None
    now = new if new is not None else old
    change = ADDED if old is None else REMOVED if new is None else CHANGED
    fields: tuple[FieldChange, ...] = ()
    if change == CHANGED:
        fields = _fields(
            [
                ("label", old.label, new.label),
                ("window", _window(old.window), _window(new.window)),
                ("condition", words.describe(old.condition), words.describe(new.condition)),
            ]
        )
        if old.condition != new.condition and not any(f.field == "condition" for f in fields):
            # Different IR that reads the same (a value's type, say) is still a change to show.
            fields += (_field("condition", words.describe(old.condition), words.describe(new.condition)),)
        if old.passages != new.passages:
            fields += (_field("passages", "\n".join(_passages(old.passages)), "\n".join(_passages(new.passages))),)
    return ItemChange(
        name=now.name,
        label=now.label,
        change=change,
        window=words.window_words(now.window),
        condition=words.describe(now.condition),
        passages=_passages(now.passages),
        fields=fields,
    )


def _item_changes(old_cond, new_cond) -> tuple[ItemChange, ...]:
    old_items = _items(old_cond) if old_cond is not None else {}
    new_items = _items(new_cond) if new_cond is not None else {}
    out = (_item_change(a, b) for _, a, b in _matched(old_items, new_items))
    return tuple(c for c in out if c is not None)


# ---------------------------------------------------------------- rules


def _codes(members: Members) -> tuple[str, ...]:
    return tuple(sorted(members))


def _code_deltas(old: Members, new: Members) -> tuple[CodeDelta, ...]:
    out = []
    for code in sorted(set(old) | set(new)):
        if code not in old:
            out.append(CodeDelta(code, ADDED, "", _windows(new[code])))
        elif code not in new:
            out.append(CodeDelta(code, REMOVED, _windows(old[code]), ""))
        elif _windows(old[code]) != _windows(new[code]):
            out.append(CodeDelta(code, CHANGED, _windows(old[code]), _windows(new[code])))
    return tuple(out)


def _summary(rule: ir.Rule, model: Model) -> RuleSummary:
    return RuleSummary(
        id=rule.id,
        section=rule.section,
        kind=rule.kind,
        decision=words.decision(rule),
        window=words.window_words(rule.window),
        require=_require(rule),
        condition=_outline(rule.condition),
        passages=_passages(rule.passages),
        codes=_codes(model.targets.get(rule.id, {})),
    )


_DECISION_FIELDS = (
    "kind",
    "targets",
    "category",
    "refer_to",
    "limit",
    "bases",
    "served_fact",
    "dependents",
    "base_noun",
    "owned_fact",
)


def _rule_change(old: ir.Rule, new: ir.Rule, old_model: Model, new_model: Model) -> RuleChange:
    changed: list[str] = []
    fields: list[FieldChange] = []
    if any(getattr(old, f) != getattr(new, f) for f in _DECISION_FIELDS):
        changed.append("decision")
        fields.append(_field("decision", words.decision(old), words.decision(new)))
    if old.section != new.section:
        changed.append("section")
        fields.append(_field("section", old.section, new.section))
    if old.window != new.window:
        changed.append("window")
        fields.append(_field("window", _window(old.window), _window(new.window)))
    if old.requires != new.requires:
        changed.append("require")
        fields.append(_field("require", _require(old), _require(new)))
    if old.shows != new.shows:
        changed.append("shows")
        fields.append(_field("shows", ", ".join(r.name for r in old.shows), ", ".join(r.name for r in new.shows)))
    condition_changed = old.condition != new.condition
    if condition_changed:
        changed.append("condition")
    items = _item_changes(old.condition, new.condition) if condition_changed else ()
    if items:
        changed.append("items")
    added, removed, reordered = _passage_delta(_passages(old.passages), _passages(new.passages))
    if added or removed or reordered:
        changed.append("passages")
    if reordered:
        fields.append(_field("passage order", "\n".join(_passages(old.passages)), "\n".join(_passages(new.passages))))
    codes = _code_deltas(old_model.targets.get(old.id, {}), new_model.targets.get(new.id, {}))
    if codes:
        changed.append("codes")
    return RuleChange(
        id=new.id,
        section=new.section,
        decision=words.decision(new),
        changed=tuple(changed),
        fields=tuple(fields),
        condition_before=_outline(old.condition) if condition_changed else None,
        condition_after=_outline(new.condition) if condition_changed else None,
        items=items,
        passages_added=added,
        passages_removed=removed,
        codes=codes,
    )


def _rules(old: Model, new: Model):
    old_rules = _keyed(old.policy.rules, lambda r: r.id)
    new_rules = _keyed(new.policy.rules, lambda r: r.id)
    added, removed, changed, reach = [], [], [], []
    for rid, a, b in _matched(old_rules, new_rules):
        if a is None:
            added.append(_summary(b, new))
        elif b is None:
            removed.append(_summary(a, old))
        elif a != b:
            changed.append(_rule_change(a, b, old, new))
        else:
            codes = _code_deltas(old.targets.get(rid, {}), new.targets.get(rid, {}))
            if codes:
                reach.append(ReachChange(rid, words.decision(b), codes))
    return tuple(added), tuple(removed), tuple(changed), tuple(reach)


# ---------------------------------------------------------------- sections


def _all_sections(policy: ir.Policy) -> Iterator[ir.Section]:
    def walk(section: ir.Section) -> Iterator[ir.Section]:
        yield section
        for sub in section.sections:
            yield from walk(sub)

    for section in policy.sections:
        yield from walk(section)


def _sections(old: Model, new: Model) -> tuple[SectionChange, ...]:
    old_sections = _keyed(_all_sections(old.policy), lambda s: s.id)
    new_sections = _keyed(_all_sections(new.policy), lambda s: s.id)
    out = []
    for sid, a, b in _matched(old_sections, new_sections):
        if a is None or b is None:
            now = a if b is None else b
            texts = _passages(now.passages)
            out.append(
                SectionChange(
                    sid,
                    now.title,
                    ADDED if a is None else REMOVED,
                    (),
                    texts if a is None else (),
                    texts if b is None else (),
                )
            )
            continue
        # A section's rules are compared one by one; here only what the section itself says.
        fields = list(_fields([("title", a.title, b.title), ("require", _require(a), _require(b))]))
        if a.requires != b.requires and not any(f.field == "require" for f in fields):
            fields.append(_field("require", _require(a), _require(b)))
        added, removed, reordered = _passage_delta(_passages(a.passages), _passages(b.passages))
        if reordered:
            fields.append(_field("passage order", "\n".join(_passages(a.passages)), "\n".join(_passages(b.passages))))
        if fields or added or removed:
            out.append(SectionChange(sid, b.title, CHANGED, tuple(fields), added, removed))
    return tuple(out)


# ---------------------------------------------------------------- code sets, diagnosis sets, drug tables


@attrs.frozen
class _Entry:
    """An entry reduced to what it means: written twice with two windows, it is one entry with both."""

    label: str
    description: str
    codes: tuple[str, ...]
    vial_units: float | None
    windows: frozenset
    is_set: bool = False


def _merge_entry(into: dict[str, _Entry], key: str, entry: _Entry) -> None:
    seen = into.get(key)
    if seen is None:
        into[key] = entry
    else:
        into[key] = attrs.evolve(
            seen,
            description=seen.description or entry.description,
            codes=tuple(sorted(set(seen.codes) | set(entry.codes))),
            windows=seen.windows | entry.windows,
        )


def _ref_codes(name: str, model: Model) -> tuple[str, ...]:
    if name == ALL_DRUGS:
        return _codes(model.drug_codes)
    for table in (model.code_sets, model.drug_tables):
        if name in table:
            return _codes(table[name])
    if name in model.drugs:
        return tuple(model.drugs[name].codes)
    return (name,) if name[:1].isupper() and name[1:2].isdigit() else ()


def _code_set_entries(cs: ir.CodeSet, model: Model) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for entry in cs.entries:
        if isinstance(entry, ir.Ref):
            codes = _ref_codes(entry.name, model)
            _merge_entry(out, "set:" + entry.name, _Entry(entry.name, "", codes, None, frozenset(), is_set=True))
            continue
        if cs.kind == "diagnoses":
            key = normalize_icd(entry.code) + ("-" + normalize_icd(entry.last) if entry.last else "")
            label = entry.code + (f"-{entry.last}" if entry.last else "")
            codes = ()
        else:
            key = label = entry.code
            codes = (entry.code,)
        _merge_entry(out, key, _Entry(label, entry.description or "", codes, None, frozenset([entry.window])))
    return out


def _drug_entries(table: ir.DrugTable, model: Model) -> dict[str, _Entry]:
    out: dict[str, _Entry] = {}
    for drug in table.drugs:
        # A drug listed without codes stands for the codes declared in an earlier table.
        codes = drug.codes or (model.drugs[drug.name].codes if drug.name in model.drugs else ())
        description = "" if drug.codes else "declared in an earlier table"
        entry = _Entry(drug.name, description, tuple(codes), drug.vial_units, frozenset([drug.window]))
        _merge_entry(out, drug.name, entry)
    return out


def _vial(units: float | None) -> str:
    if units is None:
        return ""
    return f"{int(units) if float(units).is_integer() else units} units"


def _entry_change(a: _Entry | None, b: _Entry | None) -> EntryChange | None:
    if a == b:
        return None
    now = b if b is not None else a
    window = "" if _windows(now.windows) == "always" else _windows(now.windows)
    change = ADDED if a is None else REMOVED if b is None else CHANGED
    fields: tuple[FieldChange, ...] = ()
    if change == CHANGED:
        fields = _fields(
            [
                ("description", a.description, b.description),
                ("codes", ", ".join(a.codes), ", ".join(b.codes)),
                ("vial", _vial(a.vial_units), _vial(b.vial_units)),
                ("window", _windows(a.windows), _windows(b.windows)),
            ]
        )
        if not fields:
            return None  # the same meaning written differently, e.g. C91.0 and C910
    return EntryChange(now.label, change, now.description, now.codes, window, now.is_set, fields)


def _tables(model: Model) -> dict[tuple[str, str], tuple[str, dict[str, _Entry]]]:
    out: dict[tuple[str, str], tuple[str, dict[str, _Entry]]] = {}
    for cs in model.policy.code_sets:
        out.setdefault((cs.kind, cs.name), (cs.title, _code_set_entries(cs, model)))
    for table in model.policy.drug_tables:
        out.setdefault(("drugs", table.name), (table.title, _drug_entries(table, model)))
    return out


def _table_diffs(old: Model, new: Model) -> tuple[TableDiff, ...]:
    out = []
    for (kind, name), a, b in _matched(_tables(old), _tables(new)):
        a_title, a_entries = a if a is not None else ("", {})
        b_title, b_entries = b if b is not None else ("", {})
        entries = [_entry_change(a_entries.get(k), b_entries.get(k)) for k in sorted(set(a_entries) | set(b_entries))]
        entries = [e for e in entries if e is not None]
        # Codes before set names; within each, in code order, whatever order the file lists them.
        entries.sort(key=lambda e: (e.is_set, e.entry))
        change = ADDED if a is None else REMOVED if b is None else CHANGED
        fields = _fields([("title", a_title, b_title)]) if change == CHANGED else ()
        if change != CHANGED or fields or entries:
            out.append(TableDiff(name, kind, b_title if b is not None else a_title, change, fields, tuple(entries)))
    return tuple(out)


# ---------------------------------------------------------------- facts, criteria, history, metadata


def _default(fact: ir.Fact) -> str:
    if not fact.has_default:
        return ""
    value = fact.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _text(value)


def _fact_type(fact: ir.Fact) -> str:
    text = fact.type.describe()
    if fact.type.labels:
        # The values' words are what the published policy shows, so a change to them is a change.
        pairs = zip(fact.type.values, fact.type.labels, strict=True)
        text = "one of " + ", ".join(f'{value} "{label}"' if label else value for value, label in pairs)
    if fact.per_line:
        text += ", per line"
    if fact.has_default:
        text += f", default {_default(fact)}"
    return text


def _facts(old: Model, new: Model) -> tuple[FactChange, ...]:
    old_facts = _keyed(old.policy.facts, lambda f: f.name)
    new_facts = _keyed(new.policy.facts, lambda f: f.name)
    out = []
    for name, a, b in _matched(old_facts, new_facts):
        if a == b:
            continue
        now = b if b is not None else a
        change = ADDED if a is None else REMOVED if b is None else CHANGED
        fields: tuple[FieldChange, ...] = ()
        if change == CHANGED:
            fields = _fields([("type", _fact_type(a), _fact_type(b)), ("question", a.question, b.question)])
            if a.type != b.type and not any(f.field == "type" for f in fields):
                fields += (_field("type", repr(a.type), repr(b.type)),)
        out.append(FactChange(name, change, _fact_type(now), now.question or "", fields))
    return tuple(out)


def _criteria(old: Model, new: Model) -> tuple[CriteriaChange, ...]:
    out = []
    for name, a, b in _matched(dict(old.criteria), dict(new.criteria)):
        if a == b:
            continue
        now = b if b is not None else a
        change = ADDED if a is None else REMOVED if b is None else CHANGED
        a_passages = _passages(a.passages) if a is not None else ()
        b_passages = _passages(b.passages) if b is not None else ()
        added, removed, reordered = _passage_delta(a_passages, b_passages)
        fields = list(_fields([("title", a.title, b.title)])) if change == CHANGED else []
        if reordered:
            fields.append(_field("passage order", "\n".join(a_passages), "\n".join(b_passages)))
        condition_changed = change != CHANGED or a.condition != b.condition
        items = _item_changes(a.condition, b.condition) if change == CHANGED else ()
        out.append(
            CriteriaChange(
                name=name,
                title=now.title,
                change=change,
                fields=tuple(fields),
                condition_before=_outline(a.condition) if a is not None and condition_changed else None,
                condition_after=_outline(b.condition) if b is not None and condition_changed else None,
                items=items,
                passages_added=added,
                passages_removed=removed,
            )
        )
    return tuple(out)


_HISTORY_FIELDS = ("dated", "description", "prepared_by", "approved_by", "reviewed", "effective")


def _history_rows(policy: ir.Policy) -> dict[str, ir.HistoryRow]:
    out: dict[str, ir.HistoryRow] = {}
    for row in policy.history:
        key = row.revision.strip()
        # A revision written twice keeps both rows, the second under `22 (2)`.
        n = 2
        while key in out:
            key = f"{row.revision.strip()} ({n})"
            n += 1
        out[key] = row
    return out


def _history(old: Model, new: Model) -> tuple[HistoryChange, ...]:
    out = []
    for key, a, b in _matched(_history_rows(old.policy), _history_rows(new.policy)):
        if a == b:
            continue
        now = b if b is not None else a
        change = ADDED if a is None else REMOVED if b is None else CHANGED
        fields = _fields((f, getattr(a, f), getattr(b, f)) for f in _HISTORY_FIELDS) if change == CHANGED else ()
        out.append(HistoryChange(key, change, now.dated, now.description, fields))
    return tuple(out)


def _metadata(old: ir.Policy, new: ir.Policy) -> tuple[FieldChange, ...]:
    ra, rb = old.revision, new.revision

    def rev(r: ir.Revision | None, name: str):
        if r is None:
            return None
        if name == "note":
            return "\n".join(_passages(r.description))
        return getattr(r, name)

    pairs = [
        ("id", old.id, new.id),
        ("title", old.title, new.title),
        ("language", old.language, new.language),
        ("source", old.source, new.source),
        ("revision", rev(ra, "number"), rev(rb, "number")),
        ("dated", rev(ra, "dated"), rev(rb, "dated")),
        ("effective", rev(ra, "effective"), rev(rb, "effective")),
        ("prepared_by", rev(ra, "prepared_by"), rev(rb, "prepared_by")),
        ("approved_by", rev(ra, "approved_by"), rev(rb, "approved_by")),
        ("reviewed", rev(ra, "reviewed"), rev(rb, "reviewed")),
        ("revision_note", rev(ra, "note"), rev(rb, "note")),
        ("description", "\n".join(_passages(old.description)), "\n".join(_passages(new.description))),
    ]
    return _fields(pairs)


def _precedence(old: Model, new: Model) -> ListChange | None:
    # The resolved steps, so a policy that spells out the default order equals one that relies on it.
    if old.steps == new.steps:
        return None
    return ListChange(tuple(_step(*s) for s in old.steps), tuple(_step(*s) for s in new.steps))


def diff_policies(old: Model, new: Model) -> PolicyDiff:
    """What changed in meaning from `old` to `new`; positions, comments and order of declarations do not count."""
    added, removed, changed, reach = _rules(old, new)
    return PolicyDiff(
        policy=new.policy.id,
        title=new.policy.title,
        old_revision=old.policy.revision.number if old.policy.revision else None,
        new_revision=new.policy.revision.number if new.policy.revision else None,
        metadata=_metadata(old.policy, new.policy),
        precedence=_precedence(old, new),
        sections=_sections(old, new),
        rules_added=added,
        rules_removed=removed,
        rules_changed=changed,
        reach=reach,
        tables=_table_diffs(old, new),
        facts=_facts(old, new),
        criteria=_criteria(old, new),
        history=_history(old, new),
    )


# ---------------------------------------------------------------- a library: policies matched by id


@attrs.frozen
class LibraryPolicy:
    """A policy as one version of a library holds it."""

    policy: str
    title: str
    revision: str | None
    dated: datetime.date | None
    effective: datetime.date | None
    path: str  # the file it was read from, for `medpol diff FILE@A FILE@B`
    codes: tuple[str, ...]  # the HCPCS codes it governs: a claim line with one of them is its to decide


@attrs.frozen
class PolicyChange:
    """A policy both versions hold, whose meaning changed."""

    policy: str
    title: str
    before: LibraryPolicy
    after: LibraryPolicy
    diff: PolicyDiff


@attrs.frozen
class LibraryDiff:
    """Policies in id order."""

    added: tuple[LibraryPolicy, ...]
    removed: tuple[LibraryPolicy, ...]
    changed: tuple[PolicyChange, ...]
    unchanged: tuple[LibraryPolicy, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _library_policy(model: Model) -> LibraryPolicy:
    policy = model.policy
    rev = policy.revision
    return LibraryPolicy(
        policy=policy.id,
        title=policy.title,
        revision=rev.number if rev else None,
        dated=rev.dated if rev else None,
        effective=rev.effective if rev else None,
        path=policy.path,
        codes=_codes(model.governed),
    )


def diff_libraries(old: Mapping[str, Model], new: Mapping[str, Model]) -> LibraryDiff:
    """Which policies (by id) one version of a library adds, removes and changes, each change
    its own `diff_policies`; a policy that reads the same in both is unchanged."""
    added, removed, changed, unchanged = [], [], [], []
    for pid in sorted(set(old) | set(new)):
        a, b = old.get(pid), new.get(pid)
        if a is None:
            added.append(_library_policy(b))
        elif b is None:
            removed.append(_library_policy(a))
        else:
            diff = diff_policies(a, b)
            if diff.is_empty:
                unchanged.append(_library_policy(b))
            else:
                changed.append(PolicyChange(pid, b.policy.title, _library_policy(a), _library_policy(b), diff))
    return LibraryDiff(tuple(added), tuple(removed), tuple(changed), tuple(unchanged))
