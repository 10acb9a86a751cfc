"""``POST /fhir/$access-check``: the consent decision for a requester, patient, data and purpose,
with its reasons (issue 6 "Explanation"; the decision itself is :func:`consent.pdp.decide`).

The body is a ``Parameters`` resource: ``patient`` (valueReference ``Patient/[id]``, required),
``resourceType`` (valueCode, default Observation), ``purpose`` (valueCode, a v3 PurposeOfUse,
default TREAT), ``label`` (valueCoding, repeatable: security labels of the data), ``controller``
(valueString ODS, repeatable; default: the controllers tagged on the patient's record) and
``breakGlassReason`` (valueString). A privacy officer (R0001) or a system client may ask on behalf
of someone else with ``organization`` (valueString ODS), ``role`` (valueCode, repeatable) and
``practitioner`` (valueReference); anyone else is asked about as themselves.

Facts are read through the enforcing repository as the policy service (a narrow principal whose
scopes name the types it reads; consent does not hide the facts of a decision from the decision,
and audit sees every read): the patient's active Consents, the care relationship (the requester's
organisation is the patient's registered practice, or has an in-progress Encounter with them; or
the requester claimed one, ``Patient/[id]/$claim-relationship``), the national data opt-out
registry, a break-glass declaration of the requester in force for the patient, and the
controllers' purposes under the joint-controller arrangement in force. The answer is the one
enforcement gives: every search and read is restricted by the same rules
(:mod:`dhr.access.policy`). The answer is a ``Parameters`` with ``decision`` (permit or
deny), a ``reason`` per reason, an ``obligation`` per obligation and a ``vote`` (parts rule,
effect, reason) per rule family.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from consent.model import DataItem, Facts, Label, Requester
from consent.pdp import decide
from consent.provisions import parse_consent
from dhr.access.policy import POLICY_SERVICE_ROLE
from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.auth.model import Principal, Scope
from dhr.context import RequestContext
from dhr.errors import bad_request
from dhr.fhir import jsonio
from dhr.fhir.instant import now_micros
from dhr.record.arrangement import purposes_for
from dhr.record.attribution import controllers_of
from dhr.record.vocab import ODS_CODE_SYSTEM
from dhr.search.params import parse_search
from dhr.store import policy_store
from dhr.store.arrangement_store import current_arrangement
from dhr.store.policy_store import BREAK_GLASS, RELATIONSHIP

DELEGATES = frozenset({"R0001", "system"})
_MAX = 200


_FACT_TYPES = ("Patient", "Consent", "Encounter", "Organization")
_FACTS_READER = Principal(
    subject="dhr:policy-facts",
    scopes=tuple(Scope("system", t, frozenset("rs"), (), f"system/{t}.rs") for t in _FACT_TYPES),
    scope_text=" ".join(f"system/{t}.rs" for t in _FACT_TYPES),
    roles=("system", POLICY_SERVICE_ROLE),
)


def access_check(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    params = _parameters(req)
    patient_id = _patient(params)
    requester = _requester(ctx, params)
    reader = replace(ctx, repo=ctx.repo.for_principal(_FACTS_READER))
    patient = _read(reader, "Patient", patient_id)
    if patient is None:
        raise bad_request(f"Patient/{patient_id} is not known here", "unknown-patient")
    labels = frozenset(
        Label(str(c.get("system", "")), str(c.get("code", "")))
        for c in (p.get("valueCoding") for p in params.get("label", []))
        if isinstance(c, dict)
    )
    controllers = tuple(
        str(p["valueString"]) for p in params.get("controller", []) if p.get("valueString")
    ) or tuple(controllers_of(patient.get("meta")))
    item = DataItem(
        _one(params, "resourceType", "valueCode") or "Observation",
        patient_id,
        labels,
        controllers,
    )
    decision = decide(requester, item, _facts(reader, requester, patient, controllers))
    out: list[dict[str, Any]] = [{"name": "decision", "valueCode": decision.effect}]
    out += [{"name": "reason", "valueString": r} for r in decision.reasons]
    out += [{"name": "obligation", "valueCode": o} for o in decision.obligations]
    for vote in decision.votes:
        part = [
            {"name": "rule", "valueCode": vote.rule},
            {"name": "effect", "valueCode": vote.effect or "abstain"},
            {"name": "reason", "valueString": vote.reason},
        ]
        out.append({"name": "vote", "part": part})
    body = {"resourceType": "Parameters", "parameter": out}
    return FhirResponse(200, None, body, {}, "Parameters")


def _parameters(req: FhirRequest) -> dict[str, list[dict[str, Any]]]:
    check_body_type(req)
    body = req.parsed_body if req.parsed_body is not None else jsonio.parse_object(req.body or b"")
    if body.get("resourceType") != "Parameters":
        raise bad_request("$access-check takes a Parameters resource", "parameters-required")
    out: dict[str, list[dict[str, Any]]] = {}
    for part in body.get("parameter") or []:
        if isinstance(part, dict) and isinstance(part.get("name"), str):
            out.setdefault(part["name"], []).append(part)
    return out


def _one(params: dict[str, list[dict[str, Any]]], name: str, key: str) -> str | None:
    for part in params.get(name, []):
        value = part.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _patient(params: dict[str, list[dict[str, Any]]]) -> str:
    ref = next((p.get("valueReference") for p in params.get("patient", [])), None)
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str) or not target.startswith("Patient/") or target.count("/") != 1:
        raise bad_request(
            "$access-check needs 'patient' (valueReference Patient/[id])", "access-check-patient"
        )
    return target.split("/", 1)[1]


def _requester(ctx: RequestContext, params: dict[str, list[dict[str, Any]]]) -> Requester:
    principal = ctx.repo.principal
    delegate = principal.open or bool(DELEGATES.intersection(principal.roles))
    roles = principal.roles
    organisation = principal.organisation
    practitioner = principal.fhir_user
    if delegate:
        roles = (
            tuple(str(p["valueCode"]) for p in params.get("role", []) if p.get("valueCode"))
            or roles
        )
        organisation = _one(params, "organization", "valueString") or organisation
        ref = next((p.get("valueReference") for p in params.get("practitioner", [])), None)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            practitioner = ref["reference"]
    own = principal.patient if "patient" in principal.roles else None
    reason = _one(params, "breakGlassReason", "valueString")
    return Requester(
        principal.subject,
        roles,
        organisation,
        principal.client_id,
        practitioner,
        own,
        _one(params, "purpose", "valueCode") or "TREAT",
        reason,
    )


def _read(ctx: RequestContext, res_type: str, res_id: str) -> dict[str, Any] | None:
    stored = ctx.repo.read_current(res_type, res_id)
    if stored is None or stored.data is None:
        return None
    data = jsonio.loads(stored.data)
    return data if isinstance(data, dict) else None


def _search(ctx: RequestContext, res_type: str, query: list[tuple[str, str]]) -> list[Any]:
    sreq = parse_search(res_type, query, ctx.base, _MAX, strict=True)
    rows: list[Any] = ctx.repo.search(res_type, sreq.criteria, (), _MAX, None)
    return [jsonio.loads(row[3]) for row in rows if row[3] is not None]


def _ods_of(ctx: RequestContext, ref: Any) -> str | None:
    target = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(ref, dict) and isinstance(ref.get("identifier"), dict):
        ident = ref["identifier"]
        if ident.get("system") == ODS_CODE_SYSTEM:
            return str(ident.get("value"))
    if not isinstance(target, str) or not target.startswith("Organization/"):
        return None
    org = _read(ctx, "Organization", target.split("/", 1)[1])
    for ident in (org or {}).get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == ODS_CODE_SYSTEM:
            return str(ident.get("value"))
    return None


def _relationship(ctx: RequestContext, requester: Requester, patient: dict[str, Any]) -> str | None:
    pid = str(patient.get("id"))
    conn, now = ctx.repo.conn, now_micros()
    if requester.organisation is None:
        claimed = policy_store.in_force(conn, RELATIONSHIP, requester.subject, pid, now)
        return "self-claimed" if claimed else None
    registered = [patient.get("managingOrganization"), *(patient.get("generalPractitioner") or [])]
    if any(_ods_of(ctx, ref) == requester.organisation for ref in registered):
        return "registered"
    pid = str(patient.get("id"))
    for enc in _search(
        ctx, "Encounter", [("patient", f"Patient/{pid}"), ("status", "in-progress")]
    ):
        if _ods_of(ctx, enc.get("serviceProvider")) == requester.organisation:
            return "encounter"
    if policy_store.in_force(conn, RELATIONSHIP, requester.subject, pid, now):
        return "self-claimed"
    return None


def _facts(
    ctx: RequestContext, requester: Requester, patient: dict[str, Any], controllers: tuple[str, ...]
) -> Facts:
    pid = str(patient.get("id"))
    consents = [
        c
        for c in (
            parse_consent(r)
            for r in _search(ctx, "Consent", [("patient", f"Patient/{pid}"), ("status", "active")])
        )
        if c is not None
    ]
    _, arrangement = current_arrangement(ctx.repo.conn)
    national = ctx.settings.national_controller_ods
    conn = ctx.repo.conn
    relationship = _relationship(ctx, requester, patient)
    if relationship is None and ctx.settings.consent_implicit == "direct-care":
        relationship = "direct-care policy"
    return Facts(
        consents=tuple(consents),
        relationship=relationship,
        opted_out=policy_store.is_opted_out(conn, pid),
        controller_purposes={ods: purposes_for(arrangement, ods, national) for ods in controllers},
        today=dt.datetime.now(dt.UTC).date().isoformat(),
        national=national,
        glass_broken=policy_store.in_force(conn, BREAK_GLASS, requester.subject, pid, now_micros()),
    )
