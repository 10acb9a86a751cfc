"""Audit events about two patients, inserted for the audit view tests, and the tokens that read
them (privacy officer, clinicians, patients), all minted by the live server.

The events are recorded in 2020, so the events the tests' own requests leave (reading the audit
is audited) never fall inside the date ranges the tests search.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine

from dhr.audit.events import build_event
from dhr.audit.model import Action, AuditRecord, Outcome
from dhr.auth.model import Principal
from dhr.fhir.instant import to_micros
from dhr.store import audit_store, db
from tests.helpers import TokenIssuer

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
DOCTOR = Principal(
    subject="dr-ann-jones",
    client_id="ehr-app-7",
    fhir_user="Practitioner/pr-ann",
    roles=("R8000",),
    organisation="B82005",
)


def micros(text: str) -> int:
    return to_micros(datetime.fromisoformat(text).replace(tzinfo=UTC))


@dataclass(frozen=True)
class Events:
    """The inserted records, by name."""

    by_name: dict[str, AuditRecord]
    backend: str  # the Backend Services client id of the "created" event

    def __getitem__(self, name: str) -> AuditRecord:
        return self.by_name[name]

    def ids(self, *names: str) -> list[str]:
        return [self.by_name[n].event_id for n in names]


def event(
    principal: Principal,
    *,
    when: str,
    patient: str | None,
    subtype: str = "read",
    action: Action = "R",
    outcome: Outcome = "0",
    purpose: str | None = "TREAT",
    entities: Sequence[str] = (),
    query: str | None = None,
    break_glass: bool = False,
) -> AuditRecord:
    return build_event(
        event_id=str(uuid.uuid4()),
        recorded=micros(when),
        subtype=subtype,
        action=action,
        outcome=outcome,
        principal=principal,
        request_id=f"req-{uuid.uuid4().hex}",
        patient=patient,
        entities=list(entities),
        query=query,
        outcome_desc="refused: outside the care relationship" if outcome != "0" else None,
        purpose=purpose,
        break_glass=break_glass,
        server="http://dhr.test/fhir",
    )


def insert_events(engine: Engine, backend_client: str) -> Events:
    """Six events: five about p1 (Jan..May 2020), one about p2 (Jan 2020)."""
    backend = Principal(subject=backend_client, client_id=backend_client, roles=("system",))
    by_name = {
        "read": event(
            DOCTOR, when="2020-01-10T09:00:00", patient="p1", entities=["Observation/o1"]
        ),
        "search": event(
            DOCTOR,
            when="2020-02-10T09:00:00",
            patient="p1",
            subtype="search-type",
            action="E",
            entities=["Condition/c1", "Condition/c2"],
            query="Condition?patient=p1",
        ),
        "create": event(
            backend,
            when="2020-03-10T09:00:00",
            patient="p1",
            subtype="create",
            action="C",
            entities=["MedicationRequest/m1"],
        ),
        "denied": event(
            DOCTOR,
            when="2020-04-10T09:00:00",
            patient="p1",
            outcome="4",
            entities=["Observation/o2"],
        ),
        "glass": event(
            DOCTOR,
            when="2020-05-10T09:00:00",
            patient="p1",
            purpose="ETREAT",
            break_glass=True,
            entities=["Observation/o3", "Condition/c3"],
        ),
        "other": event(
            DOCTOR, when="2020-01-15T09:00:00", patient="p2", entities=["Observation/o9"]
        ),
    }
    with db.unit_of_work(engine, write=True) as conn:
        # in the order they happened, as the server appends them (keys follow time)
        audit_store.insert_events(conn, sorted(by_name.values(), key=lambda r: r.recorded))
    return Events(by_name, backend_client)


def privacy_officer(issue: TokenIssuer) -> str:
    return issue(
        "user/AuditEvent.rs user/Patient.rs",
        subject="po-sam",
        roles=("R0001",),
        fhir_user="Practitioner/po-sam",
    )


def patient_token(issue: TokenIssuer, patient_id: str) -> str:
    return issue(
        "patient/*.rs",
        patient=patient_id,
        subject=f"user-{patient_id}",
        roles=("patient",),
        fhir_user=f"Patient/{patient_id}",
    )


def practitioner(pid: str, given: str, family: str) -> dict[str, object]:
    return {
        "resourceType": "Practitioner",
        "id": pid,
        "name": [{"use": "official", "prefix": ["Dr"], "given": [given], "family": family}],
    }


def organisation(ods: str, name: str) -> dict[str, object]:
    return {
        "resourceType": "Organization",
        "identifier": [{"system": ODS, "value": ods}],
        "name": name,
    }
