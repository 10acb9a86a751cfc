"""Helpers every interaction shares: body loading and resource responses.

https://hl7.org/fhir/R4/http.html#ops (Prefer), #versioning (ETag, Last-Modified, Location).
"""

from __future__ import annotations

from typing import Any

from dhr.api.http import check_body_type, prefer_return, representation
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import FhirError, bad_request, information
from dhr.fhir import jsonio
from dhr.fhir.instant import format_http_date
from dhr.fhir.subset import select_elements, summarise
from dhr.fhir.validate import validate_resource
from dhr.store.repository import StoredVersion


def load_resource(req: FhirRequest, expected_type: str | None) -> dict[str, Any]:
    """The request's resource, parsed and validated (a Bundle entry's is already parsed)."""
    if req.parsed_body is not None:
        data = req.parsed_body
    else:
        check_body_type(req)
        data = jsonio.parse_object(req.body or b"")
    if not req.validated:
        validate_resource(data, expected_type)
    return data


def version_headers(ctx: RequestContext, stored: StoredVersion, location: bool) -> dict[str, str]:
    headers = {
        "ETag": stored.etag,
        "Last-Modified": format_http_date(stored.last_updated),
    }
    if location:
        headers["Location"] = (
            f"{ctx.base}/{stored.res_type}/{stored.res_id}/_history/{stored.version_id}"
        )
    return headers


def shaped_body(req: FhirRequest, raw: bytes) -> tuple[bytes | None, dict[str, Any] | None]:
    """Stored bytes as they are, or re-shaped when ``_summary``/``_elements``/``_pretty`` ask."""
    rep = representation(req)
    if not rep.summary and not rep.elements and not rep.pretty:
        return raw, None
    data = jsonio.loads(raw)
    if rep.summary == "count":
        raise bad_request("_summary=count applies to searches, not to a read", "summary-count-read")
    if rep.summary:
        data = summarise(data, rep.summary)
    elif rep.elements:
        data = select_elements(data, rep.elements)
    return None, data


def read_response(req: FhirRequest, ctx: RequestContext, stored: StoredVersion) -> FhirResponse:
    assert stored.data is not None
    raw, data = shaped_body(req, stored.data)
    headers = version_headers(ctx, stored, False)
    return FhirResponse(200, raw, data, headers, stored.res_type, stored.last_updated)


def write_response(
    req: FhirRequest, ctx: RequestContext, stored: StoredVersion, status: int, message: str
) -> FhirResponse:
    """A create/update/patch response honouring ``Prefer: return=``."""
    headers = version_headers(ctx, stored, location=True)
    mode = prefer_return(req)
    if mode == "minimal":
        return FhirResponse(status, None, None, headers, stored.res_type)
    if mode == "OperationOutcome":
        return FhirResponse(status, None, information(message), headers, "OperationOutcome")
    assert stored.data is not None
    return FhirResponse(status, stored.data, None, headers, stored.res_type, stored.last_updated)


def outcome_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> FhirResponse:
    return FhirResponse(status, None, information(message), headers or {}, "OperationOutcome")


def error_response(exc: FhirError) -> FhirResponse:
    return FhirResponse(exc.status, None, exc.outcome(), dict(exc.headers), "OperationOutcome")
