"""Every interaction leaves its AuditEvents: one per interaction and patient (IHE BALP).

https://profiles.ihe.net/ITI/BALP/content.html and https://hl7.org/fhir/R4/auditevent.html:
read, vread, search (one event per patient in the results), create, update, patch, delete,
history, batch and transaction entries, ``$everything``, denials (403, and the 404 that hides a
resource outside a patient token's compartment, with the real reason) and failed
authentication (401). Real HTTP with real tokens; the events are read back from the database.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, text

from tests.conftest import LiveServer
from tests.helpers import (
    FHIR_JSON,
    BackendClient,
    TokenIssuer,
    assert_outcome,
    bearer,
    created_id,
    observation,
    patient,
)


def audit_events(engine: Engine) -> list[dict[str, Any]]:
    """Every audit row in insertion order: its columns plus the AuditEvent as ``event``."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT patient, agent, client_id, action, subtype, outcome, data "
                "FROM audit_event ORDER BY key"
            )
        ).mappings()
        out = []
        for row in rows:
            item = dict(row)
            item["event"] = orjson.loads(bytes(item.pop("data")))
            out.append(item)
    return out


def entities(event: dict[str, Any]) -> list[str]:
    refs = [e.get("what", {}).get("reference") for e in event["event"]["entity"]]
    return [r for r in refs if r]


def query_of(event: dict[str, Any]) -> str | None:
    for entity in event["event"]["entity"]:
        if "query" in entity:
            return base64.b64decode(entity["query"]).decode()
    return None


def since(engine: Engine, mark: int) -> list[dict[str, Any]]:
    return audit_events(engine)[mark:]


def mark(engine: Engine) -> int:
    return len(audit_events(engine))


@pytest.fixture
def people(client: httpx.Client) -> dict[str, str]:
    """Two patients with one Observation each, and a Practitioner (no patient's)."""
    out: dict[str, str] = {}
    for name in ("alice", "bob"):
        out[name] = created_id(client.post("Patient", json=patient(id=name)))
        obs = client.post("Observation", json=observation(f"Patient/{out[name]}"))
        out[f"{name}_obs"] = created_id(obs)
    out["doc"] = created_id(client.post("Practitioner", json={"resourceType": "Practitioner"}))
    return out


def test_read_and_vread_name_the_patient_client_and_data(
    client: httpx.Client, people: dict[str, str], engine: Engine, system_backend: BackendClient
) -> None:
    start = mark(engine)
    assert client.get(f"Observation/{people['alice_obs']}").status_code == 200
    assert client.get(f"Observation/{people['alice_obs']}/_history/1").status_code == 200
    read, vread = since(engine, start)
    for event, subtype in ((read, "read"), (vread, "vread")):
        assert (event["subtype"], event["action"], event["outcome"]) == (subtype, "R", "0")
        assert event["patient"] == people["alice"]
        assert event["client_id"] == system_backend.client_id
        assert f"Observation/{people['alice_obs']}" in entities(event)
        assert f"Patient/{people['alice']}" in entities(event)
        agents = event["event"]["agent"]
        assert any(
            a["who"].get("identifier", {}).get("value") == system_backend.client_id for a in agents
        )


def test_a_read_names_every_patient_the_current_version_belongs_to(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    """The read's patients are the current version's: one (the row's patient key names it),
    both when the Observation is of two patients (the key says several and the content is
    read), and the new one after the Observation moved."""
    oid = people["alice_obs"]
    two = observation(f"Patient/{people['alice']}", id=oid)
    two["performer"] = [{"reference": f"Patient/{people['bob']}"}]
    assert client.put(f"Observation/{oid}", json=two).status_code == 200
    start = mark(engine)
    assert client.get(f"Observation/{oid}").status_code == 200
    assert sorted(e["patient"] for e in since(engine, start)) == sorted(
        [people["alice"], people["bob"]]
    )
    moved = observation(f"Patient/{people['bob']}", id=oid)
    assert client.put(f"Observation/{oid}", json=moved).status_code == 200
    start = mark(engine)
    assert client.get(f"Observation/{oid}").status_code == 200
    assert [e["patient"] for e in since(engine, start)] == [people["bob"]]


def test_a_practitioner_read_is_one_event_without_a_patient(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    start = mark(engine)
    client.get(f"Practitioner/{people['doc']}")
    [event] = since(engine, start)
    assert event["patient"] is None
    assert entities(event) == [f"Practitioner/{people['doc']}"]


def test_a_search_is_one_event_per_patient_in_the_results_with_the_query(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    start = mark(engine)
    bundle = client.get("Observation", params={"code": "8867-4"}).json()
    assert bundle["total"] == 2
    events = since(engine, start)
    assert sorted(e["patient"] for e in events) == sorted([people["alice"], people["bob"]])
    for event in events:
        assert (event["subtype"], event["action"], event["outcome"]) == ("search-type", "E", "0")
        assert query_of(event) == "code=8867-4"
        own = "alice" if event["patient"] == people["alice"] else "bob"
        assert f"Observation/{people[own + '_obs']}" in entities(event)
        other = "bob" if own == "alice" else "alice"
        assert f"Observation/{people[other + '_obs']}" not in entities(event)


def test_an_empty_search_is_still_audited(client: httpx.Client, engine: Engine) -> None:
    start = mark(engine)
    client.get("Observation", params={"code": "nothing"})
    [event] = since(engine, start)
    assert (event["patient"], event["subtype"], query_of(event)) == (
        None,
        "search-type",
        "code=nothing",
    )


def test_writes_create_update_patch_delete(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    start = mark(engine)
    oid = created_id(client.post("Observation", json=observation(f"Patient/{people['bob']}")))
    body = observation(f"Patient/{people['bob']}", id=oid, status="amended")
    assert client.put(f"Observation/{oid}", json=body).status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "final"}]
    headers = {"Content-Type": "application/json-patch+json"}
    assert client.patch(f"Observation/{oid}", content=orjson.dumps(patch), headers=headers)
    assert client.delete(f"Observation/{oid}").status_code == 200
    got = [(e["subtype"], e["action"], e["outcome"], e["patient"]) for e in since(engine, start)]
    bob = people["bob"]
    assert got == [
        ("create", "C", "0", bob),
        ("update", "U", "0", bob),
        ("patch", "U", "0", bob),
        ("delete", "D", "0", bob),
    ]


def test_an_update_that_moves_data_names_both_patients(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    oid = people["alice_obs"]
    start = mark(engine)
    body = observation(f"Patient/{people['bob']}", id=oid)
    patch = [{"op": "replace", "path": "/subject/reference", "value": f"Patient/{people['bob']}"}]
    headers = {"Content-Type": "application/json-patch+json"}
    response = client.patch(f"Observation/{oid}", content=orjson.dumps(patch), headers=headers)
    assert response.status_code == 200, response.text
    del body
    events = since(engine, start)
    assert sorted(e["patient"] for e in events) == sorted([people["alice"], people["bob"]])


def test_history_is_audited(client: httpx.Client, people: dict[str, str], engine: Engine) -> None:
    start = mark(engine)
    client.get(f"Observation/{people['alice_obs']}/_history")
    client.get("Observation/_history")
    instance, *by_type = since(engine, start)
    assert (instance["subtype"], instance["action"], instance["patient"]) == (
        "history-instance",
        "R",
        people["alice"],
    )
    assert {e["subtype"] for e in by_type} == {"history-type"}
    assert sorted(e["patient"] for e in by_type) == sorted([people["alice"], people["bob"]])


def test_everything_names_the_patient_and_the_data(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    start = mark(engine)
    assert client.get(f"Patient/{people['alice']}/$everything").status_code == 200
    [event] = since(engine, start)
    assert (event["subtype"], event["action"], event["patient"]) == (
        "operation",
        "E",
        people["alice"],
    )
    assert f"Observation/{people['alice_obs']}" in entities(event)
    assert f"Observation/{people['bob_obs']}" not in entities(event)


def test_batch_entries_are_audited_one_by_one_failures_included(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{people['alice']}"}},
            {"request": {"method": "GET", "url": f"Observation/{people['bob_obs']}"}},
            {"request": {"method": "GET", "url": "Observation/unknown-id"}},
            {"request": {"method": "BREW", "url": "Patient"}},
        ],
    }
    start = mark(engine)
    response = client.post("", json=bundle)
    assert response.status_code == 200
    got = [(e["subtype"], e["outcome"], e["patient"]) for e in since(engine, start)]
    assert got == [
        ("read", "0", people["alice"]),
        ("read", "0", people["bob"]),
        ("read", "4", None),
        ("operation", "4", None),
    ]


def test_transaction_entries_are_audited_inside_the_transaction(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:carol",
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation("urn:uuid:carol"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": f"Observation/{people['bob_obs']}"}},
        ],
    }
    start = mark(engine)
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    carol, obs = (
        e["response"]["location"].split("/_history")[0].rsplit("/", 1)[1]
        for e in response.json()["entry"][:2]
    )
    events = since(engine, start)
    got = sorted((e["subtype"], e["action"], e["patient"]) for e in events)
    assert got == sorted(
        [("create", "C", carol), ("create", "C", carol), ("delete", "D", people["bob"])]
    )
    [obs_event] = [e for e in events if f"Observation/{obs}" in entities(e)]
    assert entities(obs_event) == [f"Patient/{carol}", f"Observation/{obs}"]


def test_a_failed_transaction_is_audited_as_a_failure_and_nothing_else(
    client: httpx.Client, people: dict[str, str], engine: Engine
) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": observation(f"Patient/{people['alice']}"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Observation", "status": "not-a-status"},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    start = mark(engine)
    assert client.post("", json=bundle).status_code == 400
    [event] = since(engine, start)
    assert (event["subtype"], event["outcome"]) == ("transaction", "4")
    assert "Transaction failed" in event["event"]["outcomeDesc"]


def test_a_forbidden_write_is_audited_with_the_reason(
    server: LiveServer, people: dict[str, str], engine: Engine, issue_token: TokenIssuer
) -> None:
    token = issue_token("patient/*.rs", patient=people["alice"], client_id="portal-app")
    start = mark(engine)
    response = httpx.post(
        f"{server.base}/Observation",
        json=observation(f"Patient/{people['alice']}"),
        headers={**bearer(token), "Content-Type": FHIR_JSON},
    )
    assert_outcome(response, 403)
    [event] = since(engine, start)
    assert (event["subtype"], event["action"], event["outcome"]) == ("create", "C", "4")
    assert event["client_id"] == "portal-app"
    assert event["event"]["outcomeDesc"] == response.json()["issue"][0]["diagnostics"]


def test_a_404_outside_the_compartment_is_audited_with_the_real_reason(
    server: LiveServer, people: dict[str, str], engine: Engine, issue_token: TokenIssuer
) -> None:
    token = issue_token("patient/*.rs", patient=people["alice"])
    start = mark(engine)
    hidden = httpx.get(f"{server.base}/Observation/{people['bob_obs']}", headers=bearer(token))
    absent = httpx.get(f"{server.base}/Observation/no-such-id", headers=bearer(token))
    assert_outcome(hidden, 404)
    assert_outcome(absent, 404)
    denied, unknown = since(engine, start)
    assert (denied["outcome"], denied["patient"]) == ("4", people["bob"])
    assert "outside what the token may read" in denied["event"]["outcomeDesc"]
    assert (unknown["outcome"], unknown["patient"]) == ("4", None)
    assert "outside" not in unknown["event"]["outcomeDesc"]


def test_a_failed_authentication_is_audited_with_the_presented_client(
    server: LiveServer, engine: Engine, issue_token: TokenIssuer
) -> None:
    token = issue_token("system/*.rs", client_id="forger-app")
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-4]}AAAA"
    start = mark(engine)
    assert_outcome(httpx.get(f"{server.base}/Patient", headers=bearer(forged)), 401)
    assert_outcome(httpx.get(f"{server.base}/Patient"), 401)
    assert_outcome(
        httpx.post(f"{server.base}/Patient", json=patient(), headers=bearer("garbage")), 401
    )
    events = since(engine, start)
    assert [(e["subtype"], e["outcome"], e["agent"]) for e in events] == [
        ("authentication-failure", "4", "unknown")
    ] * 3
    assert [e["client_id"] for e in events] == ["forger-app", None, None]


def test_the_public_capability_statement_is_not_audited(
    anonymous_client: httpx.Client, engine: Engine
) -> None:
    start = mark(engine)
    assert anonymous_client.get("metadata").status_code == 200
    assert since(engine, start) == []
