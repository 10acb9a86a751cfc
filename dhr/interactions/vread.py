"""FHIR vread interaction. https://hl7.org/fhir/R4/http.html#vread"""

from __future__ import annotations

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import gone, not_found
from dhr.fhir.ids import parse_version_id
from dhr.interactions.common import read_response


def vread(
    ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str, vid: str
) -> FhirResponse:
    version = parse_version_id(vid)
    stored = ctx.repo.read_version(res_type, res_id, version) if version is not None else None
    if stored is None:
        raise not_found(f"{res_type}/{res_id} has no version {vid[:20]!r}")
    if stored.deleted:
        raise gone(f"Version {version} of {res_type}/{res_id} is its deletion")
    return read_response(req, ctx, stored)
