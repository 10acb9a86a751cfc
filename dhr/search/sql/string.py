"""String matching (https://hl7.org/fhir/R4/search.html#string).

Default: the normalised (case- and accent-insensitive) value starts with the query, as an
index range (:func:`dhr.search.sql.dialect.prefix`); ``:contains`` anywhere in it; ``:exact``
equality with the value as written.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause

from dhr.search.sql.dialect import prefix
from dhr.search.sql.values import Text


def match(t: FromClause, value: Text, modifier: str | None) -> ColumnElement[bool]:
    if modifier == "exact":
        return t.c.exact == value.text
    if modifier == "contains":
        return t.c.norm.contains(value.text, autoescape=True)
    return prefix(t.c.norm, value.text)
