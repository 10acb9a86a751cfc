"""Two registered source systems (an EMIS-like and a SystmOne-like practice) for ingest tests,
each a real Backend Services client with its own key, plus builders of what they send."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dhr.fhir.instant import now_micros
from dhr.record.sources import Source
from dhr.store import source_store
from tests.conftest import LiveServer
from tests.helpers import BackendClient

NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
CONTROLLER = "https://dhr.nhs.example/fhir/CodeSystem/data-controller"
ROLE = "https://dhr.nhs.example/fhir/CodeSystem/record-role"
REVIEW = "https://dhr.nhs.example/fhir/CodeSystem/review-flag"
EMIS_IDS = "https://emis.example/Id/record"
TPP_IDS = "https://tpp.example/Id/record"


def nhs_number(rng: random.Random | None = None) -> str:
    """A random NHS number that passes Modulus 11."""
    rng = rng or random.Random()
    while True:
        digits = [rng.randrange(10) for _ in range(9)]
        check = 11 - sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10 and any(digits):
            return "".join(map(str, digits)) + str(check)


def invalid_nhs_number() -> str:
    good = nhs_number()
    return good[:9] + str((int(good[9]) + 1) % 10)


@dataclass
class Feed:
    """A source system and an HTTP client carrying its token."""

    source: Source
    http: httpx.Client

    def send(self, entries: list[dict[str, Any]], kind: str = "transaction") -> httpx.Response:
        bundle = {"resourceType": "Bundle", "type": kind, "entry": entries}
        return self.http.post("", json=bundle)


@pytest.fixture(scope="session")
def source_backends(live_server: LiveServer, engine: Engine) -> dict[str, BackendClient]:
    return {
        name: BackendClient(engine, live_server.settings, scope="system/*.cruds")
        for name in ("emis", "tpp")
    }


@pytest.fixture
def feeds(
    server: LiveServer, engine: Engine, source_backends: dict[str, BackendClient]
) -> Iterator[dict[str, Feed]]:
    """``emis`` (A81001) and ``tpp`` (B82005) registered for this test (tables are emptied)."""
    specs = {
        "emis": Source("test-emis", "Castle Practice", "EMIS", "A81001", "", (EMIS_IDS,)),
        "tpp": Source("test-tpp", "River Surgery", "TPP", "B82005", "", (TPP_IDS,)),
    }
    out: dict[str, Feed] = {}
    clients: list[httpx.Client] = []
    with engine.begin() as conn:
        for name, spec in specs.items():
            backend = source_backends[name]
            source = Source(
                spec.source_id,
                spec.name,
                spec.supplier,
                spec.ods_code,
                backend.client_id,
                spec.identifier_systems,
            )
            source_store.insert_source(conn, source, now_micros())
            http = httpx.Client(base_url=server.base + "/", timeout=30, auth=backend)
            clients.append(http)
            out[name] = Feed(source, http)
    yield out
    for http in clients:
        http.close()


def patient_entry(
    local_id: str,
    nhs: str | None,
    family: str = "Jones",
    birth_date: str = "1970-01-01",
    gp: str | None = None,
    system: str = EMIS_IDS,
) -> dict[str, Any]:
    identifiers = [{"system": system, "value": local_id}]
    if nhs is not None:
        identifiers.insert(0, {"system": NHS, "value": nhs})
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": local_id,
        "identifier": identifiers,
        "name": [{"family": family, "given": ["Sam"]}],
        "gender": "female",
        "birthDate": birth_date,
    }
    if gp is not None:
        body["generalPractitioner"] = [{"reference": gp}]
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, system + local_id)}",
        "resource": body,
        "request": {"method": "POST", "url": "Patient"},
    }


def observation_entry(local_id: str, patient_ref: str, value: float = 120.0) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "Observation",
            "id": local_id,
            "status": "final",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "271649006"}]},
            "subject": {"reference": patient_ref},
            "valueQuantity": {"value": value, "unit": "mmHg"},
        },
        "request": {"method": "POST", "url": "Observation"},
    }


def organization_entry(local_id: str, ods: str) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {
            "resourceType": "Organization",
            "id": local_id,
            "identifier": [{"system": ODS, "value": ods}],
            "name": f"Practice {ods}",
        },
        "request": {"method": "POST", "url": "Organization"},
    }
