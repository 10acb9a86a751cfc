"""Composite matching (https://hl7.org/fhir/R4/search.html#composite).

Components are stored as ordinary rows under the composite's code, ``grp`` numbering the element
they came from and ``comp`` their position (see :mod:`dhr.search.rows`). A value matches when one
element has every component matching: rows joined on (resource, param, grp). With ``owner`` the
select is correlated to one candidate resource (an ``EXISTS`` probe through the
``(resource_key, param, ...)`` indexes) instead of listing every match.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, FromClause, Select, and_, select

from dhr.search.registry import SearchParam
from dhr.search.sql.predicate import param_is, statement_index_table, table_name, value_match
from dhr.search.sql.values import Composite
from dhr.search.unions import stored_codes


def keys(
    res_type: str, param: SearchParam, value: Composite, owner: ColumnElement[int] | None = None
) -> Select[tuple[int]]:
    """Keys of ``res_type`` resources with one element matching every component of ``value``
    (only ``owner``'s, when given)."""
    aliases: list[FromClause] = []
    conds: list[ColumnElement[bool]] = []
    for position, (sub, part) in enumerate(value.parts, start=1):
        t = statement_index_table(table_name(sub, None))
        aliases.append(t)
        conds += [t.c.comp == position, value_match(t, sub, None, part)]
    first = aliases[0]
    joined = first
    for t in aliases[1:]:
        joined = joined.join(
            t,
            and_(
                t.c.resource_key == first.c.resource_key,
                t.c.param == first.c.param,
                t.c.grp == first.c.grp,
            ),
        )
    scope = first.c.res_type == res_type if owner is None else first.c.resource_key == owner
    return (
        select(first.c.resource_key)
        .select_from(joined)
        .where(scope, param_is(first, stored_codes(res_type, param.code)), *conds)
    )
