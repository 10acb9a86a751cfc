"""FHIR delete and conditional delete. https://hl7.org/fhir/R4/http.html#delete, #cdelete

A deletion is a new version with no content (a tombstone); later reads answer 410 and history
keeps every earlier version. Deleting what is absent or already deleted answers 200.
"""

from __future__ import annotations

from dhr.api.http import parse_etag
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import precondition_failed
from dhr.fhir.ids import check_id
from dhr.interactions.common import outcome_response
from dhr.interactions.criteria import match_one, parse_criteria
from dhr.interactions.source_writes import source_write
from dhr.store.repository import StaleVersion


def delete(ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    check_id(res_id)
    ingested = source_write(ctx, req, res_type, res_id, None)
    if ingested is not None:
        return ingested
    if_match = parse_etag(req.header("if-match"))
    try:
        stored = ctx.repo.delete(res_type, res_id, if_match)
    except StaleVersion as stale:
        now = "does not exist" if stale.current is None else f"is at version {stale.current}"
        raise precondition_failed(
            f"If-Match asked for version {if_match} but {res_type}/{res_id} {now}",
            "version-conflict",
        ) from None
    if stored is None:
        return outcome_response(200, f"{res_type}/{res_id} was not present; nothing was deleted")
    return outcome_response(
        200, f"Deleted {res_type}/{res_id} (version {stored.version_id})", {"ETag": stored.etag}
    )


def conditional_delete(ctx: RequestContext, req: FhirRequest, res_type: str) -> FhirResponse:
    match = match_one(ctx, res_type, parse_criteria(req.query), "Conditional delete")
    if match is None:
        return outcome_response(200, f"No {res_type} matched; nothing was deleted")
    return delete(ctx, req, res_type, match)
