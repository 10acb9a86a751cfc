"""FHIR batch and transaction. https://hl7.org/fhir/R4/http.html#transaction

A ``batch`` or ``transaction`` Bundle posted to the base. A batch runs each entry on its own
(its own unit of work, through :func:`dhr.api.dispatch.handle`), so one failing entry leaves the
others alone and reports its error in ``entry.response.outcome``; references between batch
entries are not resolved. Every entry runs as the principal who posted the Bundle and is checked
on its own (SMART: "batch and transaction requests should be validated based on the actual
requests within them"): a forbidden entry fails alone in a batch and fails a whole transaction.
A transaction is all or nothing (:mod:`.bundle_transaction`). Both answer 200 with a
``batch-response`` / ``transaction-response`` Bundle whose entries follow the request's order.
A malformed Bundle is a 4xx OperationOutcome and nothing runs.

Audit (IHE BALP): each batch entry is its own interaction with its own AuditEvents (through
:func:`~dhr.api.dispatch.handle`); an entry refused before it runs (malformed) is audited with
its failure. A transaction's entries are audited inside the transaction
(:mod:`.bundle_transaction`).
"""

from __future__ import annotations

from typing import Any

from dhr.api.dispatch import Services, handle, set_bundle_processor
from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.audit.recorder import interaction, outcome_of
from dhr.audit.sink import AuditUnavailable
from dhr.auth.model import Principal
from dhr.errors import FhirError, bad_request
from dhr.fhir import jsonio
from dhr.fhir.ids import new_id
from dhr.fhir.validate import validate_resource
from dhr.interactions.bundle_entries import (
    BundleEntry,
    bundle_response,
    error_entry,
    parse_entry,
    response_entry,
)
from dhr.interactions.bundle_transaction import run_transaction
from dhr.interactions.bundle_validation import validate_aside

KINDS = ("batch", "transaction")


def process_bundle(services: Services, req: FhirRequest, principal: Principal) -> FhirResponse:
    """Run a batch or transaction Bundle posted to the FHIR base."""
    data = _load(req)
    kind = data.get("type")
    if kind not in KINDS:
        raise bad_request(
            f"A Bundle posted to the base must be a batch or a transaction, not {str(kind)[:40]!r}",
            "bundle-wrong-type",
            "Bundle.type",
        )
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list):
        raise bad_request("Bundle.entry must be a list", "bundle-entry-invalid", "Bundle.entry")
    limit = services.settings.max_bundle_entries
    if len(raw_entries) > limit:
        raise FhirError(
            413,
            "too-costly",
            f"The Bundle has {len(raw_entries)} entries; this server takes at most {limit}",
            "bundle-too-many-entries",
            ("Bundle.entry",),
        )
    # The shell of the Bundle is validated here; each entry's resource is validated by the
    # interaction that receives it.
    validate_resource({k: v for k, v in data.items() if k != "entry"}, "Bundle")
    base = services.settings.fhir_base
    prefer = req.header("prefer")
    if kind == "transaction":
        entries = [parse_entry(raw, i, base, prefer) for i, raw in enumerate(raw_entries)]
        for entry in entries:
            _refuse_nested(entry)
        entity = f"Bundle/{data['id']}" if isinstance(data.get("id"), str) else ""
        pending = validate_aside(services.settings, entries)
        bundle = run_transaction(services, entries, principal, entity, pending)
    else:
        bundle = {
            "resourceType": "Bundle",
            "id": new_id(),
            "type": "batch-response",
            "entry": [
                _batch_entry(services, principal, raw, i, base, prefer)
                for i, raw in enumerate(raw_entries)
            ],
        }
    return bundle_response(bundle)


def _load(req: FhirRequest) -> dict[str, Any]:
    if req.parsed_body is not None:
        data = req.parsed_body
    else:
        check_body_type(req)
        data = jsonio.parse_object(req.body or b"")
    if data.get("resourceType") != "Bundle":
        raise bad_request(
            "Only a batch or transaction Bundle can be posted to the base; this body is a "
            f"{str(data.get('resourceType'))[:40]!r}",
            "bundle-required",
            "resourceType",
        )
    return data


def _refuse_nested(entry: BundleEntry) -> None:
    if entry.is_nested_bundle():
        raise bad_request(
            f"{entry.where} posts to the base; a batch or transaction cannot nest another",
            "bundle-nested",
            f"{entry.where}.request.url",
        )


def _batch_entry(
    services: Services, principal: Principal, raw: Any, index: int, base: str, prefer: str | None
) -> dict[str, Any]:
    """Run one batch entry on its own; its failure becomes this entry's response."""
    try:
        entry = parse_entry(raw, index, base, prefer)
        _refuse_nested(entry)
    except FhirError as exc:
        return _refused_entry(services, principal, raw, exc)
    return response_entry(handle(services, entry.request(), principal), entry.method)


def _refused_entry(
    services: Services, principal: Principal, raw: Any, exc: FhirError
) -> dict[str, Any]:
    """An entry refused before it ran: audited with its failure, then answered."""
    request = raw.get("request") if isinstance(raw, dict) else None
    method = request.get("method") if isinstance(request, dict) else None
    subtype, action = interaction(None, method if isinstance(method, str) else "")
    recorder = services.recorder(principal)
    records = recorder.events(subtype, action, outcome_of(exc.status), outcome_desc=exc.diagnostics)
    try:
        services.sink.write(records)
    except AuditUnavailable as unavailable:
        return error_entry(unavailable)
    return error_entry(exc)


set_bundle_processor(process_bundle)
