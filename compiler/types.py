"""The types of operands: dates, and numbers with units that multiply and divide.

A number's unit is a dimension, a sorted tuple of (unit, power) pairs, so that
`units * 3 months / supply_months` has the dimension of billing units: months cancel.
The checker reports what does not fit; the code generator asks which arithmetic moves
a date. Both read the same answers from here.
"""

from __future__ import annotations

from collections.abc import Callable

from medpol.compiler.resolve import Model
from medpol.dsl import ir

# Units as written -> their family, the name a dimension uses.
UNIT_FAMILY = {
    "hour": "hours",
    "hours": "hours",
    "mmHg": "mmHg",
    "mg/dl": "mg/dl",
    "percent": "percent",
    "pounds": "pounds",
    "inches": "inches",
    "month": "months",
    "months": "months",
    "year": "years",
    "years": "years",
    "day": "days",
    "days": "days",
    "week": "weeks",
    "weeks": "weeks",
}
TIME = ("days", "weeks", "months", "years")
BILLING_UNITS = "billing units"

Dimension = tuple[tuple[str, int], ...]
NONE: Dimension = ()


def dimension(unit: str | None) -> Dimension:
    if not unit:
        return NONE
    return ((UNIT_FAMILY.get(unit, unit), 1),)


def _combine(a: Dimension, b: Dimension, sign: int) -> Dimension:
    powers = dict(a)
    for unit, power in b:
        powers[unit] = powers.get(unit, 0) + sign * power
    return tuple(sorted((u, p) for u, p in powers.items() if p))


def words(dim: Dimension) -> str:
    if not dim:
        return "a plain number"
    top = [u if p == 1 else f"{u}^{p}" for u, p in dim if p > 0]
    bottom = [u if p == -1 else f"{u}^{-p}" for u, p in dim if p < 0]
    text = " x ".join(top) or "1"
    return text + (" per " + " x ".join(bottom) if bottom else "")


def time_unit(dim: Dimension) -> str | None:
    """The unit of a length of time (`10 days`), or None."""
    if len(dim) == 1 and dim[0][1] == 1 and dim[0][0] in TIME:
        return dim[0][0]
    return None


# A type: ("date", NONE), ("number", dimension), or (kind, NONE) for bool, enum, code, text.
Type = tuple[str, Dimension]
Report = Callable[[object, str, str], None]


def _quiet(node, code, message) -> None:
    return None


def type_of(model: Model, operand, report: Report = _quiet, other=None) -> Type | None:
    """The type of an operand, or None when it cannot be typed (the problem is reported)."""
    if isinstance(operand, ir.Quantity):
        return ("number", dimension(operand.unit))
    if isinstance(operand, ir.DateLiteral):
        return ("date", NONE)
    if isinstance(operand, (ir.LineUnits, ir.EarlierUnits)):
        return ("number", dimension(BILLING_UNITS))
    if isinstance(operand, ir.Arith):
        return _arith_type(model, operand, report)
    if operand.name == "age":
        unit = other.unit if isinstance(other, ir.Quantity) else None
        return ("number", dimension(unit or "years"))
    ftype = model.fact_type(operand.name)
    if ftype is None:
        return None
    if ftype.kind == "int":
        return ("number", NONE)
    if ftype.kind == "number":
        return ("number", dimension(ftype.unit))
    return (ftype.kind, NONE)


def _arith_type(model: Model, node: ir.Arith, report: Report) -> Type | None:
    left = type_of(model, node.left, report, node.right)
    right = type_of(model, node.right, report, node.left)
    if left is None or right is None:
        return None
    (lk, ld), (rk, rd) = left, right
    op = node.op
    if lk == "date" and rk == "number" and op in "+-":
        if time_unit(rd) is None:
            report(node, "unit-mismatch", f"a date moves by days, weeks, months or years, not by {words(rd)}")
            return None
        return ("date", NONE)
    if lk == rk == "date" and op == "-":
        return ("number", dimension("days"))
    if lk != "number" or rk != "number":
        report(node, "type-mismatch", f"cannot compute a {lk} {op} a {rk}")
        return None
    if op in "+-":
        if ld and rd and ld != rd:
            report(node, "unit-mismatch", f"cannot add or subtract {words(ld)} and {words(rd)}")
            return None
        return ("number", ld or rd)
    if op == "/" and isinstance(node.right, ir.Quantity) and node.right.value == 0:
        # Dividing by nothing has no value, so a limit worked out this way would never hold.
        report(node.right, "division-by-zero", "division by zero: the amount has no value")
        return None
    return ("number", _combine(ld, rd, 1 if op == "*" else -1))


def shift_unit(model: Model, node: ir.Arith) -> str | None:
    """The length-of-time unit when `node` moves a date (`date - 10 days`), else None."""
    if node.op not in "+-":
        return None
    left = type_of(model, node.left)
    right = type_of(model, node.right)
    if left is None or right is None or left[0] != "date" or right[0] != "number":
        return None
    return time_unit(right[1])


def comparable(left: Dimension, right: Dimension) -> bool:
    """Numbers compare when their units agree; a plain number or a count of billing units fits any."""
    if left == right or not left or not right:
        return True
    return dimension(BILLING_UNITS) in (left, right)
