"""Quantity parameters (https://hl7.org/fhir/R4/search.html#quantity).

Quantity and its profiles (Age, Duration, Distance, Count, SimpleQuantity) give ``value`` with
its implied precision range (see :mod:`.number`), ``system``, ``code`` and ``unit``. Money gives
``value`` with ``currency`` as the code in system ``urn:iso:std:iso:4217``. A Range (used by the
``context-quantity`` parameters and ``Condition.onset``) is one row whose ``low``/``high`` are
the range's bounds (an open bound is :data:`.number.LOWEST` / :data:`.number.HIGHEST`), whose
``value`` is the low bound (or else the high one) and whose units come from that bound: a
search value matches when it falls inside the Range. A bare number is a unit-less quantity.
"""

from __future__ import annotations

from typing import Any

from dhr.search.extraction.number import HIGHEST, LOWEST, bound, precision
from dhr.search.rows import IndexRow, QuantityRow

_MAX = 255
ISO_4217 = "urn:iso:std:iso:4217"


def _s(value: Any) -> str | None:
    return value[:_MAX] if isinstance(value, str) and value else None


def _quantity(code: str, q: dict[str, Any], grp: int, comp: int) -> list[IndexRow]:
    got = precision(q.get("value"))
    if got is None:
        return []
    if "currency" in q and "code" not in q:  # Money
        return [QuantityRow(code, *got, ISO_4217, _s(q.get("currency")), None, grp, comp)]
    return [
        QuantityRow(
            code, *got, _s(q.get("system")), _s(q.get("code")), _s(q.get("unit")), grp, comp
        )
    ]


def _range(code: str, r: dict[str, Any], grp: int, comp: int) -> list[IndexRow]:
    low, high = bound(r.get("low")), bound(r.get("high"))
    if low is None and high is None:
        return []
    side = r.get("low") if low is not None else r.get("high")
    assert isinstance(side, dict)
    first = low if low is not None else high
    assert first is not None
    return [
        QuantityRow(
            code,
            first,
            low if low is not None else LOWEST,
            high if high is not None else HIGHEST,
            _s(side.get("system")),
            _s(side.get("code")),
            _s(side.get("unit")),
            grp,
            comp,
        )
    ]


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a quantity parameter."""
    if isinstance(value, dict):
        if fhir_type == "Range" or (fhir_type is None and ("low" in value or "high" in value)):
            return _range(code, value, grp, comp)
        if fhir_type in ("Ratio", "SampledData", "Period"):
            return []
        return _quantity(code, value, grp, comp)
    got = precision(value)
    if got is None:
        return []
    return [QuantityRow(code, *got, None, None, None, grp, comp)]
