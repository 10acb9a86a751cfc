"""Number matching with prefixes (https://hl7.org/fhir/R4/search.html#number).

Without a prefix (``eq``) a value matches at the precision it was written with: ``100`` matches
stored values in [99.5, 100.5). ``gt lt ge le`` (and ``sa``/``eb``, which for a single number mean
the same as ``gt``/``lt``) compare the stored value with the value as written; ``ap`` accepts
values within 10% of it (or within its precision range, whichever is wider).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, not_

from dhr.search.sql.values import Range


def match(value: ColumnElement[float], r: Range) -> ColumnElement[bool]:
    p, v = r.prefix, r.value
    if p in ("eq", "ne"):
        inside = and_(value >= r.low, value < r.high)
        return inside if p == "eq" else not_(inside)
    if p in ("gt", "sa"):
        return value > v
    if p in ("lt", "eb"):
        return value < v
    if p == "ge":
        return value >= v
    if p == "le":
        return value <= v
    margin = abs(v) / 10
    return and_(value >= min(r.low, v - margin), value <= max(r.high, v + margin))
