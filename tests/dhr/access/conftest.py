"""Fixtures for the access-control tests: two patients' records, and HTTP clients that carry a
real token minted by the live server for any SMART scope string and launch patient.

The records are written by the ``system/*.cruds`` client in one transaction:

* ``alice`` and ``bob``, each with a laboratory and a vital-signs Observation (SMART's own
  granular-scope example: https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html);
* one Practitioner who performed all four Observations (outside every Patient compartment);
* Alice's laboratory result is ``derivedFrom`` Bob's (a reference out of her record, the path an
  ``_include`` or ``$everything`` could leak through).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import TokenIssuer, bearer

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LAB = f"{CATEGORY}|laboratory"
VITALS = f"{CATEGORY}|vital-signs"


@dataclass(frozen=True)
class World:
    alice: str
    bob: str
    alice_lab: str
    alice_vitals: str
    bob_lab: str
    bob_vitals: str
    practitioner: str


def observation(subject: str, category: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "performer": [{"reference": "urn:uuid:practitioner"}],
        "effectiveDateTime": "2021-03-04",
        "valueQuantity": {"value": 72, "unit": "/min"},
    }
    body.update(extra)
    return body


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


@pytest.fixture
def world(client: httpx.Client) -> World:
    entries = [
        _entry(
            "urn:uuid:practitioner", {"resourceType": "Practitioner", "name": [{"family": "Who"}]}
        ),
        _entry("urn:uuid:alice", {"resourceType": "Patient", "name": [{"family": "Alice"}]}),
        _entry("urn:uuid:bob", {"resourceType": "Patient", "name": [{"family": "Bob"}]}),
        _entry("urn:uuid:bob-lab", observation("urn:uuid:bob", "laboratory")),
        _entry("urn:uuid:bob-vitals", observation("urn:uuid:bob", "vital-signs")),
        _entry(
            "urn:uuid:alice-lab",
            observation(
                "urn:uuid:alice", "laboratory", derivedFrom=[{"reference": "urn:uuid:bob-lab"}]
            ),
        ),
        _entry("urn:uuid:alice-vitals", observation("urn:uuid:alice", "vital-signs")),
    ]
    response = client.post(
        "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert response.status_code == 200, response.text
    ids = [
        e["response"]["location"].split("/_history/")[0].rsplit("/", 1)[1]
        for e in response.json()["entry"]
    ]
    practitioner, alice, bob, bob_lab, bob_vitals, alice_lab, alice_vitals = ids
    return World(alice, bob, alice_lab, alice_vitals, bob_lab, bob_vitals, practitioner)


Connect = Callable[..., httpx.Client]


@pytest.fixture
def connect(server: LiveServer, issue_token: TokenIssuer) -> Iterator[Connect]:
    """``connect(scope, patient=None, ...)``: an HTTP client with a fresh token for ``scope``."""
    opened: list[httpx.Client] = []

    def make(scope: str, **claims: Any) -> httpx.Client:
        token = issue_token(scope, **claims)
        http = httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token))
        opened.append(http)
        return http

    yield make
    for http in opened:
        http.close()


def ids_of(bundle: dict[str, Any], mode: str | None = "match") -> set[str]:
    """``Type/id`` of a Bundle's entries (of one ``search.mode``; None: every entry)."""
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] != "OperationOutcome"
        and (mode is None or (e.get("search") or {}).get("mode") == mode)
    }
