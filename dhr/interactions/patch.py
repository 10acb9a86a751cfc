"""FHIR patch. https://hl7.org/fhir/R4/http.html#patch"""

from __future__ import annotations

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import not_supported


def patch(ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    raise not_supported("PATCH is not implemented yet")


def conditional_patch(ctx: RequestContext, req: FhirRequest, res_type: str) -> FhirResponse:
    raise not_supported("PATCH is not implemented yet")
