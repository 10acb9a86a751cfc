"""``POST Patient/[id]/$break-glass``: a clinician declares emergency access to one patient's
record for a limited time (issue 6 "Break-glass"; the combining rule is docs/adr/0009).

A DHR operation (https://hl7.org/fhir/R4/operations.html) taking a ``Parameters`` resource
(https://hl7.org/fhir/R4/parameters.html): ``reason`` (valueString, required: why the record is
needed now), ``purpose`` (valueCode, an HL7 v3 PurposeOfUse: ``BTG`` break the glass, the
default, or ``ETREAT`` emergency treatment) and ``minutes`` (valueInteger, 1 to 240, default
60). It records an ``access_claim`` of kind ``break-glass`` for the token's subject, client and
organisation (:mod:`dhr.store.policy_store`) and answers ``Parameters`` with ``claim`` (its id),
``patient``, ``purpose``, ``reason`` and ``expires`` (valueInstant). While the declaration is in
force the consent decision opens that patient's record to that subject for direct care
(``GlassBroken``: break-glass overrides the consent, relationship, sensitivity and controller
denies), and every access it opens is audited as a security alert with purpose BTG. A purpose
of use stated per request (``X-DHR-Break-Glass-Reason``, :mod:`dhr.access.purpose`) lasts for
one request only; this declaration lasts, and the patient sees it in ``$access-log``.

Who may break glass: a user acting in a staff role of the national RBAC (code system
``https://fhir.nhs.uk/Id/sds-role-code``) whose purpose of use is direct care (R8000 Clinical
Practitioner, R8001 Nurse, R8003 Health Professional). Not patients, not admin staff (R8008),
not privacy officers (R0001), not researchers, and not system clients acting without a user:
an emergency declaration must name the accountable person. Anybody else gets 403 before the
patient is looked up. The patient is looked up with a narrow reader (Patient only, exempt from
consent, like ``$access-check``'s facts reader) because the caller usually cannot see the
record yet; an unknown or deleted patient is a 404.

The same parsing, checks and recording serve ``Patient/[id]/$claim-relationship``
(:mod:`dhr.operations.claim_relationship`), with its own :class:`ClaimTerms`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from consent.model import DIRECT_CARE
from dhr.access.policy import POLICY_SERVICE_ROLE
from dhr.access.purpose import MAX_REASON
from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.auth import roles as rbac
from dhr.auth.model import Principal, Scope
from dhr.context import RequestContext
from dhr.enforce import forbidden
from dhr.errors import bad_request, not_found
from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant, now_micros
from dhr.store import policy_store
from dhr.store.policy_store import BREAK_GLASS

NATIONAL_RBAC = "https://fhir.nhs.uk/Id/sds-role-code"
_MINUTE = 60_000_000  # microseconds

# Reads only Patient (the record's existence), exempt from consent like $access-check's facts
# reader; its read is audited with the request.
_PATIENT_READER = Principal(
    subject="dhr:claim-patient-check",
    scopes=(Scope("system", "Patient", frozenset("rs"), (), "system/Patient.rs"),),
    scope_text="system/Patient.rs",
    roles=("system", POLICY_SERVICE_ROLE),
)


@dataclass(frozen=True)
class ClaimTerms:
    """What one kind of claim takes: its operation name, purposes and lifetime in minutes."""

    operation: str
    kind: str  # access_claim.kind
    purposes: tuple[str, ...]  # the first is the default
    default_minutes: int
    max_minutes: int


BREAK_GLASS_TERMS = ClaimTerms("break-glass", BREAK_GLASS, ("BTG", "ETREAT"), 60, 240)


@dataclass(frozen=True)
class Claim:
    """A recorded claim, as the answer reports it."""

    key: int
    patient_id: str
    purpose: str
    reason: str
    expires: int


def break_glass(ctx: RequestContext, req: FhirRequest, patient_id: str) -> FhirResponse:
    """``POST Patient/[id]/$break-glass``."""
    claim = record(ctx, req, patient_id, BREAK_GLASS_TERMS)
    ctx.audit.break_glass = True
    ctx.audit.purpose = claim.purpose
    return answer(claim)


def may_claim(principal: Principal) -> str | None:
    """Why ``principal`` may not declare access to a patient (None: it may)."""
    if principal.open:
        return "Declaring access needs an authenticated staff user"
    if principal.subject == principal.client_id and principal.fhir_user is None:
        return "A system client cannot declare access: a person must be accountable for it"
    for code in principal.roles:
        try:
            found = rbac.role(code)
        except rbac.UnknownRoleError:
            continue
        direct_care = found.purpose_of_use in DIRECT_CARE
        if found.kind == "staff" and found.system == NATIONAL_RBAC and direct_care:
            return None
    return (
        "Only staff giving direct care (national RBAC roles R8000, R8001, R8003) may declare "
        "access to a patient's record"
    )


def record(ctx: RequestContext, req: FhirRequest, patient_id: str, terms: ClaimTerms) -> Claim:
    """Check the caller, the body and the patient, then record the claim (one row)."""
    principal = ctx.repo.principal
    refused = may_claim(principal)
    if refused is not None:
        raise forbidden(refused)
    params = _parameters(req, terms)
    reason = _reason(params, terms)
    purpose = _purpose(params, terms)
    minutes = _minutes(params, terms)
    _require_patient(ctx, patient_id)
    now = now_micros()
    expires = now + minutes * _MINUTE
    key = policy_store.record_claim(
        ctx.repo.conn,
        {
            "kind": terms.kind,
            "subject": principal.subject,
            "client_id": principal.client_id,
            "organisation": principal.organisation,
            "patient_id": patient_id,
            "purpose": purpose,
            "reason": reason,
            "started": now,
            "expires": expires,
        },
    )
    ctx.audit.touched("Patient", patient_id, patient_id)
    return Claim(key, patient_id, purpose, reason, expires)


def answer(claim: Claim) -> FhirResponse:
    """The ``Parameters`` answer naming the recorded claim."""
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "claim", "valueId": str(claim.key)},
            {"name": "patient", "valueReference": {"reference": f"Patient/{claim.patient_id}"}},
            {"name": "purpose", "valueCode": claim.purpose},
            {"name": "reason", "valueString": claim.reason},
            {"name": "expires", "valueInstant": format_instant(claim.expires)},
        ],
    }
    return FhirResponse(200, None, body, {}, "Parameters")


def _parameters(req: FhirRequest, terms: ClaimTerms) -> dict[str, dict[str, Any]]:
    check_body_type(req)
    body = req.parsed_body if req.parsed_body is not None else jsonio.parse_object(req.body or b"")
    if body.get("resourceType") != "Parameters":
        raise bad_request(f"${terms.operation} takes a Parameters resource", "parameters-required")
    known = {"reason", "minutes", *(("purpose",) if len(terms.purposes) > 1 else ())}
    out: dict[str, dict[str, Any]] = {}
    for part in body.get("parameter") or []:
        name = part.get("name") if isinstance(part, dict) else None
        if not isinstance(name, str) or name not in known:
            raise bad_request(
                f"${terms.operation} takes only the parameters {', '.join(sorted(known))}; "
                f"{str(name)[:40]!r} is not one of them",
                "unknown-parameter",
            )
        if name in out:
            raise bad_request(f"${terms.operation}: '{name}' is given twice", "repeated-parameter")
        out[name] = part
    return out


def _reason(params: dict[str, dict[str, Any]], terms: ClaimTerms) -> str:
    value = params.get("reason", {}).get("valueString")
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:
        raise bad_request(
            f"${terms.operation} needs a 'reason' (valueString): why you need this record",
            "claim-reason",
        )
    if len(reason) > MAX_REASON:
        raise bad_request(f"The reason is longer than {MAX_REASON} characters", "claim-reason")
    return reason


def _purpose(params: dict[str, dict[str, Any]], terms: ClaimTerms) -> str:
    if "purpose" not in params:
        return terms.purposes[0]
    code = params["purpose"].get("valueCode")
    if code not in terms.purposes:
        raise bad_request(
            f"${terms.operation}: 'purpose' (valueCode) is one of {', '.join(terms.purposes)}",
            "claim-purpose",
        )
    return str(code)


def _minutes(params: dict[str, dict[str, Any]], terms: ClaimTerms) -> int:
    if "minutes" not in params:
        return terms.default_minutes
    value = params["minutes"].get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"${terms.operation}: 'minutes' is a valueInteger", "claim-minutes")
    if not 1 <= value <= terms.max_minutes:
        raise bad_request(
            f"${terms.operation}: 'minutes' is from 1 to {terms.max_minutes}, not {value}",
            "claim-minutes",
        )
    return value


def _require_patient(ctx: RequestContext, patient_id: str) -> None:
    reader = replace(ctx, repo=ctx.repo.for_principal(_PATIENT_READER))
    stored = reader.repo.read_current("Patient", patient_id)
    if stored is None or stored.deleted or stored.data is None:
        raise not_found(f"Patient/{patient_id} is not known")
