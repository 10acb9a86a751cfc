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
repository (:meth:`dhr.enforce.EnforcingRepository.everything`), whose statement
(:class:`dhr.store.access_store.EverythingSet`) keeps only what the principal may read: the
Patient needs the ``r`` scope, and each returned type is filtered in SQL by the ``r`` scopes
(types, the launch patient's compartment, granular restrictions), so nothing of another patient
comes back and ``total`` stays true.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.digits import natural
from dhr.errors import Issue, bad_request, gone, not_found, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.instant import parse_range
from dhr.fhir.types import resource_types
from dhr.interactions.history import page_size

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
    after = natural(cursor) if cursor else None
    if cursor and after is None:
        raise bad_request("_page is not a page cursor this server issued", "bad-cursor")
    rows = ctx.repo.everything(patient_id, types, since, after, count + 1) if count > 0 else []
    more = len(rows) > count
    rows = rows[:count]
    complete = after is None and not more and count > 0
    total = len(rows) if complete else ctx.repo.everything_count(patient_id, types, since)
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
