"""Compile a parsed search into SQLAlchemy Core selects over the index tables.

https://hl7.org/fhir/R4/search.html. Only live resources (not deleted, version > 0) match.
Every criterion becomes ``resource.key IN (subquery)`` (or ``NOT IN`` for ``:not`` and
``:missing=true``); chains join ``ix_reference`` to the target ``resource`` rows
(https://hl7.org/fhir/R4/search.html#chaining) and ``_has`` goes the other way (#has).
:func:`matching_keys` is the reusable core (``_include``, compartments and ``$everything`` can
build on it). Sorting (#sort) uses one value per resource: the minimum of its index rows for an
ascending key, the maximum for a descending one; resources without a value sort last, and the
resource key breaks ties, which makes the (sort values, key) keyset a stable paging cursor.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    false,
    func,
    literal,
    not_,
    or_,
    select,
)

from dhr.errors import bad_request
from dhr.search import compartment
from dhr.search.compartment import InCompartment
from dhr.search.params import Chain, Criterion, Filter, Has, SortKey
from dhr.search.sql import composite, special
from dhr.search.sql.predicate import index_code, index_table, table_name, value_match
from dhr.search.sql.values import Composite, Missing
from dhr.store.models import ResourceRow, VersionRow

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
_SPECIAL = frozenset({"_id", "_lastUpdated"})


def live(res: FromClause, res_type: str) -> list[ColumnElement[bool]]:
    return [res.c.res_type == res_type, res.c.deleted.is_(False), res.c.version_id > 0]


def matching_keys(res_type: str, criteria: Sequence[Criterion]) -> Select[tuple[int]]:
    """``SELECT key`` of the live ``res_type`` resources matching every criterion."""
    res = RESOURCE.alias()
    return select(res.c.key).where(*live(res, res_type), *conditions(res, res_type, criteria))


def matching_ids(res_type: str, criteria: Sequence[Criterion], limit: int) -> Select[Any]:
    """``SELECT res_id`` of at most ``limit`` matches (conditional interactions)."""
    res = RESOURCE.alias()
    where = [*live(res, res_type), *conditions(res, res_type, criteria)]
    return select(res.c.res_id).where(*where).order_by(res.c.key).limit(limit)


def conditions(
    res: FromClause, res_type: str, criteria: Sequence[Criterion]
) -> list[ColumnElement[bool]]:
    return [criterion(res, res_type, c) for c in criteria]


def criterion(res: FromClause, res_type: str, c: Criterion) -> ColumnElement[bool]:
    if isinstance(c, Filter):
        return _filter(res, res_type, c)
    if isinstance(c, InCompartment):
        return compartment.member_condition(res, res_type, c)
    ref = index_table("reference")
    if isinstance(c, Chain):
        target = RESOURCE.alias()
        inner = or_(*(target.c.key.in_(matching_keys(t, [ic])) for t, ic in c.inner))
        joined = ref.join(
            target,
            and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id),
        )
        sub = (
            select(ref.c.resource_key)
            .select_from(joined)
            .where(ref.c.res_type == res_type, ref.c.param == c.param.code, inner)
        )
        return res.c.key.in_(sub)
    assert isinstance(c, Has)
    referrers = matching_keys(c.source, [c.inner])
    sub = select(ref.c.target_id).where(
        ref.c.res_type == c.source,
        ref.c.param == c.param.code,
        ref.c.target_type == res_type,
        ref.c.resource_key.in_(referrers),
    )
    return res.c.res_id.in_(sub)


def _filter(res: FromClause, res_type: str, f: Filter) -> ColumnElement[bool]:
    param = f.param
    if param.code in _SPECIAL:
        return special.match(res, f)
    first = f.values[0]
    if isinstance(first, Missing):
        name = (
            table_name(_first_component(param), None)
            if param.type == "composite"
            else table_name(param, None)
        )
        t = index_table(name)
        has = res.c.key.in_(
            select(t.c.resource_key).where(t.c.res_type == res_type, t.c.param == param.code)
        )
        return not_(has) if first.missing else has
    if param.type == "composite":
        return or_(
            *(
                res.c.key.in_(composite.keys(res_type, param, v))
                for v in f.values
                if isinstance(v, Composite)
            )
        )
    t = index_table(table_name(param, f.modifier))
    pred = or_(*(value_match(t, param, f.modifier, v) for v in f.values))
    sub = select(t.c.resource_key).where(
        t.c.res_type == res_type, t.c.param == index_code(param, f.modifier), pred
    )
    return not_(res.c.key.in_(sub)) if f.modifier == "not" else res.c.key.in_(sub)


def _first_component(param: Any) -> Any:
    from dhr.search.registry import registry

    return registry().by_url(param.components[0].definition)


# -- sorting and paging ---------------------------------------------------------------------

_SORT_COLUMN = {
    "string": "norm",
    "token": "code",
    "number": "value",
    "quantity": "value",
    "uri": "uri",
}


def sort_value(res: FromClause, key: SortKey) -> ColumnElement[Any]:
    """One comparable value per resource for ``key`` (NULL when the resource has none)."""
    code = key.param.code
    if code == "_id":
        return res.c.res_id
    if code == "_lastUpdated":
        return res.c.last_updated
    t = index_table(table_name(key.param, None))
    if key.param.type == "date":
        col: ColumnElement[Any] = t.c.high if key.descending else t.c.low
    elif key.param.type == "reference":
        col = func.coalesce(t.c.target_type + literal("/") + t.c.target_id, t.c.url)
    else:
        col = t.c[_SORT_COLUMN[key.param.type]]
    agg = func.max(col) if key.descending else func.min(col)
    inner = select(agg).where(t.c.resource_key == res.c.key, t.c.param == code)
    return inner.correlate(res).scalar_subquery()


def page_query(
    res_type: str,
    criteria: Sequence[Criterion],
    sort: Sequence[SortKey],
    limit: int,
    after: list[Any] | None,
) -> Select[Any]:
    """One page: (key, res_type, res_id, data, sort values...) ordered, ``limit`` rows."""
    res = RESOURCE.alias()
    columns = [sort_value(res, k).label(f"s{i}") for i, k in enumerate(sort)]
    inner = (
        select(res.c.key, res.c.res_type, res.c.res_id, res.c.version_id, *columns)
        .where(*live(res, res_type), *conditions(res, res_type, criteria))
        .subquery()
    )
    ver = VERSION.alias()
    ordered = [(inner.c[f"s{i}"], k.descending) for i, k in enumerate(sort)]
    ordered.append((inner.c.key, False))
    stmt = (
        select(inner.c.key, inner.c.res_type, inner.c.res_id, ver.c.data)
        .add_columns(*(col for col, _ in ordered[:-1]))
        .join(ver, and_(ver.c.resource_key == inner.c.key, ver.c.version_id == inner.c.version_id))
    )
    if after is not None:
        stmt = stmt.where(_after(ordered, after))
    for col, desc in ordered[:-1]:
        stmt = stmt.order_by(col.is_(None), col.desc() if desc else col.asc())
    return stmt.order_by(inner.c.key).limit(limit)


def count_query(res_type: str, criteria: Sequence[Criterion]) -> Select[Any]:
    res = RESOURCE.alias()
    where = [*live(res, res_type), *conditions(res, res_type, criteria)]
    return select(func.count()).select_from(res).where(*where)


def _after(ordered: Sequence[tuple[ColumnElement[Any], bool]], values: list[Any]) -> Any:
    """Rows strictly after ``values`` in the (NULLs last, key tie-break) order."""
    alternatives: list[ColumnElement[bool]] = []
    equal: list[ColumnElement[bool]] = []
    for (col, desc), value in zip(ordered, values, strict=True):
        if value is None:
            step: ColumnElement[bool] = false()
            same: ColumnElement[bool] = col.is_(None)
        else:
            step = or_(col < value if desc else col > value, col.is_(None))
            same = col == value
        alternatives.append(and_(*equal, step))
        equal.append(same)
    return or_(*alternatives)


def sort_signature(sort: Sequence[SortKey]) -> str:
    return ",".join(("-" if k.descending else "") + k.param.code for k in sort)


def encode_cursor(sort: Sequence[SortKey], values: Sequence[Any]) -> str:
    raw = orjson.dumps([sort_signature(sort), *values])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(sort: Sequence[SortKey], token: str) -> list[Any]:
    """The keyset values in a ``_page`` token this server issued for the same ``_sort``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError):
        data = None
    ok = (
        isinstance(data, list)
        and len(data) == len(sort) + 2
        and data[0] == sort_signature(sort)
        and isinstance(data[-1], int)
        and all(v is None or isinstance(v, str | int | float) for v in data[1:])
    )
    if not ok:
        raise bad_request(
            "_page is not a page cursor this server issued for this search", "bad-cursor"
        )
    assert isinstance(data, list)
    return data[1:]
