"""AuditEvent read and search, served from the audit itself.

https://hl7.org/fhir/R4/http.html#read and https://hl7.org/fhir/R4/http.html#search over
https://hl7.org/fhir/R4/auditevent.html. Who may call them and which parameters exist is
:mod:`dhr.audit.view`; the SQL is :mod:`dhr.store.audit_store`.

A read answers the stored canonical bytes of the event unchanged (the bytes the chain hashes).
A search answers a ``searchset`` Bundle, newest event first, paged by keyset on the row key: a
``next`` link carries ``_page=<last key>``, so pages neither repeat nor skip an event while new
events are appended (they land before the first page). ``total`` is given when the first page
holds every match. Every event returned is recorded as touched, so reading the audit leaves its
own AuditEvents (https://profiles.ihe.net/ITI/BALP/, "audit of audit access").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from dhr.api.http import prefer_strict
from dhr.api.message import FhirRequest, FhirResponse
from dhr.audit import view
from dhr.context import RequestContext
from dhr.digits import natural
from dhr.errors import Issue, bad_request, not_found, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.instant import format_http_date
from dhr.interactions.search import search_pairs


def read(ctx: RequestContext, req: FhirRequest, event_id: str) -> FhirResponse:
    """``GET AuditEvent/[id]``: the stored event, or 404."""
    del req
    view.require_auditor(ctx, "r")
    row = ctx.repo.audit_event(event_id)
    if row is None:
        raise not_found(f"AuditEvent/{event_id} is not known")
    view.touched(ctx, [row])
    headers = {"Last-Modified": format_http_date(int(row.recorded))}
    return FhirResponse(200, bytes(row.data), None, headers, view.AUDIT_EVENT)


def search(ctx: RequestContext, req: FhirRequest, patient: str | None = None) -> FhirResponse:
    """``GET AuditEvent?...`` (and ``Patient/[id]/AuditEvent?...`` with ``patient`` fixed)."""
    view.require_auditor(ctx, "s")
    pairs = search_pairs(req)
    query = view.parse_query(pairs, ctx.base, prefer_strict(req), patient)
    count = page_count(pairs, ctx.settings.default_page_size, ctx.settings.max_page_size)
    after = page_cursor(pairs)
    rows: list[Any] = []
    if count > 0 and not query.empty:
        rows = ctx.repo.audit_events(
            **query.store_filters(),
            limit=count + 1,
            after_key=after,
            newest_first=True,
        )
    more = len(rows) > count
    rows = rows[:count]
    path = view.AUDIT_EVENT if patient is None else f"Patient/{patient}/{view.AUDIT_EVENT}"
    used = [p for p in query.used if patient is None or p[0] != "patient"]
    used += [(k, v) for k, v in pairs if k in ("_count", "_sort")]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if (after is None and not more and count > 0) or query.empty:
        bundle["total"] = len(rows)
    bundle["link"] = links(ctx.base, path, used, after, int(rows[-1].key) if more else None)
    entries = [
        {
            "fullUrl": f"{ctx.base}/{view.AUDIT_EVENT}/{row.event_id}",
            "resource": jsonio.loads(bytes(row.data)),
            "search": {"mode": "match"},
        }
        for row in rows
    ]
    if query.ignored:
        entries.append(ignored_outcome(query.ignored))
    if entries:
        bundle["entry"] = entries
    view.touched(ctx, rows)
    return FhirResponse(200, None, bundle, {}, "Bundle")


def page_count(pairs: Sequence[tuple[str, str]], default: int, maximum: int) -> int:
    """``_count`` (https://hl7.org/fhir/R4/search.html#count): 0..maximum, else 400."""
    raw = next((v for k, v in pairs if k == "_count"), None)
    if raw is None:
        return default
    count = natural(raw)
    if count is None:
        raise bad_request(f"_count={raw[:20]!r} is not a non-negative integer", "bad-count")
    if count > maximum:
        raise bad_request(f"_count={raw} is above the maximum page size {maximum}", "bad-count")
    return count


def page_cursor(pairs: Sequence[tuple[str, str]]) -> int | None:
    """The ``_page`` cursor this server issued (the last row key of the previous page)."""
    raw = next((v for k, v in pairs if k == "_page"), None)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise bad_request("_page is not a page cursor this server issued", "bad-cursor")
    return int(raw)


def links(
    base: str,
    path: str,
    used: Sequence[tuple[str, str]],
    page: int | None,
    next_page: int | None,
) -> list[dict[str, str]]:
    """``self``, ``first`` and (when more follow) ``next`` links of a keyset-paged answer."""

    def url(extra: list[tuple[str, str]]) -> str:
        qs = urlencode([*used, *extra], safe=":,|$/", quote_via=quote)
        return f"{base}/{path}" + (f"?{qs}" if qs else "")

    out = [{"relation": "self", "url": url([("_page", str(page))] if page is not None else [])}]
    out.append({"relation": "first", "url": url([])})
    if next_page is not None:
        out.append({"relation": "next", "url": url([("_page", str(next_page))])})
    return out


def ignored_outcome(ignored: Sequence[str]) -> dict[str, Any]:
    names = ", ".join(sorted(set(ignored)))
    issue = Issue(
        "warning",
        "not-supported",
        f"Ignored search parameters AuditEvent search does not support: {names}",
        (),
        "ignored-parameter",
    )
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}
