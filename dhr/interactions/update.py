"""FHIR update (also create-on-update) and conditional update.

https://hl7.org/fhir/R4/http.html#update, #cond-update, #concurrency (If-Match: 412 when stale).
"""

from __future__ import annotations

from dhr.api.http import parse_etag
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import bad_request, precondition_failed
from dhr.fhir.ids import check_id, new_id
from dhr.interactions.common import load_resource, write_response
from dhr.interactions.criteria import match_one, parse_criteria
from dhr.interactions.source_writes import source_write
from dhr.store.repository import StaleVersion


def update(ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    check_id(res_id)
    body = load_resource(req, res_type)
    if body.get("id") is None:
        raise bad_request(
            "An update body must carry the id of the URL", "missing-id", f"{res_type}.id"
        )
    if body["id"] != res_id:
        raise bad_request(
            f"The body's id {body['id']!r} differs from the URL's id {res_id!r}",
            "id-mismatch",
            f"{res_type}.id",
        )
    ingested = source_write(ctx, req, res_type, res_id, body)
    if ingested is not None:
        return ingested
    return _store(ctx, req, res_type, res_id, body)


def conditional_update(ctx: RequestContext, req: FhirRequest, res_type: str) -> FhirResponse:
    criteria = parse_criteria(req.query)
    body = load_resource(req, res_type)
    match = match_one(ctx, res_type, criteria, "Conditional update")
    body_id = body.get("id")
    if match is None:
        target = body_id if isinstance(body_id, str) else new_id()
    else:
        if body_id is not None and body_id != match:
            raise bad_request(
                f"The body's id {body_id!r} differs from the matching resource {match!r}",
                "id-mismatch",
                f"{res_type}.id",
            )
        target = match
    return _store(ctx, req, res_type, target, body)


def _store(
    ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str, body: dict[str, object]
) -> FhirResponse:
    if_match = parse_etag(req.header("if-match"))
    try:
        stored, created = ctx.repo.put(res_type, res_id, dict(body), if_match, req.method)
    except StaleVersion as stale:
        now = "does not exist" if stale.current is None else f"is at version {stale.current}"
        raise precondition_failed(
            f"If-Match asked for version {if_match} but {res_type}/{res_id} {now}",
            "version-conflict",
        ) from None
    status = 201 if created else 200
    verb = "Created" if created else "Updated"
    return write_response(req, ctx, stored, status, f"{verb} {res_type}/{res_id}")
