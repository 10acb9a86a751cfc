"""Date matching with prefixes over half-open ranges (https://hl7.org/fhir/R4/search.html#date).

The target value is the stored range [low, high); the search value is its own precision range
[ql, qh). Per https://hl7.org/fhir/R4/search.html#prefix: ``eq`` the search range contains the
target; ``ne`` it does not; ``gt``/``lt`` the range above/below the search value overlaps the
target; ``ge``/``le`` that or ``eq``; ``sa``/``eb`` the target lies wholly after/before; ``ap``
the target overlaps the search range widened by 10% of the gap between now and the value.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, not_, or_

from dhr.fhir.instant import now_micros
from dhr.search.sql.values import Range


def match(low: ColumnElement[int], high: ColumnElement[int], r: Range) -> ColumnElement[bool]:
    ql, qh = int(r.low), int(r.high)
    inside = and_(low >= ql, high <= qh)
    p = r.prefix
    if p == "eq":
        return inside
    if p == "ne":
        return not_(inside)
    if p == "gt":
        return high > qh
    if p == "lt":
        return low < ql
    if p == "ge":
        return or_(high > qh, inside)
    if p == "le":
        return or_(low < ql, inside)
    if p == "sa":
        return low >= qh
    if p == "eb":
        return high <= ql
    widen = abs(now_micros() - ql) // 10
    return and_(low < qh + widen, high > ql - widen)
