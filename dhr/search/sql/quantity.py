"""Quantity matching (https://hl7.org/fhir/R4/search.html#quantity).

``[prefix]number|system|code`` compares the number like a number search and demands the system
and code; ``number||code`` matches the code or the human unit in any system; a plain number
matches any units.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, and_, or_

from dhr.search.sql import number
from dhr.search.sql.values import Quantity


def match(t: FromClause, q: Quantity) -> ColumnElement[bool]:
    conds = [number.match(t.c.value, q.range)]
    if q.system is not None:
        conds.append(t.c.system == q.system)
        if q.code is not None:
            conds.append(t.c.code == q.code)
    elif q.code is not None:
        conds.append(or_(t.c.code == q.code, t.c.unit == q.code))
    return and_(*conds)
