"""Shared set-up for consent enforcement seen through the HTTP API (tests/dhr/consent).

Every test here runs against the default-policy server (``policy_live_server``: a care
relationship is needed for direct care) and builds a small world over real HTTP: organisations
with ODS codes, Patients, Encounters, Observations and Consents written by Backend Services
clients of distinct organisations (so the data carries its originating controller,
ARCHITECTURE.md "Controllers"), plus national data opt-outs and break-glass declarations recorded
directly in the policy tables. Readers are user tokens minted by the server's own key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dhr.record.arrangement import Controller, load_default
from dhr.store import policy_store
from dhr.store.arrangement_store import record_arrangement
from dhr.store.db import unit_of_work
from tests.conftest import LiveServer, empty_tables
from tests.helpers import BackendClient, TokenIssuer, bearer, created_id

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
MH = {"system": ACT_CODE, "code": "MH"}

GP = "A81001"  # the patient's GP practice (in most rows, the reader's organisation)
HOSPITAL = "B82005"  # a hospital trust
ELSEWHERE = "C83003"  # an organisation with no part in the patient's care
REGISTRY = "Y01234"  # who records Patients, Encounters and Consents
WRITERS = (GP, HOSPITAL, ELSEWHERE, REGISTRY)
# Valid NHS numbers (mod-11 check digit), one per patient of a world.
NHS_NUMBERS = ("9434765919", "9434765927", "9434765935", "9434765943", "9434765951")


def reset(engine: Engine) -> None:
    """Empty the FHIR and policy tables; :func:`tests.conftest.empty_tables` also forgets what
    the server compiled from them (a fresh world must not meet the last world's Consents)."""
    empty_tables(engine)


@dataclass
class World:
    """A world written through the API: writers per organisation, readers by token."""

    server: LiveServer
    engine: Engine
    writers: dict[str, httpx.Client]
    orgs: dict[str, str] = field(default_factory=dict)  # ODS -> Organization id

    @property
    def issuer(self) -> TokenIssuer:
        return TokenIssuer(self.server.app.state.auth)

    def write(self, ods: str, body: dict[str, Any]) -> str:
        """Create ``body`` as organisation ``ods``; the new id."""
        got = self.writers[ods].post(body["resourceType"], json=body)
        assert got.status_code == 201, got.text
        return created_id(got)

    def organisation(self, ods: str) -> str:
        if ods not in self.orgs:
            self.orgs[ods] = self.write(
                REGISTRY,
                {"resourceType": "Organization", "identifier": [{"system": ODS, "value": ods}]},
            )
        return self.orgs[ods]

    def patient(self, nhs_number: str, registered_with: str | None = None) -> str:
        body: dict[str, Any] = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS, "value": nhs_number}],
            "name": [{"family": "Truth", "given": ["Tabitha"]}],
        }
        if registered_with is not None:
            ref = f"Organization/{self.organisation(registered_with)}"
            body["generalPractitioner"] = [{"reference": ref}]
        return self.write(REGISTRY, body)

    def encounter(self, pid: str, provider: str, status: str = "in-progress") -> str:
        return self.write(
            REGISTRY,
            {
                "resourceType": "Encounter",
                "status": status,
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "IMP",
                },
                "subject": {"reference": f"Patient/{pid}"},
                "serviceProvider": {"reference": f"Organization/{self.organisation(provider)}"},
            },
        )

    def observation(self, pid: str, writer: str, labels: tuple[dict[str, str], ...] = ()) -> str:
        body: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": f"Patient/{pid}"},
            "valueQuantity": {"value": 72, "unit": "/min"},
        }
        if labels:
            body["meta"] = {"security": [dict(label) for label in labels]}
        return self.write(writer, body)

    def consent(self, pid: str, provision: dict[str, Any], scope: str = "patient-privacy") -> str:
        return self.write(REGISTRY, consent_body(pid, provision, scope))

    # The writes below run as the CLIs run them, in write transactions (SQLite: BEGIN
    # IMMEDIATE, which waits for the lock). A deferred transaction that reads first and then
    # writes fails at once with "database is locked" when the live server's audit commits in
    # between, which made the truth-table rows that record an arrangement flaky under load.

    def let_research(self, ods: str) -> None:
        """Record a joint-controller arrangement in which ``ods`` also permits research and
        planning over its data (``dhr controllers set``)."""
        default = load_default()
        purposes = (*default.originating_default.purposes, "HRESCH", "POPHLTH")
        doc = default.model_copy(update={"controllers": (Controller(ods=ods, purposes=purposes),)})
        with unit_of_work(self.engine, write=True) as conn:
            record_arrangement(conn, doc, "test", time.time_ns() // 1000)

    def opt_out(self, nhs_number: str) -> None:
        with unit_of_work(self.engine, write=True) as conn:
            policy_store.record_opt_out(conn, nhs_number, "test", time.time_ns() // 1000)

    def declare_break_glass(self, subject: str, pid: str, organisation: str) -> None:
        now = time.time_ns() // 1000
        with unit_of_work(self.engine, write=True) as conn:
            policy_store.record_claim(
                conn,
                {
                    "kind": "break-glass",
                    "subject": subject,
                    "client_id": "test-app",
                    "organisation": organisation,
                    "patient_id": pid,
                    "purpose": "BTG",
                    "reason": "unconscious in A&E",
                    "started": now,
                    "expires": now + 3_600_000_000,
                },
            )

    def reader(
        self,
        organisation: str | None = GP,
        roles: tuple[str, ...] = ("R8000",),
        subject: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Client:
        """A user's client: ``user/*.rs`` for ``organisation``, with request ``headers``."""
        token = self.issuer(
            "user/*.rs",
            roles=roles,
            organisation=organisation,
            subject=subject or f"user-{uuid.uuid4().hex[:8]}",
        )
        return httpx.Client(
            base_url=self.server.base + "/",
            timeout=30,
            headers={**bearer(token), **(headers or {})},
        )


def consent_body(
    pid: str, provision: dict[str, Any], scope: str = "patient-privacy"
) -> dict[str, Any]:
    """An active FHIR R4 Consent of ``pid`` (https://hl7.org/fhir/R4/consent.html)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pid}"},
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def ods_actor(ods: str) -> dict[str, Any]:
    """A provision actor naming an organisation by its ODS code (consent.provisions)."""
    return {
        "role": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                    "code": "PRCP",
                }
            ]
        },
        "reference": {"identifier": {"system": ODS, "value": ods}},
    }


@pytest.fixture(scope="session")
def writers(policy_live_server: LiveServer, engine: Engine) -> dict[str, BackendClient]:
    """One Backend Services client per organisation, registered once per session."""
    return {
        ods: BackendClient(engine, policy_live_server.settings, "system/*.cruds", organisation=ods)
        for ods in WRITERS
    }


@pytest.fixture
def world(
    policy_live_server: LiveServer, engine: Engine, writers: dict[str, BackendClient]
) -> Iterator[World]:
    """An empty world on the default-policy server."""
    reset(engine)
    clients = {
        ods: httpx.Client(base_url=policy_live_server.base + "/", timeout=30, auth=auth)
        for ods, auth in writers.items()
    }
    try:
        yield World(policy_live_server, engine, clients)
    finally:
        for http in clients.values():
            http.close()
