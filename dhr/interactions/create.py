"""FHIR create and conditional create. https://hl7.org/fhir/R4/http.html#create, #ccreate

The server assigns the id (any id in the body is ignored, as the spec says). With
``If-None-Exist`` one match answers 200 with the existing resource and several answer 412.
"""

from __future__ import annotations

from typing import Any

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import FhirError
from dhr.fhir.ids import new_id
from dhr.interactions.common import load_resource, read_response, version_headers, write_response
from dhr.interactions.criteria import match_one, parse_criteria_string
from dhr.interactions.source_writes import source_write


def create(
    ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str | None = None
) -> FhirResponse:
    """Create ``res_type``; ``res_id`` lets a transaction use the id it assigned to a urn:uuid."""
    body = load_resource(req, res_type)
    ctx.repo.require(res_type, "c")  # before If-None-Exist can answer with a match
    condition = req.header("if-none-exist")
    if not condition and res_id is None:
        ingested = source_write(ctx, req, res_type, None, body)
        if ingested is not None:
            return ingested
    if condition:
        existing = match_one(ctx, res_type, parse_criteria_string(condition), "If-None-Exist")
        if existing is not None:
            stored = ctx.repo.read_current(res_type, existing)
            if stored is None:
                raise FhirError(
                    403,
                    "forbidden",
                    "If-None-Exist matched a resource the token may not read",
                    "forbidden",
                )
            response = read_response(FhirRequest("GET", ""), ctx, stored)
            response.headers = version_headers(ctx, stored, location=True)
            return response
    stored = ctx.repo.create(res_type, res_id or new_id(), body)
    return write_response(req, ctx, stored, 201, f"Created {res_type}/{stored.res_id}")


def create_many(
    ctx: RequestContext, items: list[tuple[FhirRequest, str, str, dict[str, Any]]]
) -> list[FhirResponse]:
    """Plain creates (no ``If-None-Exist``) stored together, in order.

    Each item is ``(request, type, id, body)`` with ``body`` from :func:`load_resource` (parsed
    and validated); a transaction validates every entry first, then stores them in one go.
    """
    stored = ctx.repo.create_many([(res_type, res_id, body) for _, res_type, res_id, body in items])
    return [
        write_response(req, ctx, version, 201, f"Created {version.res_type}/{version.res_id}")
        for (req, _, _, _), version in zip(items, stored, strict=True)
    ]
