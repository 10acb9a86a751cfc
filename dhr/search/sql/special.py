"""``_id`` and ``_lastUpdated``, answered from the ``resource`` table's own columns.

https://hl7.org/fhir/R4/search.html#id and #lastUpdated. ``_lastUpdated`` is an instant
(microsecond precision), so it is the range [last_updated, last_updated + 1).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, false, not_, or_, true

from dhr.errors import bad_request
from dhr.search.params import Filter
from dhr.search.sql import date
from dhr.search.sql.values import Missing, Range, Token


def match(res: FromClause, f: Filter) -> ColumnElement[bool]:
    """The filter on the ``resource`` alias ``res`` (both are always present)."""
    first = f.values[0]
    if isinstance(first, Missing):
        return false() if first.missing else true()
    if f.param.code == "_id":
        ids = [v.code for v in f.values if isinstance(v, Token)]
        if len(ids) != len(f.values) or f.modifier not in (None, "not"):
            raise bad_request(f"_id:{f.modifier} is not supported", "bad-modifier")
        cond = res.c.res_id.in_(ids)
        return not_(cond) if f.modifier == "not" else cond
    if f.modifier is not None:
        raise bad_request(f"_lastUpdated:{f.modifier} is not supported", "bad-modifier")
    lu = res.c.last_updated
    return or_(*(date.match(lu, lu + 1, v) for v in f.values if isinstance(v, Range)))
