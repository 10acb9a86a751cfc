"""Number parameters (https://hl7.org/fhir/R4/search.html#number) and implicit precision.

"the precision of the number is implied by the number of significant figures": ``100`` is
stored with the range [99.5, 100.5), ``1.50`` with [1.495, 1.505), ``1e2`` with [50, 150).
Bodies keep a decimal that a float would change (``1.50``) as :class:`~decimal.Decimal` (see
:mod:`dhr.fhir.jsonio`), so its written precision is the one indexed; other numbers arrive as
floats, whose shortest form is the number as written.

A Range (``RiskAssessment.prediction.probability``) is stored as one row whose ``low``/``high``
are its bounds (an open bound is :data:`LOWEST` / :data:`HIGHEST`) and whose ``value`` is the low
bound (or the high one when there is no low).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from dhr.search.rows import IndexRow, NumberRow

LOWEST = -1e300  # open Range ends: finite, so every engine stores and compares them
HIGHEST = 1e300


def precision(value: Any) -> tuple[float, float, float] | None:
    """``(value, low, high)`` with the implied precision range, or None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    if isinstance(value, int):
        f = float(value)
        return f, f - 0.5, f + 0.5
    try:
        dec = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else value.strip())
        )
    except InvalidOperation:
        return None
    if not dec.is_finite():
        return None
    exponent = dec.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)
    return float(dec), float(dec - half), float(dec + half)


def bound(value: Any) -> float | None:
    """The numeric ``value`` of a Quantity-like bound (Range.low / Range.high)."""
    got = precision(value.get("value")) if isinstance(value, dict) else None
    return got[0] if got else None


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a number parameter."""
    got = precision(value)
    if got is not None:
        return [NumberRow(code, got[0], got[1], got[2], grp, comp)]
    if isinstance(value, dict) and (fhir_type == "Range" or "low" in value or "high" in value):
        low, high = bound(value.get("low")), bound(value.get("high"))
        if low is None and high is None:
            return []
        first = low if low is not None else high
        assert first is not None
        return [
            NumberRow(
                code,
                first,
                low if low is not None else LOWEST,
                high if high is not None else HIGHEST,
                grp,
                comp,
            )
        ]
    if isinstance(value, dict) and "value" in value:  # a Quantity under a number parameter
        return rows(code, value["value"], None, grp, comp)
    return []
