"""``Patient/[id]/$access-log`` over real HTTP: a patient sees who accessed their record, in
plain terms and without technical fields; nobody else's log; privacy officers see any.

https://hl7.org/fhir/R4/operations.html, https://hl7.org/fhir/R4/parameters.html; the events
are BALP AuditEvents (https://profiles.ihe.net/ITI/BALP/, https://hl7.org/fhir/R4/auditevent.html).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.model import Principal
from dhr.store import audit_store, db
from tests.conftest import LiveServer
from tests.dhr.audit.view_fixtures import (
    DOCTOR,
    Events,
    event,
    insert_events,
    organisation,
    patient_token,
    practitioner,
    privacy_officer,
)
from tests.helpers import TEST_ORG, BackendClient, TokenIssuer, assert_outcome, bearer

Access = dict[str, Any]


@pytest.fixture
def events(client: httpx.Client, engine: Engine, system_backend: BackendClient) -> Events:
    assert client.put("Practitioner/pr-ann", json=practitioner("pr-ann", "Ann", "Jones")).is_success
    assert client.post("Organization", json=organisation("B82005", "Riverside Surgery")).is_success
    return insert_events(engine, system_backend.client_id)


def http_for(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token))


def accesses(body: dict[str, Any]) -> list[Access]:
    """Each ``access`` parameter as {part name: value}."""
    assert body["resourceType"] == "Parameters"
    out = []
    for param in body.get("parameter", []):
        if param["name"] != "access":
            continue
        parts: Access = {}
        for part in param["part"]:
            (key,) = [k for k in part if k.startswith("value")]
            parts[part["name"]] = part[key]
        out.append(parts)
    return out


def log(http: httpx.Client, patient: str = "p1", query: str = "") -> list[Access]:
    response = http.get(f"Patient/{patient}/$access-log{query}")
    assert response.status_code == 200, response.text
    return [a for a in accesses(response.json()) if a["when"].startswith("2020")]


def test_patient_sees_their_log_in_plain_terms(
    server: LiveServer, issue_token: TokenIssuer, events: Events
) -> None:
    with http_for(server, patient_token(issue_token, "p1")) as http:
        response = http.get("Patient/p1/$access-log")
        assert response.status_code == 200, response.text
        entries = log(http)
    assert [a["when"][:10] for a in entries] == [
        "2020-05-10",
        "2020-04-10",
        "2020-03-10",
        "2020-02-10",
        "2020-01-10",
    ]
    glass, denied, created, searched, read = entries
    assert read == {
        "when": "2020-01-10T09:00:00.000000Z",
        "who": "Dr Ann Jones",
        "role": "Clinical Practitioner Access Role",
        "organisation": "Riverside Surgery",
        "data": "observations",
        "action": "looked at",
        "allowed": True,
        "purpose": "direct care",
        "breakGlass": False,
    }
    assert searched["action"] == "searched"
    assert searched["data"] == "conditions"
    assert created["who"] == "Test GP system"  # the Backend Services client's name
    assert created["role"] == "System (Backend Services client)"
    assert created["action"] == "created"
    assert created["data"] == "prescriptions"
    assert created["organisation"] == TEST_ORG  # no Organization names it: its ODS code
    assert denied["allowed"] is False
    assert glass["breakGlass"] is True
    assert glass["purpose"] == "emergency care"
    assert glass["data"] == "observations, conditions"


def test_no_technical_fields(server: LiveServer, issue_token: TokenIssuer, events: Events) -> None:
    with http_for(server, patient_token(issue_token, "p1")) as http:
        text = http.get("Patient/p1/$access-log").text
    body = json.loads(text)
    names = {p["name"] for a in body["parameter"] for p in a.get("part", [])}
    assert names <= {
        "when", "who", "role", "organisation", "data", "action", "allowed", "purpose",
        "breakGlass",
    }  # fmt: skip
    leaks = [
        *(r.event_id for r in events.by_name.values()),
        *(r.request_id for r in events.by_name.values()),
        DOCTOR.subject,
        str(DOCTOR.client_id),
        events.backend,
        "Practitioner/",
        "Observation/",
        "urn:",
        "http",
        "B82005",
    ]
    for leak in leaks:
        assert leak not in text, leak
    assert not re.search(r"[0-9a-f]{32}", text)  # no hashes, no uuids


def test_another_patients_log_is_404(
    server: LiveServer, issue_token: TokenIssuer, events: Events
) -> None:
    with http_for(server, patient_token(issue_token, "p1")) as http:
        assert_outcome(http.get("Patient/p2/$access-log"), 404, code="not-found")
    with http_for(server, issue_token("patient/*.rs", patient="p2")) as http:
        assert_outcome(http.get("Patient/p1/$access-log"), 404)
        assert [a["when"][:10] for a in log(http, "p2")] == ["2020-01-15"]


def test_privacy_officer_sees_any_log_and_clinicians_none(
    server: LiveServer, issue_token: TokenIssuer, events: Events
) -> None:
    with http_for(server, privacy_officer(issue_token)) as http:
        assert [a["when"][:10] for a in log(http, "p2")] == ["2020-01-15"]
        assert len(log(http, "p1")) == 5
    doctor = issue_token("user/*.cruds", roles=("R8000",), fhir_user="Practitioner/pr-ann")
    with http_for(server, doctor) as http:
        assert_outcome(http.get("Patient/p1/$access-log"), 403, code="forbidden")
    with http_for(server, patient_token(issue_token, "p1")) as http:
        assert_outcome(http.post("Patient/p1/$access-log", json={}), 405)


def test_pages_with_count(server: LiveServer, issue_token: TokenIssuer, events: Events) -> None:
    seen: list[str] = []
    pages = 0
    url: str | None = "Patient/p1/$access-log?_count=2"
    with http_for(server, privacy_officer(issue_token)) as http:
        while url is not None:
            body = http.get(url).json()
            page = accesses(body)
            assert len(page) <= 2
            seen += [a["when"][:10] for a in page]
            pages += 1
            url = next(
                (p["valueUri"] for p in body.get("parameter", []) if p["name"] == "next"), None
            )
    assert seen == ["2020-05-10", "2020-04-10", "2020-03-10", "2020-02-10", "2020-01-10"]
    assert pages == 3


def test_looking_at_the_log_shows_in_the_log(
    server: LiveServer, issue_token: TokenIssuer, events: Events
) -> None:
    with http_for(server, patient_token(issue_token, "p1")) as http:
        first = accesses(http.get("Patient/p1/$access-log").json())
        second = accesses(http.get("Patient/p1/$access-log").json())
    assert len(second) == len(first) + 1
    newest = second[0]
    # the log itself, and the staff and organisation records its names were read from
    assert newest["data"] == "records of who accessed your record, practitioners, organizations"
    assert newest["action"] == "looked at"
    assert newest["role"] == "Patient"
    assert newest["purpose"] == "your own request"  # the patient role's purpose of use


def test_patients_as_agents_and_empty_searches(
    server: LiveServer, client: httpx.Client, engine: Engine, issue_token: TokenIssuer
) -> None:
    jane = {"resourceType": "Patient", "id": "p1", "name": [{"given": ["Jane"], "family": "Smith"}]}
    assert client.put("Patient/p1", json=jane).is_success
    assert client.put("Patient/p9", json={**jane, "id": "p9", "name": [{"text": "Bob"}]}).is_success

    def as_patient(pid: str) -> Principal:
        return Principal(
            subject=f"user-{pid}", client_id="patient-app", fhir_user=f"Patient/{pid}",
            roles=("patient",), patient=pid,
        )  # fmt: skip

    records = [
        event(as_patient("p1"), when="2020-06-01T10:00:00", patient="p1", purpose=None),
        event(as_patient("p9"), when="2020-07-01T10:00:00", patient="p1", outcome="4",
              entities=["Observation/o1"], purpose=None),
        event(DOCTOR, when="2020-08-01T10:00:00", patient="p1", subtype="search-type",
              action="E", query="code=1234-5"),
    ]  # fmt: skip
    with db.unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, records)
    with http_for(server, patient_token(issue_token, "p1")) as http:
        searched, other, own = log(http)
        assert "Bob" not in http.get("Patient/p1/$access-log").text
    assert own["who"] == "Jane Smith"
    assert own["data"] == "personal details"
    assert own["purpose"] == "your own request"
    assert other["who"] == "another patient"
    assert other["allowed"] is False
    assert searched["data"] == "your record (a search that found nothing)"
    assert searched["action"] == "searched"
