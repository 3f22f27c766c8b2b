"""Read a claim's facts against the facts the policy declares, with their types."""

from __future__ import annotations

import datetime
import difflib
import math

from medpol.compiler.resolve import Model
from medpol.compiler.runtime import NO_EVENT
from medpol.engine.claims import date_problem, read_date


class FactError(Exception):
    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


_INFINITY = float("inf")


def _show(value) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


class FactReader:
    """Converts JSON fact values to the policy's types; unknown names become warnings."""

    def __init__(self, model: Model):
        self.types = {name: fact.type for name, fact in model.facts.items()}
        self.defaults = {
            name: fact.default for name, fact in model.facts.items() if fact.has_default and fact.default is not None
        }
        # `default none` on a `date or none` fact is the answer "no such event".
        self.defaults.update(
            (name, NO_EVENT)
            for name, fact in model.facts.items()
            if fact.has_default and fact.default is None and fact.type.kind == "date" and fact.type.or_none
        )
        self._with_default = {name for name, fact in model.facts.items() if fact.has_default}
        # In a library, one claim's facts serve every policy: a fact another policy reads
        # is not this policy's to warn about.
        self.elsewhere: frozenset[str] = frozenset()
        self.scope = "this policy"
        # Strict: a fact name no policy declares is an error, not a warning.
        self.strict = False
        # The fact naming the base item the member owns (`follow the NOUN else FACT`) names
        # one of the policy's base items: a drug's code there is a mistake, not a pump.
        follow = model.follow
        self.owned_fact = follow.owned_fact if follow is not None else None
        self.bases = frozenset(model.bases)
        self.base_noun = follow.base_noun if follow is not None else None
        # How the common answer of each fact is recognized without a call: for a true/false
        # or a count, the class of its value (bool, int); for a measure or a date, its kind;
        # for a `one of` fact, the set of its values. Anything else goes through `_read`,
        # which also words the problem.
        self._plain: dict[str, type | str | frozenset[str]] = {}
        for name, ftype in self.types.items():
            if ftype.kind == "enum":
                self._plain[name] = frozenset(ftype.values)
            elif ftype.kind == "bool":
                self._plain[name] = bool
            elif ftype.kind == "int" and ftype.low is None:
                self._plain[name] = int
            elif ftype.kind in ("number", "date"):
                self._plain[name] = ftype.kind

    def has_default(self, name: str) -> bool:
        return name in self._with_default

    def read_claim_facts(self, facts) -> tuple[dict, list[str]]:
        warnings: list[str] = []
        out = dict(self.defaults)
        plain = self._plain
        for name, value in facts.items():
            kind = plain.get(name)
            cls = value.__class__
            if kind is cls:
                if cls is bool or value >= 0:  # a true/false, or a count that is not negative
                    out[name] = value
                    continue
            elif kind == "date":
                # "none" (no such event) and malformed dates take the long way.
                date = read_date(value) if cls is str else None
                if date is not None:
                    out[name] = date
                    continue
            elif kind == "number":
                if (cls is int or cls is float) and 0 <= value < _INFINITY:
                    out[name] = value
                    continue
            elif cls is str and kind.__class__ is frozenset and value in kind:
                out[name] = value
                continue
            self._read(name, value, "facts", out, warnings)
        return out, warnings

    def merge_line_facts(self, claim_facts: dict, facts, where: str) -> tuple[dict, list[str]]:
        warnings: list[str] = []
        out = dict(claim_facts)
        for name, value in facts.items():
            self._read(name, value, where, out, warnings)
        return out, warnings

    def _read(self, name, value, where: str, out: dict, warnings: list[str]) -> None:
        ftype = self.types.get(name)
        field = f"{where}.{name}"
        if ftype is None:
            if name not in self.elsewhere:
                close = difflib.get_close_matches(name, [*self.types, *self.elsewhere], n=1, cutoff=0.75)
                hint = f" (did you mean `{close[0]}`?)" if close else ""
                if self.strict:
                    raise FactError(field, f"is not a fact of {self.scope}{hint}")
                warnings.append(f"`{field}` is not a fact of {self.scope} and was ignored{hint}")
            return
        if value is None:
            # An explicit null says the answer is not known: the fact stays unknown.
            out.pop(name, None)
            return
        kind = ftype.kind
        given = value
        if kind == "bool":
            if not isinstance(value, bool):
                raise FactError(field, f"expected true or false, got `{_show(value)}`")
        elif kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise FactError(field, f"expected a whole number, got `{_show(value)}`")
            if ftype.low is not None and not ftype.low <= value <= ftype.high:
                raise FactError(field, f"`{value}` is outside {ftype.low} to {ftype.high}")
            if ftype.low is None and value < 0:
                raise FactError(field, f"`{_show(given)}` is negative: a count is 0 or more")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise FactError(field, f"expected a number, got `{_show(value)}`")
            if value < 0:
                raise FactError(field, f"`{_show(value)}` is negative: a measure is 0 or more")
        elif kind == "date":
            if ftype.or_none and value == "none":
                out[name] = NO_EVENT  # the record shows no such event
                return
            if not isinstance(value, str) or len(value) != 10 or value[4] != "-" or value[7] != "-":
                raise FactError(field, date_problem(value))
            try:
                value = datetime.date.fromisoformat(value)
            except ValueError:
                raise FactError(field, date_problem(value)) from None
        elif kind == "code":
            if not isinstance(value, str) or not value.isalnum() or not value.isascii():
                raise FactError(field, f"`{_show(value)}` is not a HCPCS code")
            value = value.upper()
            if name == self.owned_fact and self.bases and value not in self.bases:
                raise FactError(
                    field, f"`{value}` is not a {self.base_noun} this policy knows ({', '.join(sorted(self.bases))})"
                )
        elif kind == "enum":
            if value not in ftype.values:
                raise FactError(field, f"`{_show(value)}` is not one of {', '.join(ftype.values)}")
        out[name] = value
