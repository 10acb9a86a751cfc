"""Batch and transaction entries are each checked with the poster's token.

SMART App Launch 2.2, "Batches and Transactions"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#batches-and-transactions):
"batch and transaction requests should be validated based on the actual requests within them".
A forbidden entry fails on its own in a batch (https://hl7.org/fhir/R4/http.html#batch) and
fails the whole transaction, which then writes nothing (https://hl7.org/fhir/R4/http.html#trules).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.dhr.access.conftest import Connect, World, observation
from tests.helpers import assert_outcome, patient


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any], full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def _get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def _count(client: httpx.Client, res_type: str, **params: str) -> int:
    return int(client.get(res_type, params={**params, "_summary": "count"}).json()["total"])


def test_a_forbidden_batch_entry_fails_alone(connect: Connect, client: httpx.Client) -> None:
    writer = connect("system/Patient.cruds")
    obs = observation("Patient/nobody", "laboratory")
    obs.pop("performer")
    bundle = _bundle(
        "batch",
        _post(patient(name=[{"family": "Batched"}])),
        _post(obs),
        _get("Patient?family=Batched"),
        _get("Observation"),
    )
    response = writer.post("", json=bundle)
    assert response.status_code == 200, response.text
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert [s.split()[0] for s in statuses] == ["201", "403", "200", "403"]
    outcome = response.json()["entry"][1]["response"]["outcome"]
    assert outcome["issue"][0]["code"] == "forbidden"
    assert _count(client, "Patient", family="Batched") == 1
    assert _count(client, "Observation") == 0


def test_a_forbidden_transaction_entry_fails_the_whole_transaction(
    connect: Connect, client: httpx.Client
) -> None:
    writer = connect("system/Patient.cruds")
    obs = observation("urn:uuid:p1", "laboratory")
    obs.pop("performer")
    bundle = _bundle(
        "transaction",
        _post(patient(name=[{"family": "Atomic"}]), "urn:uuid:p1"),
        _post(obs),
    )
    body = assert_outcome(writer.post("", json=bundle), 403, code="forbidden")
    assert "Bundle.entry[1]" in body["issue"][0]["expression"]
    assert _count(client, "Patient", family="Atomic") == 0
    # The same transaction with the scope for both types goes through.
    both = connect("system/Patient.c system/Observation.c")
    assert both.post("", json=bundle).status_code == 200
    assert _count(client, "Patient", family="Atomic") == 1


def test_patient_scoped_transactions_stay_inside_the_compartment(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    alice = connect("patient/Observation.cruds patient/Patient.rs", patient=world.alice)
    own = observation(f"Patient/{world.alice}", "survey")
    own.pop("performer")
    other = observation(f"Patient/{world.bob}", "survey")
    other.pop("performer")
    bundle = _bundle("transaction", _post(own), _post(other))
    assert_outcome(alice.post("", json=bundle), 403, code="forbidden")
    assert _count(client, "Observation", category="survey") == 0
    ok = alice.post("", json=_bundle("transaction", _post(own)))
    assert ok.status_code == 200, ok.text
    # A transaction's reads see only the compartment too.
    reads = alice.post("", json=_bundle("transaction", _get(f"Observation/{world.bob_lab}")))
    assert_outcome(reads, 404)
