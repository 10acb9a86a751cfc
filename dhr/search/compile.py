"""Compile a parsed search into SQLAlchemy Core selects over the index tables.

https://hl7.org/fhir/R4/search.html. Only live resources (not deleted, version > 0) match.

The statements are index-bound: one criterion, the most selective by its kind (see
:func:`_rank`: ``_id``, then a reference to one target or a compartment, then codes...),
*drives* the search as ``resource.key IN (subquery over its index table)``; every other
criterion is a correlated ``EXISTS`` probe of the candidate's own index rows through the
``(resource_key, param, ...)`` indexes of migration 0002. So a patient-scoped search reads that
patient's rows whatever the size of the database. On SQLite the ``res_type`` test is written
``+res_type`` when a criterion drives (:func:`dhr.search.sql.dialect.unindexed`), or SQLite would
scan every resource of the type. ``:not`` and ``:missing=true`` are ``NOT EXISTS`` and never
drive. Chains (https://hl7.org/fhir/R4/search.html#chaining) are compiled inside-out: the ids of
the matching targets first, then the references to them through
``ix_reference (res_type, param, target_id, target_type)``; ``_has`` (#has) goes the other way.
:func:`matching_keys` is the reusable core (``_include``, compartments and ``$everything`` can
build on it). Criteria that no search parameter defines (the access restrictions of
:mod:`dhr.store.access_store`) implement :class:`Term` and are AND-ed in like any other;
:func:`probes` checks one known resource against criteria without a driving subquery.
Sorting (#sort) uses one value per resource: the minimum of its index rows for an ascending key,
the maximum for a descending one; resources without a value sort last, and the resource key
breaks ties, which makes the (sort values, key) keyset a stable paging cursor.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    union,
)

from dhr.errors import bad_request
from dhr.search import compartment
from dhr.search.compartment import InCompartment
from dhr.search.params import Chain, Criterion, Filter, Guarded, Has, SortKey
from dhr.search.sql import composite, special
from dhr.search.sql.aliases import alias_of
from dhr.search.sql.dialect import any_of, unindexed
from dhr.search.sql.predicate import (
    index_code,
    param_is,
    statement_index_table,
    table_name,
    value_match,
)
from dhr.search.sql.values import Composite, Missing, Ref, Text, Token, Uri, Value
from dhr.search.unions import stored_codes
from dhr.store.models import ResourceRow, VersionRow

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
_SPECIAL = frozenset({"_id", "_lastUpdated"})

Cond = Callable[[FromClause], ColumnElement[bool]]


@runtime_checkable
class Term(Protocol):
    """A criterion outside the search parameter registry, compiled by itself."""

    def parts(self, res_type: str) -> tuple[int | None, Cond, Cond]:
        """(rank or None, driving ``IN`` condition, per-candidate probe) for ``res_type``."""
        ...


Criteria = Sequence[Criterion | Term]


@dataclass(frozen=True)
class _Part:
    """One criterion two ways: as the driving ``IN`` and as a per-candidate probe."""

    rank: int | None  # lower is more selective; None: cannot drive (negations, no index)
    drive: Cond
    probe: Cond
    by_id: bool = False  # drives through ``resource (res_type, res_id)``, not by key


def where(res: FromClause, res_type: str, criteria: Criteria) -> list[Any]:
    """The conditions on ``res`` for a live ``res_type`` resource matching every criterion."""
    parts = [_part(res_type, c) for c in criteria]
    drivers = [p for p in parts if p.rank is not None]
    driver = min(drivers, key=lambda p: p.rank or 0) if drivers else None
    is_type = res.c.res_type == res_type
    if driver is not None and not driver.by_id:
        is_type = unindexed(res.c.res_type) == res_type
    conds = [is_type, res.c.deleted.is_(False), res.c.version_id > 0]
    return conds + [p.drive(res) if p is driver else p.probe(res) for p in parts]


def probes(res: FromClause, res_type: str, criteria: Criteria) -> list[ColumnElement[bool]]:
    """Every criterion as a probe of the candidate ``res`` (already chosen by key or id)."""
    return [_part(res_type, c).probe(res) for c in criteria]


def matching_keys(res_type: str, criteria: Criteria) -> Select[tuple[int]]:
    """``SELECT key`` of the live ``res_type`` resources matching every criterion."""
    res = alias_of(RESOURCE)
    return select(res.c.key).where(*where(res, res_type, criteria))


def matching_ids(res_type: str, criteria: Criteria, limit: int) -> Select[Any]:
    """``SELECT res_id`` of at most ``limit`` matches (conditional interactions)."""
    res = alias_of(RESOURCE)
    stmt = select(res.c.res_id).where(*where(res, res_type, criteria))
    return stmt.order_by(res.c.key).limit(limit)


def _part(res_type: str, c: Criterion | Term) -> _Part:
    if isinstance(c, Term):
        rank, drive, probe = c.parts(res_type)
        return _Part(rank, drive, probe)
    if isinstance(c, Filter):
        return _filter(res_type, c)
    if isinstance(c, InCompartment):
        drive, probe = compartment.member_conditions(res_type, c)
        return _Part(1, drive, probe)
    if isinstance(c, Chain):
        return _chain(res_type, c)
    if isinstance(c, Guarded):
        inner = _part(res_type, c.inner)
        _, _, guard = c.term.parts(res_type)
        return _Part(
            inner.rank,
            lambda res: and_(inner.drive(res), guard(res)),
            lambda res: and_(inner.probe(res), guard(res)),
            by_id=inner.by_id,
        )
    assert isinstance(c, Has)
    ref = statement_index_table("reference")
    referrers = matching_keys(c.source, [c.inner])
    sub = select(ref.c.target_id).where(
        ref.c.res_type == c.source,
        ref.c.param == c.param.code,
        ref.c.target_type == res_type,
        ref.c.resource_key.in_(referrers),
    )
    has: Cond = lambda res: any_of(res.c.res_id, sub)  # noqa: E731
    return _Part(4, has, has, by_id=True)


def _chain(res_type: str, c: Chain) -> _Part:
    """Inside-out: ids of the targets matching the inner criterion, then references to them
    (one ``ix_reference (res_type, param, target_id, target_type)`` lookup per target type)."""
    ref = statement_index_table("reference")
    per_type = []
    for t, ic in c.inner:
        target = alias_of(RESOURCE)
        ids = select(target.c.res_id).where(*where(target, t, [ic]))
        per_type.append((t, ids))

    def to_type(r: FromClause, t: str, ids: Select[Any]) -> list[ColumnElement[bool]]:
        return [r.c.param == c.param.code, any_of(r.c.target_id, ids), r.c.target_type == t]

    def drive(res: FromClause) -> ColumnElement[bool]:
        subs = []
        for t, ids in per_type:
            r = statement_index_table("reference")
            cond = [r.c.res_type == res_type, *to_type(r, t, ids)]
            subs.append(select(r.c.resource_key).where(*cond))
        return any_of(res.c.key, subs[0] if len(subs) == 1 else union(*subs))

    def probe(res: FromClause) -> ColumnElement[bool]:
        own = ref.c.resource_key == res.c.key
        return or_(*(exists().where(own, *to_type(ref, t, ids)) for t, ids in per_type))

    return _Part(3, drive, probe)


def _rows(
    res_type: str,
    name: str,
    codes: tuple[str, ...],
    pred: Callable[[FromClause], ColumnElement[bool]] | None,
) -> _Part:
    """Rows of index table ``name`` under one of ``codes`` (matching ``pred``) exist."""
    t = statement_index_table(name)
    extra = [] if pred is None else [pred(t)]
    sub = select(t.c.resource_key).where(t.c.res_type == res_type, param_is(t, codes), *extra)
    return _Part(
        0,
        lambda res: any_of(res.c.key, sub),
        lambda res: exists().where(t.c.resource_key == res.c.key, param_is(t, codes), *extra),
    )


def _filter(res_type: str, f: Filter) -> _Part:
    param = f.param
    if param.code in _SPECIAL:
        cond: Cond = lambda res: special.match(res, f)  # noqa: E731
        simple_id = param.code == "_id" and f.modifier is None
        simple_id = simple_id and not isinstance(f.values[0], Missing)
        return _Part(0 if simple_id else None, cond, cond, by_id=True)
    first = f.values[0]
    if isinstance(first, Missing):
        name = (
            table_name(_first_component(param), None)
            if param.type == "composite"
            else table_name(param, None)
        )
        has = _rows(res_type, name, stored_codes(res_type, param.code), None)
        if first.missing:
            absent: Cond = lambda res: not_(has.probe(res))  # noqa: E731
            return _Part(None, absent, absent)
        return _Part(6, has.drive, has.probe)
    if param.type == "composite":
        values = [v for v in f.values if isinstance(v, Composite)]
        return _Part(
            2,
            lambda res: or_(
                *(any_of(res.c.key, composite.keys(res_type, param, v)) for v in values)
            ),
            lambda res: or_(
                *(exists(composite.keys(res_type, param, v, owner=res.c.key)) for v in values)
            ),
        )
    rows = _rows_matching(res_type, param, f)
    if f.modifier == "not":
        negated: Cond = lambda res: not_(rows.probe(res))  # noqa: E731
        return _Part(None, negated, negated)
    return _Part(min(_rank(param.type, f.modifier, v) for v in f.values), rows.drive, rows.probe)


def _rows_matching(res_type: str, param: Any, f: Filter) -> _Part:
    """Rows of ``param`` matching one of ``f``'s values exist."""
    t_name, code = table_name(param, f.modifier), index_code(param, f.modifier)
    return _rows(
        res_type,
        t_name,
        stored_codes(res_type, code),
        lambda t: or_(*(value_match(t, param, f.modifier, v) for v in f.values)),
    )


def _rank(kind: str, modifier: str | None, v: Value) -> int:
    """How selective one value is likely to be: 1 one target, 2 a code, ... 6 barely at all."""
    if isinstance(v, Ref):
        return 1 if v.target_id is not None or v.url is not None else 5
    if isinstance(v, Token):
        return 2 if v.code is not None else 5
    if isinstance(v, Uri):
        return 2 if modifier is None else 3
    if isinstance(v, Text):
        return {"exact": 4, "contains": 6}.get(modifier or "", 3)
    return 5 if kind in ("date", "number", "quantity") else 6


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


def sort_value(res: FromClause, res_type: str, key: SortKey) -> ColumnElement[Any]:
    """One comparable value per resource for ``key`` (NULL when the resource has none)."""
    code = key.param.code
    if code == "_id":
        return res.c.res_id
    if code == "_lastUpdated":
        return res.c.last_updated
    t = statement_index_table(table_name(key.param, None))
    if key.param.type == "date":
        col: ColumnElement[Any] = t.c.high if key.descending else t.c.low
    elif key.param.type == "reference":
        col = func.coalesce(t.c.target_type + literal("/") + t.c.target_id, t.c.url)
    else:
        col = t.c[_SORT_COLUMN[key.param.type]]
    agg = func.max(col) if key.descending else func.min(col)
    inner = select(agg).where(
        t.c.resource_key == res.c.key, param_is(t, stored_codes(res_type, code))
    )
    return inner.correlate(res).scalar_subquery()


def page_query(
    res_type: str,
    criteria: Criteria,
    sort: Sequence[SortKey],
    limit: int,
    after: list[Any] | None,
) -> Select[Any]:
    """One page: (key, res_type, res_id, data, sort values..., patient key) ordered, ``limit``
    rows (the patient key of :mod:`dhr.store.patient_key`, which the audit names)."""
    res = alias_of(RESOURCE)
    columns = [sort_value(res, res_type, k).label(f"s{i}") for i, k in enumerate(sort)]
    inner = (
        select(res.c.key, res.c.res_type, res.c.res_id, res.c.version_id, res.c.patient_key)
        .add_columns(*columns)
        .where(*where(res, res_type, criteria))
        .subquery()
    )
    # The page is chosen first and only its rows are joined to their versions: the planner
    # cannot tell how many rows a criterion keeps (the consent decision's selectivity above
    # all), and guessing thousands it walked the whole version index to merge-join them.
    page = select(*inner.c)
    ordered = [(inner.c[f"s{i}"], k.descending) for i, k in enumerate(sort)]
    ordered.append((inner.c.key, False))
    if after is not None:
        page = page.where(_after(ordered, after))
    chosen = _ordered(page, ordered).limit(limit).subquery()
    ver = alias_of(VERSION)
    sorts = [(chosen.c[f"s{i}"], k.descending) for i, k in enumerate(sort)]
    stmt = (
        select(chosen.c.key, chosen.c.res_type, chosen.c.res_id, ver.c.data)
        .add_columns(*(col for col, _ in sorts), chosen.c.patient_key)
        .join(
            ver, and_(ver.c.resource_key == chosen.c.key, ver.c.version_id == chosen.c.version_id)
        )
    )
    return _ordered(stmt, [*sorts, (chosen.c.key, False)])


def _ordered(stmt: Select[Any], ordered: Sequence[tuple[ColumnElement[Any], bool]]) -> Select[Any]:
    """``stmt`` ordered by the sort columns (NULLs last), then the key."""
    for col, desc in ordered[:-1]:
        stmt = stmt.order_by(col.is_(None), col.desc() if desc else col.asc())
    return stmt.order_by(ordered[-1][0])


def count_query(res_type: str, criteria: Criteria) -> Select[Any]:
    res = alias_of(RESOURCE)
    return select(func.count()).select_from(res).where(*where(res, res_type, criteria))


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
