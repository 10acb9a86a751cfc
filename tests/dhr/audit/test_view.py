"""Reading the audit over real HTTP: AuditEvent read and search for privacy officers, refusals
for everybody else, 405 for every write, and the audit of reading the audit.

https://hl7.org/fhir/R4/auditevent.html (search parameters), https://hl7.org/fhir/R4/http.html
(read, search, 405), https://hl7.org/fhir/R4/search.html#date (prefixes and precision),
IHE BALP (https://profiles.ihe.net/ITI/BALP/).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.dhr.audit.view_fixtures import Events, insert_events, patient_token, privacy_officer
from tests.helpers import BackendClient, TokenIssuer, assert_outcome, bearer

IN_2020 = "date=ge2020&date=lt2021"


@pytest.fixture
def events(server: LiveServer, engine: Engine, system_backend: BackendClient) -> Events:
    return insert_events(engine, system_backend.client_id)


@pytest.fixture
def officer(server: LiveServer, issue_token: TokenIssuer) -> httpx.Client:
    headers = bearer(privacy_officer(issue_token))
    return httpx.Client(base_url=server.base + "/", timeout=30, headers=headers)


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def search(http: httpx.Client, query: str, status: int = 200) -> dict[str, Any]:
    response = http.get(f"AuditEvent?{query}")
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


# -- read ------------------------------------------------------------------------------------


def test_read_serves_the_stored_bytes(officer: httpx.Client, events: Events) -> None:
    record = events["glass"]
    response = officer.get(f"AuditEvent/{record.event_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.content == record.data  # the hashed canonical bytes, unchanged
    assert response.json()["purposeOfEvent"][-1]["coding"][0]["code"] == "BTG"


def test_read_of_an_unknown_event_is_404(officer: httpx.Client, events: Events) -> None:
    assert_outcome(officer.get("AuditEvent/no-such-event"), 404, code="not-found")


# -- search ----------------------------------------------------------------------------------


def test_search_by_patient_newest_first(officer: httpx.Client, events: Events) -> None:
    expected = events.ids("glass", "denied", "create", "search", "read")
    for patient in ("Patient/p1", "p1", f"{officer.base_url}Patient/p1"):
        body = search(officer, f"patient={patient}&{IN_2020}")
        assert body["type"] == "searchset"
        assert ids(body) == expected
        assert body["total"] == 5
    assert ids(search(officer, f"patient=p2&{IN_2020}")) == events.ids("other")
    assert ids(search(officer, f"patient=nobody&{IN_2020}")) == []


def test_search_by_agent_subject_or_backend_client(officer: httpx.Client, events: Events) -> None:
    doctor = events.ids("glass", "denied", "search", "other", "read")
    assert ids(search(officer, f"agent=dr-ann-jones&{IN_2020}")) == doctor
    assert ids(search(officer, f"agent={events.backend}&{IN_2020}")) == events.ids("create")
    # the app a user acted through is an agent too (BALP: the client agent)
    assert ids(search(officer, f"agent=ehr-app-7&{IN_2020}")) == doctor


def test_search_by_date_prefixes_and_precision(officer: httpx.Client, events: Events) -> None:
    def found(query: str) -> list[str]:
        return ids(search(officer, f"patient=p1&{query}"))

    assert found("date=ge2020-02&date=lt2020-04") == events.ids("create", "search")
    assert found("date=2020-03") == events.ids("create")
    assert found("date=eq2020-03-10") == events.ids("create")
    assert found("date=gt2020-04-10&date=lt2021") == events.ids("glass")
    assert found("date=le2020-01-10") == events.ids("read")
    assert found("date=gt2020-03-10T09:00:00Z&date=le2020-04-10T09:00:00Z") == events.ids("denied")
    empty = search(officer, "patient=p1&date=ge2020-05&date=lt2020-02")
    assert ids(empty) == []
    assert empty["total"] == 0
    assert_outcome(officer.get("AuditEvent?date=sa2020"), 400)
    assert_outcome(officer.get("AuditEvent?date=2020-13"), 400)


def test_search_by_action_outcome_purpose_subtype(officer: httpx.Client, events: Events) -> None:
    def found(query: str) -> list[str]:
        return ids(search(officer, f"{query}&{IN_2020}"))

    assert found("action=C") == events.ids("create")
    assert found("action=http://hl7.org/fhir/audit-event-action|C") == events.ids("create")
    assert found("outcome=4") == events.ids("denied")
    assert found("purpose=ETREAT") == events.ids("glass")
    assert found("subtype=search-type") == events.ids("search")
    assert found("subtype=http://hl7.org/fhir/restful-interaction|create") == events.ids("create")
    assert found("patient=p1&action=R&outcome=0&purpose=TREAT") == events.ids("read")
    assert_outcome(officer.get("AuditEvent?action=X"), 400)
    assert_outcome(officer.get("AuditEvent?outcome=3"), 400)
    assert_outcome(officer.get("AuditEvent?action=C&action=R"), 400)


def test_compartment_search(officer: httpx.Client, events: Events) -> None:
    body = officer.get(f"Patient/p2/AuditEvent?{IN_2020}").json()
    assert ids(body) == events.ids("other")
    assert body["link"][0]["url"].split("?")[0].endswith("/Patient/p2/AuditEvent")


def test_pages_follow_next_links_without_repeats(officer: httpx.Client, events: Events) -> None:
    url: str | None = f"AuditEvent?{IN_2020}&_count=2"
    seen: list[str] = []
    pages = 0
    while url is not None:
        body = officer.get(url).json()
        assert len(ids(body)) <= 2
        seen += ids(body)
        pages += 1
        url = next((x["url"] for x in body["link"] if x["relation"] == "next"), None)
    every = events.ids("glass", "denied", "create", "search", "other", "read")
    assert seen == every
    assert pages == 3
    assert search(officer, f"{IN_2020}&_sort=-date&_count=6")["total"] == 6
    assert_outcome(officer.get("AuditEvent?_sort=date"), 400)
    assert_outcome(officer.get("AuditEvent?_page=abc"), 400)


def test_unknown_parameters_are_reported_or_strict_400(
    officer: httpx.Client, events: Events
) -> None:
    body = search(officer, f"patient=p2&{IN_2020}&entity-name=x")
    assert ids(body) == events.ids("other")
    outcome = [e for e in body["entry"] if e["search"]["mode"] == "outcome"]
    assert "entity-name" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    assert "entity-name" not in body["link"][0]["url"]
    strict = officer.get("AuditEvent?entity-name=x", headers={"prefer": "handling=strict"})
    assert_outcome(strict, 400)


def test_post_search_takes_a_form(officer: httpx.Client, events: Events) -> None:
    response = officer.post(
        "AuditEvent/_search",
        content=f"patient=p2&{IN_2020}",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert ids(response.json()) == events.ids("other")


def test_system_clients_may_read_the_audit(client: httpx.Client, events: Events) -> None:
    assert ids(search(client, f"patient=p2&{IN_2020}")) == events.ids("other")


# -- who may not -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "roles"),
    [
        ("user/Observation.rs", ("R8000",)),  # no AuditEvent scope at all
        ("user/*.cruds", ("R8000",)),  # AuditEvent only by wildcard, and no privacy role
        ("user/AuditEvent.rs", ()),  # the scope without the privacy officer role
        ("user/AuditEvent.rs?patient=p1", ("R0001",)),  # restricted scopes are not honoured
    ],
)
def test_staff_without_the_privacy_role_get_403(
    server: LiveServer, issue_token: TokenIssuer, events: Events, scope: str, roles: tuple[str]
) -> None:
    headers = bearer(issue_token(scope, roles=roles))
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=headers) as http:
        assert_outcome(http.get("AuditEvent?patient=p1"), 403, code="forbidden")
        assert_outcome(http.get(f"AuditEvent/{events['read'].event_id}"), 403, code="forbidden")


def test_patients_get_403_on_auditevent(
    server: LiveServer, issue_token: TokenIssuer, events: Events
) -> None:
    headers = bearer(patient_token(issue_token, "p1"))
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=headers) as http:
        refused = assert_outcome(http.get("AuditEvent?patient=p1"), 403, code="forbidden")
        assert "$access-log" in refused["issue"][0]["diagnostics"]
        assert_outcome(http.get(f"AuditEvent/{events['read'].event_id}"), 403)
        assert_outcome(http.get("Patient/p1/AuditEvent"), 403)


def test_no_token_is_401(anonymous_client: httpx.Client) -> None:
    assert_outcome(anonymous_client.get("AuditEvent"), 401)


# -- never writable --------------------------------------------------------------------------


def test_writes_are_405(client: httpx.Client, officer: httpx.Client, events: Events) -> None:
    event_id = events["read"].event_id
    body = {"resourceType": "AuditEvent", "id": event_id}
    for http in (client, officer):
        assert_outcome(http.post("AuditEvent", json=body), 405, code="not-supported")
        assert_outcome(http.put(f"AuditEvent/{event_id}", json=body), 405)
        assert_outcome(http.patch(f"AuditEvent/{event_id}", json=[]), 405)
        assert_outcome(http.delete(f"AuditEvent/{event_id}"), 405)
        assert_outcome(http.delete("AuditEvent?patient=p1"), 405)
        assert_outcome(http.put("AuditEvent?patient=p1", json=body), 405)
        assert_outcome(http.get(f"AuditEvent/{event_id}/_history"), 405)
    assert client.get(f"AuditEvent/{event_id}").content == events["read"].data


def test_writes_in_batch_and_transaction_are_405(client: httpx.Client, events: Events) -> None:
    event_id = events["read"].event_id
    body = {"resourceType": "AuditEvent", "id": event_id}
    entries = [
        {"resource": body, "request": {"method": "POST", "url": "AuditEvent"}},
        {"resource": body, "request": {"method": "PUT", "url": f"AuditEvent/{event_id}"}},
        {"request": {"method": "DELETE", "url": f"AuditEvent/{event_id}"}},
        {"request": {"method": "GET", "url": f"AuditEvent/{event_id}"}},
    ]
    batch = client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    assert batch.status_code == 200, batch.text
    statuses = [e["response"]["status"][:3] for e in batch.json()["entry"]]
    assert statuses == ["405", "405", "405", "200"]
    transaction = {"resourceType": "Bundle", "type": "transaction", "entry": entries[2:3]}
    assert_outcome(client.post("", json=transaction), 405)
    assert client.get(f"AuditEvent/{event_id}").content == events["read"].data


# -- reading the audit is audited ------------------------------------------------------------


def test_reading_the_audit_is_audited(
    client: httpx.Client, officer: httpx.Client, events: Events
) -> None:
    record = events["other"]
    assert officer.get(f"AuditEvent/{record.event_id}").status_code == 200
    assert ids(search(officer, f"patient=p1&{IN_2020}&_count=2")) == events.ids("glass", "denied")
    mine = search(client, "agent=po-sam&_count=50")
    by_subtype: dict[str, list[dict[str, Any]]] = {}
    for entry in mine["entry"]:
        by_subtype.setdefault(entry["resource"]["subtype"][0]["code"], []).append(entry["resource"])
    (read,) = by_subtype["read"]
    assert read["action"] == "R"
    assert _entity_refs(read) >= {"Patient/p2", f"AuditEvent/{record.event_id}"}
    (searched,) = by_subtype["search-type"]
    assert _entity_refs(searched) >= {
        "Patient/p1",
        *(f"AuditEvent/{i}" for i in events.ids("glass", "denied")),
    }
    query = next(e["query"] for e in searched["entity"] if "query" in e)
    assert "patient=p1" in base64.b64decode(query).decode()


def _entity_refs(event: dict[str, Any]) -> set[str]:
    return {e["what"]["reference"] for e in event["entity"] if "reference" in e.get("what", {})}
