"""Placeholder until its owner lands it."""

from __future__ import annotations

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import not_supported


def import_ndjson(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    raise not_supported("not yet", 501)
