"""The BALP AuditEvent builder (dhr/audit/events.py).

IHE BALP RESTful activity events (https://profiles.ihe.net/ITI/BALP/content.html) over FHIR R4
AuditEvent (https://hl7.org/fhir/R4/auditevent.html): type rest, subtype the interaction, the
client, user and server agents, the patient, data, query and X-Request-Id entities, break-glass
as a security alert. Each event is validated against the R4B AuditEvent model.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from dhr.audit.events import build_event, canonical, columns_of, instant
from dhr.audit.model import AuditRecord
from dhr.auth.model import Principal
from tests.dhr.audit.audit_db import BASE, USER

BACKEND = Principal(subject="gp-system", client_id="gp-system", roles=("system",))


def make(**overrides: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "event_id": "e-1",
        "recorded": 1_764_095_520_123_456,
        "subtype": "search-type",
        "action": "E",
        "outcome": "0",
        "principal": USER,
        "request_id": "req-42",
        "patient": "pat-1",
        "entities": ["Observation/o1", "Patient/pat-1", "Observation/o1", "Condition/c1"],
        "query": "Observation?patient=pat-1&code=1234",
        "outcome_desc": None,
        "purpose": "TREAT",
        "break_glass": False,
        "server": BASE,
    }
    values.update(overrides)
    return build_event(**values)


def body(record: AuditRecord) -> dict[str, Any]:
    AuditEvent.model_validate_json(record.data)  # a valid R4 AuditEvent
    parsed: dict[str, Any] = orjson.loads(record.data)
    return parsed


def codes(codings: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(c["system"], c["code"]) for c in codings]


def test_same_inputs_give_the_same_canonical_bytes() -> None:
    first, second = make(), make()
    assert first == second
    assert first.data == canonical(orjson.loads(first.data))
    assert b'": ' not in first.data
    assert b", " not in first.data
    assert b"\n" not in first.data
    keys = list(orjson.loads(first.data))
    assert keys == sorted(keys)
    assert make(request_id="other").data != first.data


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"principal": BACKEND, "purpose": None},
        {"principal": Principal(subject="anonymous"), "purpose": None, "query": None},
        {"break_glass": True, "purpose": None, "outcome": "4", "outcome_desc": 'refusé "x"'},
        {"subtype": "login", "patient": None, "entities": [], "query": None},
        {"subtype": "claim-relationship", "entities": ["Encounter/ë1"], "request_id": "r\u2028"},
        {"principal": Principal(subject="u", client_id="c", roles=("R9999", "R8001"))},
    ],
)
def test_every_kind_of_event_is_canonical_json_the_same_as_its_parsed_form(
    overrides: dict[str, Any],
) -> None:
    """The bytes are put together from kept pieces, not serialised from a dict: each kind of
    event must still be exactly the canonical form of what it parses to (sorted keys, no
    whitespace), which is what the chain hashes."""
    data = make(**overrides).data
    assert data == canonical(body(make(**overrides)))


def test_canonical_sorts_keys_without_whitespace() -> None:
    assert canonical({"b": 1, "a": {"d": [1, 2], "c": "x"}}) == b'{"a":{"c":"x","d":[1,2]},"b":1}'


def test_the_record_columns_match_the_event() -> None:
    record = make()
    assert (record.event_id, record.patient, record.agent, record.client_id) == (
        "e-1",
        "pat-1",
        "user-1",
        "app-1",
    )
    assert (record.action, record.subtype, record.outcome, record.purpose) == (
        "E",
        "search-type",
        "0",
        "TREAT",
    )
    assert record.request_id == "req-42"
    assert record.break_glass is False
    assert hashlib.sha256(record.data).hexdigest()  # bytes, hashable as stored


def test_type_subtype_action_recorded_and_outcome_follow_balp() -> None:
    event = body(make(outcome="4", outcome_desc="denied: no consent"))
    assert event["resourceType"] == "AuditEvent"
    assert event["id"] == "e-1"
    assert (event["type"]["system"], event["type"]["code"]) == (
        "http://terminology.hl7.org/CodeSystem/audit-event-type",
        "rest",
    )
    assert codes(event["subtype"]) == [("http://hl7.org/fhir/restful-interaction", "search-type")]
    assert event["action"] == "E"
    assert event["recorded"] == "2025-11-25T18:32:00.123456Z"
    assert (event["outcome"], event["outcomeDesc"]) == ("4", "denied: no consent")
    assert "outcomeDesc" not in body(make())


def test_agents_are_the_client_the_user_and_the_server() -> None:
    client, user, server = body(make())["agent"]
    assert codes(client["type"]["coding"]) == [
        ("http://dicom.nema.org/resources/ontology/DCM", "110153")
    ]
    assert client["who"]["identifier"]["value"] == "app-1"
    assert client["requestor"] is False
    assert user["who"]["reference"] == "Practitioner/p1"
    assert user["who"]["identifier"]["value"] == "user-1"
    assert user["requestor"] is True
    assert codes(user["role"][0]["coding"]) == [("https://fhir.nhs.uk/Id/sds-role-code", "R8000")]
    assert codes(user["purposeOfUse"][0]["coding"]) == [
        ("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT")
    ]
    assert user["extension"][0]["valueReference"]["identifier"]["value"] == "A81001"
    assert codes(server["type"]["coding"]) == [
        ("http://dicom.nema.org/resources/ontology/DCM", "110152")
    ]
    assert server["network"] == {"address": BASE, "type": "5"}
    assert server["requestor"] is False
    source = body(make())["source"]
    assert source["observer"]["identifier"]["value"] == BASE


def test_a_backend_client_acting_for_itself_is_the_requestor() -> None:
    agents = body(make(principal=BACKEND))["agent"]
    assert len(agents) == 2
    assert agents[0]["who"]["identifier"]["value"] == "gp-system"
    assert agents[0]["requestor"] is True
    assert agents[0]["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"


def test_entities_are_the_patient_each_resource_once_the_query_and_the_request_id() -> None:
    patient, obs, cond, query, request = body(make())["entity"]
    assert patient["what"] == {"reference": "Patient/pat-1"}
    assert (patient["type"]["code"], patient["role"]["code"]) == ("1", "1")
    assert obs["what"] == {"reference": "Observation/o1"}
    assert cond["what"] == {"reference": "Condition/c1"}
    assert (obs["type"]["code"], obs["role"]["code"]) == ("2", "4")
    assert query["role"]["code"] == "24"
    assert base64.b64decode(query["query"]) == b"Observation?patient=pat-1&code=1234"
    assert request["type"]["code"] == "XrequestId"
    assert request["type"]["system"] == (
        "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
    )
    assert request["what"]["identifier"]["value"] == "req-42"


def test_an_event_without_a_patient_has_no_patient_entity() -> None:
    record = make(patient=None, entities=[], query=None, subtype="capabilities", action="R")
    assert record.patient is None
    entities = body(record)["entity"]
    assert [e["type"]["code"] for e in entities] == ["XrequestId"]


def test_break_glass_is_a_security_alert_with_purpose_btg() -> None:
    record = make(subtype="read", action="R", purpose=None, break_glass=True)
    event = body(record)
    assert ("http://dicom.nema.org/resources/ontology/DCM", "110113") in codes(event["subtype"])
    assert record.break_glass is True
    assert record.purpose == "BTG"
    assert [p["coding"][0]["code"] for p in event["purposeOfEvent"]] == ["BTG"]
    with_reason = body(make(purpose="ETREAT", break_glass=True))
    assert [p["coding"][0]["code"] for p in with_reason["purposeOfEvent"]] == ["ETREAT", "BTG"]


@pytest.mark.parametrize("subtype", ["login", "authentication-failure"])
def test_authentication_events_use_dicom_user_authentication(subtype: str) -> None:
    event = body(
        make(subtype=subtype, action="E", outcome="4", patient=None, entities=[], query=None)
    )
    assert codes([event["type"]]) == [("http://dicom.nema.org/resources/ontology/DCM", "110114")]
    assert ("https://dhr.nhs.example/fhir/CodeSystem/audit-event-subtype", subtype) in codes(
        event["subtype"]
    )


def test_an_unknown_role_is_kept_as_text() -> None:
    principal = Principal(subject="u", client_id="c", roles=("no-such-role",))
    user = body(make(principal=principal))["agent"][1]
    assert user["role"] == [{"text": "no-such-role"}]


def test_instant_keeps_microseconds_in_utc() -> None:
    assert instant(0) == "1970-01-01T00:00:00.000000Z"
    assert instant(1_000_001) == "1970-01-01T00:00:01.000001Z"


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"principal": BACKEND},
        {"principal": Principal(subject="anonymous")},
        {"break_glass": True, "purpose": None},
        {"break_glass": True, "purpose": "ETREAT"},
        {"subtype": "authentication-failure", "patient": None, "entities": [], "outcome": "4"},
        {"subtype": "$everything-custom", "purpose": None, "recorded": 0},
        {"recorded": 1_764_095_520_999_999},
    ],
)
def test_columns_of_reads_back_the_record_columns(overrides: dict[str, Any]) -> None:
    record = make(**overrides)
    expected = {k: v for k, v in vars(record).items() if k != "data"}
    assert columns_of(record.data) == expected
