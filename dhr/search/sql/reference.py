"""Reference matching (https://hl7.org/fhir/R4/search.html#reference).

``Type/id`` matches that target; a bare ``id`` any target type the parameter allows (or the
``:Type`` modifier's); absolute URLs of this server were made relative by the parser; other
URLs match the stored ``url``. ``:identifier`` is a token search on ``{code}:identifier`` rows.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, and_

from dhr.search.sql.values import Ref


def match(t: FromClause, ref: Ref, targets: tuple[str, ...]) -> ColumnElement[bool]:
    if ref.url is not None:
        return t.c.url == ref.url
    conds = [t.c.target_id == ref.target_id]
    if ref.target_type is not None:
        conds.append(t.c.target_type == ref.target_type)
    elif targets:
        conds.append(t.c.target_type.in_(targets))
    return and_(*conds)
