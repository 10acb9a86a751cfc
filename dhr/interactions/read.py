"""FHIR read interaction. https://hl7.org/fhir/R4/http.html#read

Deleted resources answer 410; conditional reads (``If-None-Match``, ``If-Modified-Since``)
answer 304 (https://hl7.org/fhir/R4/http.html#cread).
"""

from __future__ import annotations

from dhr.api.http import parse_etag
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import gone, not_found
from dhr.fhir.instant import parse_http_date
from dhr.interactions.common import read_response, version_headers


def read(ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    stored = ctx.repo.read_current(res_type, res_id)
    if stored is None or stored.version_id == 0:
        raise not_found(f"{res_type}/{res_id} is not known")
    if stored.deleted:
        raise gone(f"{res_type}/{res_id} was deleted (version {stored.version_id})")
    if_none_match = req.header("if-none-match")
    unchanged = if_none_match is not None and if_none_match.strip() != "*"
    if unchanged and parse_etag(if_none_match) == stored.version_id:
        return FhirResponse(304, headers=version_headers(ctx, stored, False))
    since = parse_http_date(req.headers.get("if-modified-since", ""))
    # HTTP dates have one-second precision: unchanged means "not after that second".
    if since is not None and stored.last_updated < since + 1_000_000:
        return FhirResponse(304, headers=version_headers(ctx, stored, False))
    return read_response(req, ctx, stored)
