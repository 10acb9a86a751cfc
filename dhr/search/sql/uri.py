"""URI matching (https://hl7.org/fhir/R4/search.html#uri).

Default: exact equality. ``:below`` the value or anything under it (``value/...``); ``:above``
the value or any of its parents (each prefix ending before a ``/``), so no stored value is ever
used as a LIKE pattern; ``:below`` is an index range (:func:`dhr.search.sql.dialect.prefix`).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, or_

from dhr.search.sql.dialect import prefix
from dhr.search.sql.values import Uri


def match(t: FromClause, value: Uri, modifier: str | None) -> ColumnElement[bool]:
    uri = value.uri
    if modifier == "below":
        return or_(t.c.uri == uri, prefix(t.c.uri, uri.rstrip("/") + "/"))
    if modifier == "above":
        parents = {uri[:i] for i, ch in enumerate(uri) if ch == "/" and uri[:i].count("/") >= 2}
        return t.c.uri.in_(sorted(parents | {uri}))
    return t.c.uri == uri
