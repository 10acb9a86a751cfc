"""``Patient/[id]/$link`` and ``Patient/[id]/$unlink``: an administrator's link changes.

ARCHITECTURE.md "One patient, one compartment": a source's Patient record kept without an NHS
number (or linked wrongly) can be linked to a master Patient, or unlinked, by an authorised
administrator; every change is recorded (``patient_link_event``, who, when, why, before, after,
and a Provenance naming the administrator) and reversible (``$unlink`` moves back exactly the
data ``$link`` moved). These are DHR operations (FHIR R4 defines none for this;
https://hl7.org/fhir/R4/operations.html#extensibility).

POST a ``Parameters`` body: ``$link`` takes ``master`` (valueReference ``Patient/[master id]``)
or ``nhsNumber`` (valueString: the master of that NHS number), and ``reason`` (valueString);
``$unlink`` takes ``reason``. Who may: a principal with the Admin/Clinical Support role (R8008)
or a system principal that is not a source system, holding update rights on Patient. The answer
is a ``Parameters`` with ``record``, ``master`` (after) and ``previousMaster``.
"""

from __future__ import annotations

from typing import Any

from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.enforce import IngestState, forbidden
from dhr.errors import FhirError, bad_request
from dhr.fhir import jsonio
from dhr.fhir.ids import new_id
from dhr.fhir.instant import format_instant, now_micros
from dhr.record import linkage, provenance
from dhr.record.nhs_number import is_valid_nhs_number
from dhr.record.vocab import RECORD_ROLE_SYSTEM, ROLE_MASTER
from dhr.store import record_store

ADMIN_ROLES = frozenset({"R8008", "system"})


def link(ctx: RequestContext, req: FhirRequest, res_id: str) -> FhirResponse:
    params = _parameters(req)
    reason = _reason(params)
    master = _master(ctx, params)
    return _relink(ctx, res_id, master, "link", reason)


def unlink(ctx: RequestContext, req: FhirRequest, res_id: str) -> FhirResponse:
    return _relink(ctx, res_id, None, "unlink", _reason(_parameters(req)))


def _relink(
    ctx: RequestContext, record_id: str, master: str | None, action: str, reason: str
) -> FhirResponse:
    _authorise(ctx)
    row = record_store.link_rows(ctx.repo.conn, [record_id]).get(record_id)
    if row is None or ctx.repo.read_current("Patient", record_id) is None:
        raise FhirError(
            404,
            "not-found",
            f"Patient/{record_id} is not a source system's Patient record (only those link)",
            "not-a-source-record",
        )
    if master == record_id:
        raise bad_request("A record cannot be linked to itself", "link-to-self")
    now = now_micros()
    ctx.repo.ingest = IngestState(set())
    try:
        before, changes = linkage.relink(
            ctx, record_id, master, action, ctx.repo.principal.subject, reason, now
        )
        _provenance(ctx, changes, action, reason, now)
    finally:
        ctx.repo.ingest = None
    out: list[dict[str, Any]] = [
        {"name": "record", "valueReference": {"reference": f"Patient/{record_id}"}}
    ]
    if master is not None:
        out.append({"name": "master", "valueReference": {"reference": f"Patient/{master}"}})
    if before is not None:
        out.append({"name": "previousMaster", "valueReference": {"reference": f"Patient/{before}"}})
    return FhirResponse(
        200, None, {"resourceType": "Parameters", "parameter": out}, {}, "Parameters"
    )


def _authorise(ctx: RequestContext) -> None:
    principal = ctx.repo.principal
    if ctx.repo.source() is not None:
        raise forbidden("A source system cannot link or unlink patients")
    if not principal.open and not ADMIN_ROLES.intersection(principal.roles):
        raise forbidden(
            "Linking patients needs the Admin/Clinical Support role (R8008) or a system client"
        )
    ctx.repo.require("Patient", "u")


def _parameters(req: FhirRequest) -> dict[str, dict[str, Any]]:
    check_body_type(req)
    body = req.parsed_body if req.parsed_body is not None else jsonio.parse_object(req.body or b"")
    if body.get("resourceType") != "Parameters":
        raise bad_request("The body must be a Parameters resource", "parameters-required")
    out: dict[str, dict[str, Any]] = {}
    for part in body.get("parameter") or []:
        if isinstance(part, dict) and isinstance(part.get("name"), str):
            out[part["name"]] = part
    return out


def _reason(params: dict[str, dict[str, Any]]) -> str:
    reason = (params.get("reason") or {}).get("valueString")
    if not isinstance(reason, str) or not reason.strip():
        raise bad_request(
            "A link change needs a reason (parameter 'reason', valueString)", "link-reason"
        )
    return reason.strip()[:1000]


def _master(ctx: RequestContext, params: dict[str, dict[str, Any]]) -> str:
    ref = (params.get("master") or {}).get("valueReference") or {}
    nhs = (params.get("nhsNumber") or {}).get("valueString")
    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
        target = ref["reference"]
        if not target.startswith("Patient/") or target.count("/") != 1:
            raise bad_request("master must reference Patient/[id]", "bad-master")
        master_id = target.split("/", 1)[1]
        stored = ctx.repo.read_current("Patient", master_id)
        data = jsonio.loads(stored.data) if stored is not None and stored.data else None
        tags = (data or {}).get("meta", {}).get("tag", [])
        if {"system": RECORD_ROLE_SYSTEM, "code": ROLE_MASTER} not in tags:
            raise bad_request(f"Patient/{master_id} is not a master Patient", "not-a-master")
        return str(master_id)
    if isinstance(nhs, str):
        if not is_valid_nhs_number(nhs):
            raise FhirError(
                422, "value", f"{nhs[:20]!r} is not a valid NHS number", "invalid-nhs-number"
            )
        found = record_store.masters_of(ctx.repo.conn, [nhs]).get(nhs)
        if found is None:
            raise FhirError(404, "not-found", "No master Patient has that NHS number", "no-master")
        return found
    raise bad_request(
        "$link needs 'master' (valueReference) or 'nhsNumber' (valueString)", "link-target"
    )


def _provenance(
    ctx: RequestContext, changes: list[provenance.Change], action: str, reason: str, now: int
) -> None:
    """One Provenance of the link change, naming the administrator and the reason."""
    if not changes:
        return
    principal = ctx.repo.principal
    who: dict[str, Any] = (
        {"reference": principal.fhir_user}
        if principal.fhir_user
        else {"display": principal.subject}
    )
    body = {
        "resourceType": "Provenance",
        "target": [{"reference": f"{c.res_type}/{c.res_id}/_history/{c.version}"} for c in changes],
        "recorded": format_instant(now),
        "activity": {"text": f"patient {action}"},
        "reason": [{"text": reason}],
        "agent": [{"who": who}],
    }
    linkage.service(ctx).create_many([("Provenance", new_id(), body)])
