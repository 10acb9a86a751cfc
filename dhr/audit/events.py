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
from functools import cache, lru_cache
from typing import Any, NamedTuple

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
    return f"{_second(recorded // 1_000_000)}.{recorded % 1_000_000:06d}Z"


@lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, tz=UTC):%Y-%m-%dT%H:%M:%S}"


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
    """One BALP AuditEvent about ``patient`` (a Patient id, or None) and its audit row.

    Every request builds one, so the canonical bytes are put together from pieces that are
    serialised once and kept (the agents of a requester, the subtype, the source...) in the
    order :func:`canonical` would sort the keys, rather than by serialising a new dict each
    time: the same bytes at a third of the cost (``tests/dhr/audit/test_events.py`` checks
    that they are canonical).
    """
    if break_glass and purpose is None:
        purpose = BREAK_GLASS
    who = _Who(
        principal.subject,
        principal.client_id,
        principal.fhir_user,
        principal.roles,
        principal.organisation,
    )
    parts = [
        b'{"action":',
        _json(action),
        b',"agent":',
        _agents_json(who, purpose, break_glass, server),
        b',"entity":',
        _entities_json(patient, entities, query, request_id),
        b',"id":',
        _json(event_id),
        b',"outcome":',
        _json(outcome),
    ]
    if outcome_desc:
        parts += (b',"outcomeDesc":', _json(outcome_desc))
    purposes = _purposes_json(purpose, break_glass)
    if purposes:
        parts += (b',"purposeOfEvent":', purposes)
    parts += (
        b',"recorded":"',
        instant(recorded).encode(),
        b'","resourceType":"AuditEvent","source":',
        _source_json(server),
        b',"subtype":',
        _subtypes_json(subtype, break_glass),
        b',"type":',
        _AUTHENTICATION_TYPE_JSON if subtype in AUTHENTICATION_SUBTYPES else _REST_JSON,
        b"}",
    )
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
        data=b"".join(parts),
    )


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


class _Who(NamedTuple):
    """What the agents of an event say about the requester (a cache key)."""

    subject: str
    client_id: str | None
    fhir_user: str | None
    roles: tuple[str, ...]
    organisation: str | None


_REST_JSON = _json(_REST)
_AUTHENTICATION_TYPE_JSON = _json(_USER_AUTHENTICATION)
_PATIENT_ENTITY_HEAD = b'{"role":' + _json(_ROLE_PATIENT) + b',"type":' + _json(_PATIENT_ENTITY)
_DATA_ENTITY_HEAD = b'{"role":' + _json(_ROLE_DOMAIN) + b',"type":' + _json(_OBJECT_ENTITY)
_QUERY_ENTITY_TAIL = b',"role":' + _json(_ROLE_QUERY) + b',"type":' + _json(_OBJECT_ENTITY) + b"}"
_REQUEST_ENTITY_HEAD = b'{"type":' + _json(_REQUEST_ID) + b',"what":{"identifier":{"value":'


@lru_cache(maxsize=64)
def _subtypes_json(subtype: str, break_glass: bool) -> bytes:
    if subtype in RESTFUL_INTERACTIONS:
        codings = [{"system": INTERACTION_SYSTEM, "code": subtype, "display": subtype}]
    elif subtype in AUTHENTICATION_SUBTYPES:
        codings = [_LOGIN, {"system": DHR_SUBTYPE_SYSTEM, "code": subtype}]
    else:
        codings = [{"system": DHR_SUBTYPE_SYSTEM, "code": subtype}]
    if break_glass:
        codings.append(SECURITY_ALERT)
    return _json(codings)


def _purposes(purpose: str | None, break_glass: bool) -> list[dict[str, Any]]:
    codes = [purpose] if purpose else []
    if break_glass and BREAK_GLASS not in codes:
        codes.append(BREAK_GLASS)
    return [{"coding": [{"system": PURPOSE_SYSTEM, "code": code}]} for code in codes]


@lru_cache(maxsize=64)
def _purposes_json(purpose: str | None, break_glass: bool) -> bytes:
    """The purposeOfEvent array, or nothing when there is no purpose."""
    purposes = _purposes(purpose, break_glass)
    return _json(purposes) if purposes else b""


def _server_reference(server: str) -> dict[str, Any]:
    return {"identifier": {"system": "urn:ietf:rfc:3986", "value": server}, "display": SERVER_NAME}


@lru_cache(maxsize=8)
def _source_json(server: str) -> bytes:
    return _json(
        {
            "observer": _server_reference(server),
            "type": [{"system": SOURCE_TYPE_SYSTEM, "code": "4", "display": "Application Server"}],
        }
    )


@lru_cache(maxsize=4096)
def _agents_json(who: _Who, purpose: str | None, break_glass: bool, server: str) -> bytes:
    return _json(_agents(who, purpose, break_glass, server))


def _agents(who: _Who, purpose: str | None, break_glass: bool, server: str) -> list[dict[str, Any]]:
    purposes = _purposes(purpose, break_glass)
    has_user = who.subject != who.client_id or who.fhir_user is not None
    client: dict[str, Any] = {
        "type": {"coding": [{"system": DCM, "code": "110153", "display": "Source Role ID"}]},
        "who": {
            "identifier": {"system": CLIENT_ID_SYSTEM, "value": who.client_id or ""},
        },
        "requestor": not has_user,
    }
    if who.client_id is None:
        client["who"] = {"display": "no client"}
    if not has_user and purposes:
        client["purposeOfUse"] = purposes
    agents = [client]
    if has_user:
        agents.append(_user_agent(who, purposes))
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


def _user_agent(who: _Who, purposes: list[dict[str, Any]]) -> dict[str, Any]:
    identity: dict[str, Any] = {"identifier": {"system": SUBJECT_SYSTEM, "value": who.subject}}
    if who.fhir_user:
        identity["reference"] = who.fhir_user
    user: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION_SYSTEM, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "who": identity,
        "requestor": True,
    }
    if who.roles:
        user["role"] = [_role(code) for code in who.roles]
    if purposes:
        user["purposeOfUse"] = purposes
    if who.organisation:
        user["extension"] = [
            {
                "url": ORGANISATION_EXTENSION,
                "valueReference": {"identifier": {"system": ODS_SYSTEM, "value": who.organisation}},
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


def _entities_json(
    patient: str | None, entities: Sequence[str], query: str | None, request_id: str
) -> bytes:
    """The patient (role Patient), each data resource once (role Domain Resource), the query
    and the request id, as a canonical JSON array."""
    out: list[bytes] = []
    patient_ref = f"Patient/{patient}" if patient else None
    if patient_ref:
        out.append(_PATIENT_ENTITY_HEAD + b',"what":{"reference":' + _json(patient_ref) + b"}}")
    seen = {patient_ref}
    for ref in entities:
        if ref in seen:
            continue
        seen.add(ref)
        out.append(_DATA_ENTITY_HEAD + b',"what":{"reference":' + _json(ref) + b"}}")
    if query is not None:
        encoded = base64.b64encode(query.encode()).decode("ascii")
        out.append(b'{"query":' + _json(encoded) + _QUERY_ENTITY_TAIL)
    out.append(_REQUEST_ENTITY_HEAD + _json(request_id) + b"}}}")
    return b"[" + b",".join(out) + b"]"


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
