"""Say a policy's rules in plain language: the IR of a policy -> sentences a provider reads.

The published site shows each rule as a sentence built from the policy's own words (the
titles of its code sets, diagnosis sets and criteria, the questions of its facts), never
from the names the policy's author gave them in code: those stay with the policy code.
Conditions become `Point`s, a tree of sentences; the site decides how to lay them out
(Markdown lists on a policy page, a checklist per code).

Everything here is derived from the IR and the resolved model of any policy: no wording
is specific to one policy.
"""

from __future__ import annotations

import attrs

from medpol.compiler import words
from medpol.compiler.resolve import Model, resolve_targets
from medpol.dsl import ir

# Built-in facts carry no question in a policy: these say what they are.
_BUILTIN_SUBJECTS = {
    "age": "the member's age",
    "service_date": "the date of service",
    "line_of_business": "the member's line of business",
    "supplier_licensed_in_state": "the dispensing entity is licensed in the state where it is located",
    "place_of_service": "the place of service",
}
_BUILTIN_QUESTIONS = {
    "line_of_business": "What is the member's line of business?",
    "supplier_licensed_in_state": "Is the dispensing entity licensed in the state where it is located?",
    "place_of_service": "What is the place of service?",
}
_NUMBER_RELATIONS = {
    ">=": "at least",
    ">": "more than",
    "<=": "at most",
    "<": "less than",
    "==": "exactly",
    "!=": "other than",
}
_DATE_RELATIONS = {
    ">=": "on or after",
    ">": "after",
    "<=": "on or before",
    "<": "before",
    "==": "on",
    "!=": "not on",
}
_ARITH_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_GROUP_HEADS = {
    "all": "All of the following hold:",
    "any": "One of the following holds:",
    "none": "None of the following holds:",
    "not all": "Not all of the following hold:",
}


@attrs.frozen
class Point:
    """One point of a condition: a sentence, or a group heading with the points under it.

    A numbered item of the policy carries its label, its effective window in words and its
    passages; a named set of criteria carries its name so a page can link to it.
    """

    text: str
    points: tuple[Point, ...] = ()
    label: str | None = None  # "Item 3"
    window: str = ""  # "effective 2026-01-25"
    passages: tuple[str, ...] = ()
    criteria: str | None = None  # the criteria set a point refers to, for a link


def humanize(name: str) -> str:
    """A name the policy's author wrote in code, read as words (the last resort for a label)."""
    return name.replace("_", " ").replace(".", " ").strip()


def _number(value) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _unit(amount, unit: str | None) -> str:
    if not unit:
        return _number(amount)
    if float(amount) == 1 and unit.endswith("s"):
        unit = unit[:-1]  # 1 month, 1 hour
    return f"{_number(amount)} {unit}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = _capital(text.strip())
    return text if text.endswith((".", "?", ":", "!")) else text + "."


class Wording:
    """The plain words for one policy's conditions and rules.

    `passage` restores a quoted passage's words left out by `...` (the compiled policy's
    `passage_text`); without it, passages are shown as written.
    """

    def __init__(self, model: Model, passage=None, expand_criteria: bool = False):
        self.model = model
        self.passage = passage or (lambda text: text)
        # A checklist spells a named set of criteria out; a policy page links to it instead.
        self.expand_criteria = expand_criteria
        self._sets = {cs.name: cs for cs in model.policy.code_sets}
        self._tables = {table.name: table for table in model.policy.drug_tables}

    # ------------------------------------------------------------ names and codes

    def codes_of(self, targets: ir.Targets) -> list[str]:
        """The HCPCS codes a list of targets names, in order."""
        model = self.model
        found = resolve_targets(
            targets, model.code_sets, model.drug_tables, model.drugs, model.drug_codes, lambda _ref: None
        )
        return sorted(found)

    def ref_words(self, name: str, with_codes: bool = True) -> str:
        """A code, code set, drug or drug table by its label, with its codes."""
        if name == "drugs":
            label = "any drug of this policy"
            return label
        if name in self._sets:
            label = self._sets[name].title
        elif name in self._tables:
            label = self._tables[name].title
        elif name in self.model.drugs:
            label = humanize(name)
        else:
            return name  # a HCPCS code stands for itself
        if not with_codes:
            return label
        codes = self.codes_of(ir.Targets((ir.Ref(name, ir.NO_SPAN),)))
        if not codes:
            return label
        listed = ", ".join(codes)
        # A label that ends in its own parenthesis takes the codes inside it.
        if label.endswith(")"):
            return f"{label[:-1]}: {listed})"
        return f"{label} ({listed})"

    def targets(self, targets: ir.Targets | None, with_codes: bool = True) -> str:
        if targets is None:
            return ""
        if targets.all_lines:
            text = "every line of this policy"
        else:
            text = _join([self.ref_words(ref.name, with_codes) for ref in targets.include], "and")
        if targets.exclude:
            text += " except " + _join([self.ref_words(ref.name, with_codes) for ref in targets.exclude], "and")
        return text

    def diagnoses(self, cond: ir.DiagnosisIn) -> str:
        """`B-cell precursor acute lymphoblastic leukemia (C91.0)`: each set by its title and codes."""
        parts = []
        for ref in cond.sets:
            cs = self._sets.get(ref.name)
            if cs is None:
                parts.append(humanize(ref.name))
                continue
            codes = ", ".join(
                f"{e.code}-{e.last}" if e.last else e.code for e in cs.entries if isinstance(e, ir.CodeEntry)
            )
            parts.append(f"{cs.title} ({codes})" if codes else cs.title)
        return _join(parts, "or")

    def rule_words(self, rule_id: str) -> str:
        rule = next((r for r in self.model.policy.rules if r.id == rule_id), None)
        if rule is None:
            return humanize(rule_id)
        return f"“{self.title(rule)}” under {rule.section}"

    # ------------------------------------------------------------ facts and operands

    def question(self, name: str) -> str | None:
        fact = self.model.facts.get(name)
        if fact is not None and fact.question:
            return fact.question.strip()
        if name == self.model.owned_name:
            return f"Does the member already own the {self.model.follow.base_noun}?"
        return _BUILTIN_QUESTIONS.get(name)

    def subject(self, name: str) -> str:
        """A fact as the subject of a sentence: `the date of service`, `the written order date`."""
        if name in _BUILTIN_SUBJECTS:
            return _BUILTIN_SUBJECTS[name]
        return "the " + humanize(name)

    def _is_date(self, operand) -> bool:
        if isinstance(operand, ir.DateLiteral):
            return True
        if isinstance(operand, ir.FactRef):
            ftype = self.model.fact_type(operand.name)
            return ftype is not None and ftype.kind == "date"
        if isinstance(operand, ir.Arith):
            return self._is_date(operand.left)
        return False

    def operand(self, operand) -> str:
        if isinstance(operand, ir.FactRef):
            return self.subject(operand.name)
        if isinstance(operand, ir.LineUnits):
            return "the units billed on the line"
        if isinstance(operand, ir.DateLiteral):
            return operand.value.isoformat()
        if isinstance(operand, ir.Quantity):
            return _unit(operand.value, operand.unit)
        if isinstance(operand, ir.EarlierUnits):
            return (
                f"the units of {self.targets(operand.codes)} billed in the "
                f"{_unit(operand.period.amount, operand.period.unit)} before this line"
            )
        if isinstance(operand, ir.Arith):
            # A date moved by a length of time reads as a date: `30 days before the supply end date`.
            if self._is_date(operand.left) and isinstance(operand.right, ir.Quantity) and operand.op in "+-":
                way = "after" if operand.op == "+" else "before"
                return f"{self.operand(operand.right)} {way} {self.operand(operand.left)}"
            return f"{self.operand(operand.left)} {_ARITH_WORDS[operand.op]} {self.operand(operand.right)}"
        return str(operand)

    def value(self, name: str, value) -> str:
        """An answer in words: Yes/No, a `one of` value by its label, a number with its unit."""
        if value is True:
            return "Yes"
        if value is False:
            return "No"
        ftype = self.model.fact_type(name)
        text = str(value)
        if ftype is not None and ftype.kind == "enum":
            text = ftype.label(text) or humanize(text)
        return text

    def _answer(self, name: str, answer: str, subject_text: str) -> str:
        """A fact's question with the answer required, or a sentence when it has no question."""
        question = self.question(name)
        if question:
            return f"{question} {_sentence(answer)}"
        return _sentence(f"{subject_text} is {answer}")

    # ------------------------------------------------------------ conditions

    def leaf(self, cond) -> str:
        """One condition that is not a group, as a sentence."""
        if isinstance(cond, ir.Always):
            return "Always."
        if isinstance(cond, ir.Truth):
            if cond.name in self.model.criteria:
                return f"{self.model.criteria[cond.name].title} is met."
            return self._answer(cond.name, "Yes", self.subject(cond.name))
        if isinstance(cond, ir.Is) and cond.value in (None, "none"):
            # `date or none`: none is the record showing no such event, not a missing answer.
            answer = "a date (the record shows it)" if cond.negated else "none (the record shows no such event)"
            return self._answer(cond.name, answer, self.subject(cond.name))
        if isinstance(cond, ir.Is):
            answer = self.value(cond.name, cond.value)
            if cond.negated:
                answer = f"any answer but {answer}"
            return self._answer(cond.name, answer, self.subject(cond.name))
        if isinstance(cond, ir.In):
            answer = _join([self.value(cond.name, v) for v in cond.values], "or")
            return self._answer(cond.name, answer, self.subject(cond.name))
        if isinstance(cond, ir.Compare):
            return self._compare(cond)
        if isinstance(cond, ir.Within):
            period = f"within {_unit(cond.amount, cond.unit)} {cond.direction} {self.operand(cond.anchor)}"
            if isinstance(cond.subject, ir.FactRef):
                return self._answer(cond.subject.name, period, self.operand(cond.subject))
            return _sentence(f"{self.operand(cond.subject)} is {period}")
        if isinstance(cond, ir.DiagnosisIn):
            return _sentence(f"The claim has a diagnosis of {self.diagnoses(cond)}")
        if isinstance(cond, ir.BilledWith):
            text = f"The claim has a line of {self.targets(cond.codes)}"
            if cond.other_than is not None:
                text += f" other than {self.targets(cond.other_than)}"
            if cond.period is not None:
                text += f" (or the member's history has one in the last {_unit(cond.period.amount, cond.period.unit)})"
            return _sentence(text)
        if isinstance(cond, ir.DrugIn):
            return _sentence(f"The line is for {self.targets(cond.codes)} (for a pump, the drug it administers)")
        if isinstance(cond, ir.LineOutcome):
            text = f"A line of {self.targets(cond.codes)} on the claim is {cond.outcome}"
            if cond.category:
                text += f" as {words.CATEGORY_WORDS[cond.category]}"
            if cond.by is not None:
                text += f" by the rule {self.rule_words(cond.by.name)}"
            return _sentence(text)
        if isinstance(cond, ir.HasModifier):
            return f"The line carries modifier {cond.modifier}."
        if isinstance(cond, ir.CriteriaOf):
            return f"The criteria “{humanize(cond.name)}” of the policy {cond.policy} are met."
        if isinstance(cond, ir.Not):
            return self._negated(cond.item)
        return _sentence(humanize(type(cond).__name__))

    def _compare(self, cond: ir.Compare) -> str:
        relations = _DATE_RELATIONS if self._is_date(cond.left) or self._is_date(cond.right) else _NUMBER_RELATIONS
        answer = f"{relations[cond.op]} {self.operand(cond.right)}"
        if isinstance(cond.left, ir.FactRef):
            return self._answer(cond.left.name, answer, self.operand(cond.left))
        subject = self.operand(cond.left)
        verb = "are" if isinstance(cond.left, (ir.LineUnits, ir.EarlierUnits)) else "is"
        return _sentence(f"{subject} {verb} {answer}")

    def _negated(self, item) -> str:
        if isinstance(item, ir.Truth):
            if item.name in self.model.criteria:
                return f"{self.model.criteria[item.name].title} is not met."
            return self._answer(item.name, "No", self.subject(item.name))
        if isinstance(item, ir.Is):
            return self.leaf(attrs.evolve(item, negated=not item.negated))
        if isinstance(item, ir.DiagnosisIn):
            return _sentence(f"The claim has no diagnosis of {self.diagnoses(item)}")
        if isinstance(item, ir.BilledWith):
            return "Not so: " + _lower(self.leaf(item))
        if isinstance(item, ir.HasModifier):
            return f"The line does not carry modifier {item.modifier}."
        if isinstance(item, ir.Within):
            return "Not so: " + _lower(self.leaf(item))
        return "Not so: " + _lower(self.leaf(item))

    def points(self, cond) -> tuple[Point, ...]:
        """The points a condition's lines make: an all-of is its items, anything else one point."""
        if isinstance(cond, ir.AllOf):
            out: list[Point] = []
            for item in cond.items:
                out.extend(self.points(item))
            return tuple(out)
        return (self.point(cond),)

    def point(self, cond) -> Point:
        if isinstance(cond, ir.AllOf):
            if len(cond.items) == 1:
                return self.point(cond.items[0])
            return Point(_GROUP_HEADS["all"], self.points(cond))
        if isinstance(cond, ir.AnyOf):
            return Point(_GROUP_HEADS["any"], tuple(self.point(i) for i in cond.items))
        if isinstance(cond, ir.AtLeast):
            return Point(f"At least {cond.count} of the following hold:", tuple(self.point(i) for i in cond.items))
        if isinstance(cond, ir.Not) and isinstance(cond.item, (ir.AnyOf, ir.AllOf)) and len(cond.item.items) > 1:
            head = "none" if isinstance(cond.item, ir.AnyOf) else "not all"
            return Point(_GROUP_HEADS[head], tuple(self.point(i) for i in cond.item.items))
        if isinstance(cond, ir.Clause):
            return self.clause(cond)
        if isinstance(cond, ir.Truth) and cond.name in self.model.criteria:
            if self.expand_criteria:
                return self.criteria(cond.name)
            return Point(self.leaf(cond), criteria=cond.name)
        return Point(self.leaf(cond))

    def clause(self, clause: ir.Clause) -> Point:
        """A numbered item: its label, its window, its passages and what it requires."""
        return Point(
            "",
            self.points(clause.condition),
            label=f"Item {clause.label}",
            window=words.window_words(clause.window),
            passages=tuple(self.passage(p.text) for p in clause.passages),
        )

    def criteria(self, name: str) -> Point:
        """A named set of criteria, its items spelled out (for a checklist)."""
        crit = self.model.criteria[name]
        return Point(f"{crit.title}: all of the following hold:", self.points(crit.condition), criteria=name)

    # ------------------------------------------------------------ rules

    def split_diagnoses(self, cond) -> tuple[list[ir.DiagnosisIn], object]:
        """The diagnoses a condition requires outright, and the rest of it.

        A rule reads "covered ... for <diagnosis>, when ...": the diagnosis is said once, in
        the sentence, rather than as one more point of the list.
        """
        items = cond.items if isinstance(cond, ir.AllOf) else (cond,)
        found = [i for i in items if isinstance(i, ir.DiagnosisIn)]
        rest = tuple(i for i in items if not isinstance(i, ir.DiagnosisIn))
        if not found:
            return [], cond
        if not rest:
            return found, ir.Always()
        return found, ir.AllOf(rest, ir.NO_SPAN) if len(rest) > 1 else rest[0]

    def title(self, rule: ir.Rule) -> str:
        """A rule's heading: what it decides, by the labels of what it names (no codes)."""
        what = self.targets(rule.targets, with_codes=False) if rule.targets is not None else ""
        if rule.kind == "cover":
            return f"Coverage of {what}"
        if rule.kind == "deny":
            return f"Denial of {what} as {words.CATEGORY_WORDS[rule.category]}"
        if rule.kind == "refer":
            return f"Referral of {what} to {self._referred_to(rule)}"
        if rule.kind == "limit":
            return f"Limit on {what}: {self._limit_amount(rule)}"
        if rule.kind == "otherwise":
            return f"Otherwise: denied as {words.CATEGORY_WORDS[rule.category]}"
        if rule.kind == "follow":
            return f"Items that follow the {rule.base_noun}"
        return _capital(rule.kind)

    def _referred_to(self, rule: ir.Rule) -> str:
        return f"the policy {rule.refer_policy}" if rule.refer_policy is not None else str(rule.refer_to)

    def _limit_amount(self, rule: ir.Rule) -> str:
        lim = rule.limit
        amount = _number(lim.amount) if isinstance(lim.amount, (int, float)) else f"({self.operand(lim.amount)})"
        if lim.period == "rolling":
            span = f"within {_unit(lim.length, lim.length_unit)}"
        elif lim.period == "line":
            span = "per line"
        else:
            span = "per calendar " + lim.period.split("_", 1)[1]
        return f"{amount} {lim.unit} {span}"

    def sentence(self, rule: ir.Rule) -> tuple[str, tuple[Point, ...]]:
        """A rule as a sentence, and the points of its condition listed after it.

        `Covered: blinatumomab (J9039) for B-cell precursor ... (C91.0), when one of the
        following holds:` and the points; a rule that always holds has none.
        """
        category = words.CATEGORY_WORDS.get(rule.category or "", "")
        what = self.targets(rule.targets)
        if rule.kind == "follow":
            return self._follow(rule), ()
        if rule.kind == "otherwise":
            return f"Any line of this policy that no other rule decides is denied as {category}.", ()
        dx, rest = self.split_diagnoses(rule.condition)
        if rule.kind == "cover":
            head = f"Covered: {what}"
        elif rule.kind == "deny":
            head = f"Denied as {category}: {what}"
        elif rule.kind == "refer":
            head = f"Referred to {self._referred_to(rule)}: {what}"
        else:
            each = " (each code counted on its own)" if rule.limit.each else ""
            head = f"Limited: {what}{each}, to {self._limit_amount(rule)}"
        if dx:
            head += " for " + " and ".join(self.diagnoses(d) for d in dx)
        if rule.kind == "limit":
            head = _sentence(head) + " " + self._limit_effect(rule, category)
            if isinstance(rest, ir.Always):
                return head, ()
            return head + " The limit applies when:", self.points(rest)
        if isinstance(rest, ir.Always):
            return _sentence(head), ()
        return head + ", " + self._when(rest), self._when_points(rest)

    def _limit_effect(self, rule: ir.Rule, category: str) -> str:
        if rule.limit.excess:
            return f"The units past the limit are denied as {category}; the line is paid for the units within it."
        return f"A line that carries the member past the limit is denied as {category}, whole."

    def _when(self, cond) -> str:
        if isinstance(cond, ir.AllOf) and len(cond.items) > 1:
            return "when all of the following hold:"
        if isinstance(cond, ir.AnyOf):
            return "when one of the following holds:"
        if isinstance(cond, ir.AtLeast):
            return f"when at least {cond.count} of the following hold:"
        if isinstance(cond, ir.Not) and isinstance(cond.item, ir.AnyOf) and len(cond.item.items) > 1:
            return "when none of the following holds:"
        return "when:"

    def _when_points(self, cond) -> tuple[Point, ...]:
        """The points under a `when ...:` sentence: the group it names is already said."""
        if isinstance(cond, ir.AllOf):
            return self.points(cond)
        if isinstance(cond, (ir.AnyOf, ir.AtLeast)):
            return tuple(self.point(i) for i in cond.items)
        if isinstance(cond, ir.Not) and isinstance(cond.item, ir.AnyOf) and len(cond.item.items) > 1:
            return tuple(self.point(i) for i in cond.item.items)
        return (self.point(cond),)

    def _follow(self, rule: ir.Rule) -> str:
        noun = rule.base_noun
        served = self.question(rule.served_fact) or self.subject(rule.served_fact)
        owned = self.question(rule.owned_fact) or self.subject(rule.owned_fact)
        return (
            f"The items that depend on a {noun} ({self.targets(rule.dependents)}) are covered when their "
            f"{noun} ({self.targets(rule.bases)}) is covered, each as of its own date of service. "
            f"A {noun} line is decided by the items it serves ({self.targets(rule.targets)}): the claim's "
            f"lines, or else the answer to “{served}”. Without a {noun} line, the {noun} the member owns "
            f"(“{owned}”) stands in."
        )

    def shows(self, rule: ir.Rule) -> list[str]:
        """The facts a rule shows a reviewer without deciding by them, by their questions."""
        return [self.question(ref.name) or _capital(self.subject(ref.name)) for ref in rule.shows]

    def answer_kind(self, fact: ir.Fact) -> str:
        """What kind of answer a fact's question takes, in words."""
        ftype = fact.type
        if ftype.kind == "bool":
            return "Yes or no"
        if ftype.kind == "enum":
            return "One of: " + ", ".join(ftype.label(v) or humanize(v) for v in ftype.values)
        if ftype.kind == "int":
            if ftype.low is not None:
                return f"A whole number from {ftype.low} to {ftype.high}"
            return "A whole number"
        if ftype.kind == "number":
            return f"A number of {ftype.unit}" if ftype.unit else "A number"
        if ftype.kind == "date":
            return "A date, or none" if ftype.or_none else "A date"
        if ftype.kind == "code":
            return "A HCPCS code"
        return "Text"

    # ------------------------------------------------------------ a checklist per code

    def checklist(self, code: str) -> Checklist:
        """What a claim line of `code` must show: every rule of the policy that decides the code.

        Coverage routes spell their criteria sets out (the wording should have been made with
        `expand_criteria`), so the checklist reads on its own, without the policy page.
        """
        model = self.model
        routes, limits, denials, referrals, dates, fallback = [], [], [], [], [], []
        diagnoses: list[str] = []
        windows = model.governed.get(code)
        for window in windows or ():
            dates.append(f"{code} itself: {words.window_words(window)}")
        for rule in model.policy.rules:
            if not self._decides(rule, code):
                continue
            entry = self._entry(rule)
            if not rule.window.always:
                dates.append(f"{entry.title}: {words.window_words(rule.window)}")
            for label, window in _windows(rule.condition):
                dates.append(f"{label} of {entry.title}: {window}")
            if rule.kind == "cover":
                routes.append(entry)
                for requirement in rule.requires:
                    for label, window in _windows(requirement):
                        dates.append(f"{label}, required of {entry.title}: {window}")
                for found in _positive_diagnoses(rule.condition):
                    text = self.diagnoses(found)
                    if text not in diagnoses:
                        diagnoses.append(text)
            elif rule.kind == "follow":
                routes.append(self._follow_entry(rule, code))
            elif rule.kind == "limit":
                limits.append(entry)
            elif rule.kind == "deny":
                denials.append(entry)
            elif rule.kind == "otherwise":
                fallback.append(entry)
            elif rule.kind == "refer":
                referrals.append(entry)
        return Checklist(
            code,
            model.descriptions.get(code, "") or self._drug_of(code),
            tuple(routes),
            tuple(diagnoses),
            tuple(limits),
            tuple(dates),
            tuple(denials + fallback),  # the line no rule decides comes last, as it is decided
            tuple(referrals),
        )

    def _decides(self, rule: ir.Rule, code: str) -> bool:
        if rule.kind == "otherwise":
            return True
        if rule.targets is not None and rule.targets.all_lines:
            excluded = self.codes_of(ir.Targets(rule.targets.exclude)) if rule.targets.exclude else []
            return code not in excluded
        return code in self.model.targets.get(rule.id, {})

    def _drug_of(self, code: str) -> str:
        return next((humanize(name) for name, drug in self.model.drugs.items() if code in drug.codes), "")

    def _entry(self, rule: ir.Rule) -> Entry:
        sentence, points = self.sentence(rule)
        if rule.kind == "cover":
            # On a checklist the diagnoses are one more thing the claim shows, and the
            # section's requirements are spelled out with the rule's own.
            points = self.points(rule.condition) + tuple(self.point(r) for r in rule.requires)
        return Entry(self.title(rule), rule.section, rule.id, sentence, points, words.window_words(rule.window))

    def _follow_entry(self, rule: ir.Rule, code: str) -> Entry:
        noun = rule.base_noun
        if code in self.codes_of(rule.dependents):
            sentence = (
                f"Covered when the {noun} it follows ({self.targets(rule.bases)}) is covered, as of this "
                f"line's date of service; without a {noun} line on the claim, the {noun} the member owns "
                f"stands in."
            )
        else:
            sentence = (
                f"A {noun} line is decided by the rules of the item it serves "
                f"({self.targets(rule.targets)}): the claim's lines of it, or else the answer to "
                f"“{self.question(rule.served_fact) or self.subject(rule.served_fact)}”."
            )
        return Entry(self.title(rule), rule.section, rule.id, sentence, (), "")


@attrs.frozen
class Entry:
    """One rule on a checklist: its heading, where it sits, and what it asks."""

    title: str
    section: str
    rule_id: str  # for the link to the rule on the policy page
    sentence: str
    points: tuple[Point, ...]
    window: str


@attrs.frozen
class Checklist:
    """What a claim line of one code must show under one policy."""

    code: str
    description: str
    routes: tuple[Entry, ...]  # the rules that cover it: any one of them suffices
    diagnoses: tuple[str, ...]  # the diagnoses the routes accept
    limits: tuple[Entry, ...]
    dates: tuple[str, ...]  # the effective dates that bear on it, in words
    denials: tuple[Entry, ...]
    referrals: tuple[Entry, ...]


def _windows(cond) -> list[tuple[str, str]]:
    """The numbered items of a condition that carry an effective window: (`Item 3`, words)."""
    return [
        (f"Item {clause.label}", words.window_words(clause.window))
        for clause in ir.clauses(cond)
        if not clause.window.always
    ]


def _positive_diagnoses(cond) -> list[ir.DiagnosisIn]:
    """The diagnosis tests of a condition that accept a diagnosis (not those under a `not`)."""
    if isinstance(cond, ir.DiagnosisIn):
        return [cond]
    if isinstance(cond, ir.Not):
        return []  # a diagnosis named under `not` is one the rule refuses
    return [found for child in ir.children(cond) for found in _positive_diagnoses(child)]


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _join(parts: list[str], conjunction: str) -> str:
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {conjunction} " + parts[-1]
