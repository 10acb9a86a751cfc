"""Single writes by a registered source system run as a one-entry ingest.

ARCHITECTURE.md "Source systems": a create, update or delete that a source sends outside a
Bundle is planned like a Bundle's entries (:mod:`dhr.record.ingest`): its id is the source's own,
mapped to the server's, and its patient references land on the master Patient.
"""

from __future__ import annotations

from typing import Any

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.interactions.bundle_entries import BundleEntry


def source_write(
    ctx: RequestContext,
    req: FhirRequest,
    res_type: str,
    res_id: str | None,
    body: dict[str, Any] | None,
) -> FhirResponse | None:
    """The response of this write as an ingest, or None when the principal is not a source
    (or an ingest is already running this write)."""
    # Imported here: the ingest runs transactions, whose entries run these interactions.
    from dhr.record import ingest

    if ingest.ingesting(ctx) is None:
        return None
    url = res_type if res_id is None else f"{res_type}/{res_id}"
    headers = {k: req.header(k) or "" for k in ("prefer", "if-match") if req.header(k)}
    entry = BundleEntry(0, req.method, url, None, body, headers, validated=True)
    entity = f"{req.method} {url} (request {ctx.request_id})"
    try:
        return ingest.ingest_entries(ctx, [entry], entity)[0]
    finally:
        ctx.audit.gather()  # one interaction: its AuditEvents name every patient touched
