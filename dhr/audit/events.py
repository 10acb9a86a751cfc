"""BALP-shaped AuditEvents: one per interaction and patient, as canonical JSON bytes.

IHE Basic Audit Log Patterns, RESTful activities (https://profiles.ihe.net/ITI/BALP/content.html,
https://profiles.ihe.net/ITI/BALP/StructureDefinition-IHE.BasicAudit.PatientRead.html and
siblings) over FHIR R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html):

- ``type`` = ``rest`` (audit-event-type); ``subtype`` = the restful-interaction code (``read``,
  ``search-type``...). A sign-in (``login``) or a failed authentication
  (``authentication-failure``) is a DICOM "User Authentication" (110114) event with subtype
  "Login" (110122) plus DHR's own code. R4 allows one ``type`` Coding, so break-glass adds the
  DICOM "Security Alert" (110113) to ``subtype`` and ``BTG`` to ``purposeOfEvent``.
- ``agent`` = the client (DICOM 110153 "Source Role ID", who.identifier = client_id), the user
  (v3 ParticipationType IRCP, who = fhirUser with identifier = subject, roles, requestor,
  purposeOfUse, organisation as an extension; left out when the subject is the client itself,
  as for a Backend Services token, in which case the client agent is the requestor) and the
  server (DICOM 110152 "Destination Role ID", network = the FHIR base, type 5 URI).
- ``source.observer`` = the server; ``source.type`` 4 "Application Server".
- ``entity`` = the patient (type 1 Person, role 1 Patient), one entity per data resource touched
  (type 2 System Object, role 4 Domain Resource; the patient's own reference is not repeated),
  the search query (role 24 Query, ``query`` = base64 of the query string) and the request id
  (BALP BasicAuditEntityType ``XrequestId``, what.identifier.value = the X-Request-Id).

The builder reads no clock and no randomness: the same inputs give the same bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson

from dhr.audit.model import Action, AuditRecord, Outcome
from dhr.auth import roles as rbac
from dhr.auth.model import Principal

EVENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DHR_SUBTYPE_SYSTEM = "https://dhr.nhs.example/fhir/CodeSystem/audit-event-subtype"
ACTION_SYSTEM = "http://hl7.org/fhir/audit-event-action"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_ENTITY_TYPE_SYSTEM = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
CLIENT_ID_SYSTEM = "https://dhr.nhs.example/Id/client-id"
SUBJECT_SYSTEM = "https://dhr.nhs.example/Id/subject"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ORGANISATION_EXTENSION = "https://dhr.nhs.example/fhir/StructureDefinition/audit-agent-organisation"
SERVER_NAME = "DHR"

RESTFUL_INTERACTIONS = frozenset(
    {
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "history-system",
        "create",
        "search-type",
        "search-system",
        "batch",
        "transaction",
        "operation",
        "capabilities",
    }
)
AUTHENTICATION_SUBTYPES = frozenset({"login", "authentication-failure"})
BREAK_GLASS = "BTG"

_REST = {"system": EVENT_TYPE_SYSTEM, "code": "rest", "display": "RESTful Operation"}
_USER_AUTHENTICATION = {"system": DCM, "code": "110114", "display": "User Authentication"}
_LOGIN = {"system": DCM, "code": "110122", "display": "Login"}
SECURITY_ALERT = {"system": DCM, "code": "110113", "display": "Security Alert"}
_PATIENT_ENTITY = {"system": ENTITY_TYPE_SYSTEM, "code": "1", "display": "Person"}
_OBJECT_ENTITY = {"system": ENTITY_TYPE_SYSTEM, "code": "2", "display": "System Object"}
_ROLE_PATIENT = {"system": OBJECT_ROLE_SYSTEM, "code": "1", "display": "Patient"}
_ROLE_DOMAIN = {"system": OBJECT_ROLE_SYSTEM, "code": "4", "display": "Domain Resource"}
_ROLE_QUERY = {"system": OBJECT_ROLE_SYSTEM, "code": "24", "display": "Query"}
_REQUEST_ID = {
    "system": BALP_ENTITY_TYPE_SYSTEM,
    "code": "XrequestId",
    "display": "transport specific unique identifier where http X-Request-Id is used",
}


def canonical(event: dict[str, Any]) -> bytes:
    """The canonical JSON of ``event``: keys sorted, no whitespace (the hashed bytes)."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def instant(recorded: int) -> str:
    """Microseconds since the epoch as a FHIR instant (UTC, six fractional digits)."""
    moment = datetime.fromtimestamp(recorded // 1_000_000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{recorded % 1_000_000:06d}Z"


def build_event(
    *,
    event_id: str,
    recorded: int,
    subtype: str,
    action: Action,
    outcome: Outcome,
    principal: Principal,
    request_id: str,
    patient: str | None,
    entities: Sequence[str],
    query: str | None,
    outcome_desc: str | None,
    purpose: str | None,
    break_glass: bool,
    server: str,
) -> AuditRecord:
    """One BALP AuditEvent about ``patient`` (a Patient id, or None) and its audit row."""
    if break_glass and purpose is None:
        purpose = BREAK_GLASS
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": _USER_AUTHENTICATION if subtype in AUTHENTICATION_SUBTYPES else _REST,
        "subtype": _subtypes(subtype, break_glass),
        "action": action,
        "recorded": instant(recorded),
        "outcome": outcome,
        "agent": _agents(principal, purpose, break_glass, server),
        "source": {
            "observer": _server_reference(server),
            "type": [{"system": SOURCE_TYPE_SYSTEM, "code": "4", "display": "Application Server"}],
        },
        "entity": _entities(patient, entities, query, request_id),
    }
    if outcome_desc:
        event["outcomeDesc"] = outcome_desc
    purposes = _purposes(purpose, break_glass)
    if purposes:
        event["purposeOfEvent"] = purposes
    return AuditRecord(
        event_id=event_id,
        recorded=recorded,
        patient=patient,
        agent=principal.subject,
        client_id=principal.client_id,
        action=action,
        subtype=subtype,
        outcome=outcome,
        purpose=purpose,
        break_glass=break_glass,
        request_id=request_id,
        data=canonical(event),
    )


def _subtypes(subtype: str, break_glass: bool) -> list[dict[str, str]]:
    if subtype in RESTFUL_INTERACTIONS:
        codings = [{"system": INTERACTION_SYSTEM, "code": subtype, "display": subtype}]
    elif subtype in AUTHENTICATION_SUBTYPES:
        codings = [_LOGIN, {"system": DHR_SUBTYPE_SYSTEM, "code": subtype}]
    else:
        codings = [{"system": DHR_SUBTYPE_SYSTEM, "code": subtype}]
    if break_glass:
        codings.append(SECURITY_ALERT)
    return codings


def _purposes(purpose: str | None, break_glass: bool) -> list[dict[str, Any]]:
    codes = [purpose] if purpose else []
    if break_glass and BREAK_GLASS not in codes:
        codes.append(BREAK_GLASS)
    return [{"coding": [{"system": PURPOSE_SYSTEM, "code": code}]} for code in codes]


def _server_reference(server: str) -> dict[str, Any]:
    return {"identifier": {"system": "urn:ietf:rfc:3986", "value": server}, "display": SERVER_NAME}


def _agents(
    principal: Principal, purpose: str | None, break_glass: bool, server: str
) -> list[dict[str, Any]]:
    purposes = _purposes(purpose, break_glass)
    has_user = principal.subject != principal.client_id or principal.fhir_user is not None
    client: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {
            "identifier": {"system": CLIENT_ID_SYSTEM, "value": principal.client_id or ""},
        },
        "requestor": not has_user,
    }
    if principal.client_id is None:
        client["who"] = {"display": "no client"}
    if not has_user and purposes:
        client["purposeOfUse"] = purposes
    agents = [client]
    if has_user:
        agents.append(_user_agent(principal, purposes))
    agents.append(
        {
            "type": {
                "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
            },
            "who": _server_reference(server),
            "requestor": False,
            "network": {"address": server, "type": "5"},
        }
    )
    return agents


def _user_agent(principal: Principal, purposes: list[dict[str, Any]]) -> dict[str, Any]:
    who: dict[str, Any] = {"identifier": {"system": SUBJECT_SYSTEM, "value": principal.subject}}
    if principal.fhir_user:
        who["reference"] = principal.fhir_user
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION_SYSTEM, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "who": who,
        "requestor": True,
    }
    if principal.roles:
        user["role"] = [_role(code) for code in principal.roles]
    if purposes:
        user["purposeOfUse"] = purposes
    if principal.organisation:
        user["extension"] = [
            {
                "url": ORGANISATION_EXTENSION,
                "valueReference": {
                    "identifier": {"system": ODS_SYSTEM, "value": principal.organisation}
                },
            }
        ]
    return user


@cache
def _role(code: str) -> dict[str, Any]:
    try:
        role = rbac.role(code)
    except rbac.UnknownRoleError:
        return {"text": code}
    return {
        "coding": [{"system": role.system, "code": role.code, "display": role.display}],
        "text": role.display,
    }


def _entities(
    patient: str | None, entities: Sequence[str], query: str | None, request_id: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    patient_ref = f"Patient/{patient}" if patient else None
    if patient_ref:
        out.append(
            {"what": {"reference": patient_ref}, "type": _PATIENT_ENTITY, "role": _ROLE_PATIENT}
        )
    seen = {patient_ref}
    for ref in entities:
        if ref in seen:
            continue
        seen.add(ref)
        out.append({"what": {"reference": ref}, "type": _OBJECT_ENTITY, "role": _ROLE_DOMAIN})
    if query is not None:
        out.append(
            {
                "type": _OBJECT_ENTITY,
                "role": _ROLE_QUERY,
                "query": base64.b64encode(query.encode()).decode("ascii"),
            }
        )
    out.append({"what": {"identifier": {"value": request_id}}, "type": _REQUEST_ID})
    return out


def columns_of(data: bytes) -> dict[str, Any]:
    """The ``audit_event`` search columns as :func:`build_event` derives them from the event.

    The columns are not hashed into the chain; ``dhr audit verify`` compares them with this, so
    an event hidden from a search by editing its columns (its patient, say) is found too.
    """
    event = orjson.loads(data)
    subtypes = event.get("subtype", [])
    codes = [
        c["code"] for c in subtypes if c.get("system") in (INTERACTION_SYSTEM, DHR_SUBTYPE_SYSTEM)
    ]
    purposes = [p["coding"][0]["code"] for p in event.get("purposeOfEvent", [])]
    client, *others = event.get("agent", [{}])
    users = [a for a in others if a.get("requestor")]
    who = (users[0] if users else client).get("who", {})
    patient = request_id = None
    for entity in event.get("entity", []):
        if entity.get("role") == _ROLE_PATIENT:
            patient = entity["what"]["reference"].removeprefix("Patient/")
        elif entity.get("type") == _REQUEST_ID:
            request_id = entity["what"]["identifier"]["value"]
    return {
        "event_id": event.get("id"),
        "recorded": _micros(event.get("recorded", "")),
        "patient": patient,
        "agent": who.get("identifier", {}).get("value"),
        "client_id": client.get("who", {}).get("identifier", {}).get("value"),
        "action": event.get("action"),
        "subtype": codes[0] if codes else None,
        "outcome": event.get("outcome"),
        "purpose": purposes[0] if purposes else None,
        "break_glass": SECURITY_ALERT in subtypes,
        "request_id": request_id,
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(text: str) -> int | None:
    """A FHIR instant as written by :func:`instant` back to microseconds (None if not one)."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return (moment - _EPOCH) // timedelta(microseconds=1)
