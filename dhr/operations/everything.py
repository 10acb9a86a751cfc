"""``Patient/[id]/$everything`` and ``Patient/$everything``.

https://hl7.org/fhir/R4/patient-operation-everything.html. The answer is a ``searchset`` Bundle
of the Patient, every resource in its compartment (https://hl7.org/fhir/R4/patient.html#compartment,
:mod:`dhr.search.compartment`) with ``search.mode = match``, and the resources those refer to
(Practitioner, Organization, Medication, Location...; one level) with ``search.mode = include``.
At type level it is the same for every Patient. ``_since`` keeps resources last updated at or
after an instant, ``_type`` keeps the listed types (both apply to everything returned); ``start``
and ``end`` (care dates) are not supported and are reported as ignored.

The set is defined in SQL and paged by resource key (keyset, like history): a ``next`` link
carries the last key, so pages never repeat a resource, and resources created meanwhile show up
on a later page when they belong to the set. One page costs one statement whatever its size,
plus one ``COUNT`` for ``total`` when the page does not already hold everything (and, at instance
level, one read of the Patient: unknown is 404, deleted is 410). Reads go through the enforcing
repository.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import ColumnElement, FromClause, Select, and_, func, or_, select, union

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import Issue, bad_request, gone, not_found, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.instant import parse_range
from dhr.fhir.types import resource_types
from dhr.interactions.history import page_size
from dhr.search import compartment
from dhr.search.include import RESOURCE, VERSION
from dhr.search.sql.dialect import any_of
from dhr.search.sql.predicate import index_table

_KNOWN = frozenset({"_since", "_type", "_count", "_page", "_format", "_pretty"})


def everything_instance(ctx: RequestContext, req: FhirRequest, res_id: str) -> FhirResponse:
    """``GET Patient/[id]/$everything``."""
    stored = ctx.repo.read_current("Patient", res_id)
    if stored is None or stored.version_id == 0:
        raise not_found(f"Patient/{res_id} is not known")
    if stored.deleted:
        raise gone(f"Patient/{res_id} was deleted (version {stored.version_id})")
    return _everything(ctx, req, res_id, f"Patient/{res_id}/$everything")


def everything_type(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    """``GET Patient/$everything``: the same for every Patient."""
    return _everything(ctx, req, None, "Patient/$everything")


def _everything(
    ctx: RequestContext, req: FhirRequest, patient_id: str | None, path: str
) -> FhirResponse:
    since_raw = req.param("_since")
    since = parse_range(since_raw, "_since")[0] if since_raw else None
    types = _types(req)
    count = page_size(ctx, req)
    cursor = req.param("_page")
    if cursor is not None and not cursor.isdigit():
        raise bad_request("_page is not a page cursor this server issued", "bad-cursor")
    after = int(cursor) if cursor else None
    where = _Where(patient_id, types, since, ctx.base)
    rows: list[Any] = []
    if count > 0:
        rows = ctx.repo.search(_page(where, after, count + 1))
    more = len(rows) > count
    rows = rows[:count]
    complete = after is None and not more and count > 0
    res = RESOURCE.alias()
    total = len(rows) if complete else ctx.repo.count(_count(res, where(res)))
    kept = [(k, v) for k, v in req.query if k != "_page"]
    links = [{"relation": "self", "url": _url(ctx, path, req.query)}]
    links.append({"relation": "first", "url": _url(ctx, path, kept)})
    if more and rows:
        last = str(rows[-1][0])
        links.append({"relation": "next", "url": _url(ctx, path, [*kept, ("_page", last)])})
    entries = [_entry(ctx, row) for row in rows]
    ignored = sorted({k for k, _ in req.query if k not in _KNOWN})
    if ignored:
        entries.append(_ignored(ignored))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
    }
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, None, bundle, {}, "Bundle")


def _types(req: FhirRequest) -> list[str] | None:
    raw = [t.strip() for value in req.params("_type") for t in value.split(",")]
    if not raw:
        return None
    unknown = [t for t in raw if t not in resource_types()]
    if unknown:
        raise bad_request(f"_type: {unknown[0][:40]!r} is not a resource type", "bad-type")
    return raw


class _Where:
    """The conditions on a ``resource`` alias that put it in the $everything set.

    The set is one key list, ``members UNION referenced`` (``members`` a CTE, read once), that
    drives the statement through the primary key: the compartment's references are found by
    ``ix_reference (target_id, target_type)`` and what the members refer to by
    ``ix_reference (resource_key, ...)``, so a page costs the size of one Patient's record, not of
    the database.
    """

    def __init__(
        self, patient_id: str | None, types: list[str] | None, since: int | None, base: str
    ) -> None:
        self.members = compartment.member_keys("Patient", patient_id).cte("members")
        ref = index_table("reference").alias()
        target = RESOURCE.alias()
        joined = ref.join(
            target,
            and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id),
        )
        local = or_(ref.c.url.is_(None), ref.c.url.startswith(base + "/", autoescape=True))
        member_keys = select(self.members.c.key)
        referenced = (
            select(target.c.key)
            .select_from(joined)
            .where(any_of(ref.c.resource_key, member_keys), ref.c.target_type.is_not(None), local)
        )
        self.keys = union(member_keys, referenced)
        self.types = types
        self.since = since

    def is_member(self, res: FromClause) -> ColumnElement[bool]:
        return res.c.key.in_(select(self.members.c.key))

    def __call__(self, res: Any) -> list[ColumnElement[bool]]:
        where = [any_of(res.c.key, self.keys), res.c.deleted.is_(False), res.c.version_id > 0]
        if self.types is not None:
            where.append(res.c.res_type.in_(self.types))
        if self.since is not None:
            where.append(res.c.last_updated >= self.since)
        return where


def _page(where: _Where, after: int | None, limit: int) -> Select[Any]:
    res = RESOURCE.alias()
    ver = VERSION.alias()
    conds = where(res)
    if after is not None:
        conds.append(res.c.key > after)
    return (
        select(
            res.c.key,
            res.c.res_type,
            res.c.res_id,
            ver.c.data,
            where.is_member(res).label("member"),
        )
        .join(ver, and_(ver.c.resource_key == res.c.key, ver.c.version_id == res.c.version_id))
        .where(*conds)
        .order_by(res.c.key)
        .limit(limit)
    )


def _count(res: Any, conds: list[ColumnElement[bool]]) -> Select[Any]:
    return select(func.count()).select_from(res).where(*conds)


def _url(ctx: RequestContext, path: str, query: Any) -> str:
    qs = urlencode(list(query), safe=":,|$/", quote_via=quote)
    return f"{ctx.base}/{path}" + (f"?{qs}" if qs else "")


def _entry(ctx: RequestContext, row: Any) -> dict[str, Any]:
    return {
        "fullUrl": f"{ctx.base}/{row[1]}/{row[2]}",
        "resource": jsonio.loads(bytes(row[3])),
        "search": {"mode": "match" if row[4] else "include"},
    }


def _ignored(names: list[str]) -> dict[str, Any]:
    issue = Issue(
        "warning",
        "not-supported",
        f"Ignored $everything parameters this server does not support: {', '.join(names)}",
        (),
        "ignored-parameter",
    )
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}
