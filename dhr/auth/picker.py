"""The patient picker's FHIR look-ups, made as the signed-in user through the normal API path.

SMART App Launch 2.2 standalone launch with ``launch/patient``
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#launch-context-arrives-with-your-access_token):
a clinician chooses the patient. The picker has no side door into the store: it searches and
reads through :func:`dhr.api.dispatch.handle` with a principal carrying the user's role ceiling,
so the policy layer and audit see these look-ups like any other request.
"""

from __future__ import annotations

import re
from typing import Any

from dhr.api import dispatch
from dhr.api.dispatch import Services
from dhr.api.message import FhirRequest, FhirResponse
from dhr.auth.model import Principal
from dhr.auth.pages import PatientRow
from dhr.auth.scopes import parse_scopes
from dhr.auth.users import User
from dhr.record.vocab import NHS_NUMBER_SYSTEM, RECORD_ROLE_SYSTEM, ROLE_SOURCE_RECORD

MAX_RESULTS = 20
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_HEADERS = {"accept": "application/fhir+json"}


def user_principal(user: User) -> Principal:
    """The principal of a signed-in user acting directly (the role's full ceiling, no client)."""
    r = user.role_info
    return Principal(
        subject=user.username,
        scopes=parse_scopes(r.ceiling),
        scope_text=r.ceiling,
        fhir_user=user.fhir_user,
        roles=(r.code,),
        organisation=user.organisation,
        extra={"purpose_of_use": r.purpose_of_use},
    )


def _run(services: Services, req: FhirRequest, principal: Principal) -> FhirResponse:
    return dispatch.handle(services, req, principal)


def _name(resource: dict[str, Any]) -> str:
    for name in resource.get("name") or []:
        if not isinstance(name, dict):
            continue
        if name.get("text"):
            return str(name["text"])
        given = " ".join(str(g) for g in name.get("given") or [])
        text = f"{given} {name.get('family') or ''}".strip()
        if text:
            return text
    return "(no name)"


def _nhs_number(resource: dict[str, Any]) -> str:
    for ident in resource.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM:
            return str(ident.get("value") or "")
    return ""


def row(resource: dict[str, Any]) -> PatientRow:
    return PatientRow(
        id=str(resource.get("id", "")),
        name=_name(resource),
        birth_date=str(resource.get("birthDate") or ""),
        gender=str(resource.get("gender") or ""),
        nhs_number=_nhs_number(resource),
    )


def search_query(text: str) -> list[tuple[str, str]]:
    """An NHS number (10 digits, spaces allowed) searches the identifier; anything else the name."""
    digits = text.replace(" ", "")
    if digits.isdigit() and len(digits) == 10:
        criterion = ("identifier", f"{NHS_NUMBER_SYSTEM}|{digits}")
    else:
        criterion = ("name", text.strip())
    # A person appears once: the master Patient, not each source system's linked record.
    not_linked = ("_tag:not", f"{RECORD_ROLE_SYSTEM}|{ROLE_SOURCE_RECORD}")
    return [criterion, not_linked, ("_count", str(MAX_RESULTS))]


def search_patients(services: Services, principal: Principal, text: str) -> list[PatientRow]:
    """Patients matching a name or NHS number that ``principal`` may see (at most 20)."""
    if len(text.strip()) < 2:
        return []
    req = FhirRequest("GET", "Patient", tuple(search_query(text)), dict(_HEADERS))
    resp = _run(services, req, principal)
    bundle = resp.body_json() if resp.status == 200 else None
    rows: list[PatientRow] = []
    for entry in (bundle or {}).get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == "Patient":
            rows.append(row(resource))
    return rows[:MAX_RESULTS]


def read(
    services: Services, principal: Principal, res_type: str, res_id: str
) -> dict[str, Any] | None:
    """The resource if ``principal`` may read it, else None (unknown, gone or not permitted)."""
    if not _ID.match(res_id):
        return None
    resp = _run(services, FhirRequest("GET", f"{res_type}/{res_id}", (), dict(_HEADERS)), principal)
    return resp.body_json() if resp.status == 200 else None


def encounter_belongs_to(encounter: dict[str, Any], patient_id: str) -> bool:
    """Is the Encounter's subject this patient (``Patient/<id>``, relative or absolute)?"""
    subject = encounter.get("subject")
    ref = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(ref, str):
        return False
    return ref == f"Patient/{patient_id}" or ref.endswith(f"/Patient/{patient_id}")
