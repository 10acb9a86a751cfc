"""FHIR history at instance, type and system level. https://hl7.org/fhir/R4/http.html#history

Newest first. Paging is keyset on the server-wide write order, so a ``next`` link keeps
returning exactly the older versions while others write. ``_since`` keeps versions written at or
after an instant; ``_at`` keeps versions that were current at some time in the given period.
Only versions the principal may see are listed (:meth:`dhr.enforce.EnforcingRepository.history`):
instance history needs the ``r`` scope, type and system history ``s`` (SMART App Launch 2.2); a
page may then hold fewer entries than ``_count`` while its ``next`` link still leads on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.digits import natural
from dhr.errors import bad_request, not_found
from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant, parse_range
from dhr.store.repository import StoredVersion

PAGE_PARAM = "_page_before"


def page_size(ctx: RequestContext, req: FhirRequest) -> int:
    raw = req.param("_count")
    if raw is None:
        return ctx.settings.default_page_size
    count = natural(raw)
    if count is None:
        raise bad_request(f"_count={raw[:20]!r} is not a non-negative integer", "bad-count")
    if count > ctx.settings.max_page_size:
        raise bad_request(
            f"_count={count} is above the maximum page size {ctx.settings.max_page_size}",
            "bad-count",
        )
    return count


def history(
    ctx: RequestContext, req: FhirRequest, res_type: str | None, res_id: str | None
) -> FhirResponse:
    since_raw, at_raw = req.param("_since"), req.param("_at")
    since = parse_range(since_raw, "_since")[0] if since_raw else None
    at = parse_range(at_raw, "_at") if at_raw else None
    count = page_size(ctx, req)
    cursor_raw = req.param(PAGE_PARAM)
    cursor = natural(cursor_raw) if cursor_raw else None
    if cursor_raw and cursor is None:
        raise bad_request(f"{PAGE_PARAM} is not a page cursor this server issued", "bad-cursor")
    if res_id is not None and res_type is not None and not _known(ctx, res_type, res_id):
        raise not_found(f"{res_type}/{res_id} is not known")
    page = ctx.repo.history(res_type, res_id, since, at, count, cursor)
    rows = page.versions
    path = "/".join([*(p for p in (res_type, res_id) if p), "_history"])
    kept = [(k, v) for k, v in req.query if k != PAGE_PARAM]
    links = [{"relation": "self", "url": _url(ctx, path, req.query)}]
    if page.next_before is not None:
        links.append(
            {
                "relation": "next",
                "url": _url(ctx, path, [*kept, (PAGE_PARAM, str(page.next_before))]),
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "link": links,
        "entry": [_entry(ctx, v) for v in rows],
    }
    return FhirResponse(200, None, bundle, {}, "Bundle")


def _known(ctx: RequestContext, res_type: str, res_id: str) -> bool:
    return ctx.repo.read_current(res_type, res_id) is not None


def _url(
    ctx: RequestContext, path: str, query: list[tuple[str, str]] | tuple[tuple[str, str], ...]
) -> str:
    qs = urlencode(list(query))
    return f"{ctx.base}/{path}" + (f"?{qs}" if qs else "")


def _entry(ctx: RequestContext, v: StoredVersion) -> dict[str, Any]:
    full = f"{ctx.base}/{v.res_type}/{v.res_id}"
    if v.deleted:
        request = {"method": "DELETE", "url": f"{v.res_type}/{v.res_id}"}
        status = "204 No Content"
    elif v.version_id == 1 and v.method == "POST":
        request = {"method": "POST", "url": v.res_type}
        status = "201 Created"
    else:
        request = {
            "method": v.method if v.method in ("PUT", "PATCH") else "PUT",
            "url": f"{v.res_type}/{v.res_id}",
        }
        status = "201 Created" if v.version_id == 1 else "200 OK"
    entry: dict[str, Any] = {"fullUrl": full}
    if v.data is not None:
        entry["resource"] = jsonio.loads(v.data)
    entry["request"] = request
    entry["response"] = {
        "status": status,
        "etag": v.etag,
        "lastModified": format_instant(v.last_updated),
    }
    return entry
