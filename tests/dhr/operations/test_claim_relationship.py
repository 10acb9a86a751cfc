"""``POST Patient/[id]/$claim-relationship`` (dhr.operations.claim_relationship), over real HTTP
with real tokens against the default-policy server: a clinician may say they care for a patient
registered elsewhere; the record then opens to them for direct care, the claim is flagged for
review (its AuditEvent's subtype, ``$access-check``'s obligation) and lapses; it is a care
relationship, not break-glass, so the patient's own refusal still holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.dhr.operations.test_break_glass import (
    SECURITY_ALERT,
    Record,
    access_entries,
    as_the_patient,
    audit_events,
    declare,
    expire_claims,
    parameter,
    registered_patient,
    subtype_codes,
    user_client,
)
from tests.helpers import assert_outcome, refusal_consent

CLAIM = "claim-relationship"


@pytest.fixture
def record(policy_client: httpx.Client) -> Record:
    return registered_patient(policy_client)


@pytest.fixture
def clinician(policy_server: LiveServer) -> Iterator[httpx.Client]:
    """A Nurse of an organisation the record does not show caring for the patient."""
    with user_client(policy_server, subject="nurse-visiting", roles=("R8001",)) as http:
        yield http


def access_check(http: httpx.Client, patient: str) -> dict[str, Any]:
    asked = http.post(
        "$access-check",
        json={
            "resourceType": "Parameters",
            "parameter": [
                {"name": "patient", "valueReference": {"reference": f"Patient/{patient}"}}
            ],
        },
    )
    assert asked.status_code == 200, asked.text
    return dict(asked.json())


def values(body: dict[str, Any], name: str) -> list[Any]:
    return [
        next(v for k, v in p.items() if k.startswith("value"))
        for p in body["parameter"]
        if p["name"] == name
    ]


def test_a_claimed_relationship_opens_the_record_for_direct_care_until_it_lapses(
    policy_server: LiveServer, engine: Engine, record: Record, clinician: httpx.Client
) -> None:
    obs = f"Observation/{record.observation}"
    assert_outcome(clinician.get(obs), 404)

    claimed = declare(clinician, record.patient, CLAIM, reason="district nurse home visit")
    assert claimed.status_code == 200, claimed.text
    assert parameter(claimed.json(), "purpose") == "TREAT"
    assert parameter(claimed.json(), "reason") == "district nurse home visit"

    assert clinician.get(obs).status_code == 200
    found = clinician.get(f"Observation?patient=Patient/{record.patient}").json()
    assert [e["resource"]["id"] for e in found["entry"]] == [record.observation]
    with user_client(policy_server, subject="nurse-other", roles=("R8001",)) as other:
        assert_outcome(other.get(obs), 404)

    expire_claims(engine, "nurse-visiting")
    assert_outcome(clinician.get(obs), 404)


def test_the_claim_is_flagged_for_review_not_a_break_glass(
    policy_client: httpx.Client, record: Record, clinician: httpx.Client
) -> None:
    assert declare(clinician, record.patient, CLAIM, reason="covering ward").status_code == 200
    assert clinician.get(f"Observation/{record.observation}").status_code == 200

    [event] = audit_events(policy_client, f"subtype={CLAIM}")
    assert CLAIM in subtype_codes(event)
    assert SECURITY_ALERT not in subtype_codes(event)
    assert {"reference": f"Patient/{record.patient}"} in [e["what"] for e in event["entity"]]
    reads = audit_events(policy_client, f"patient={record.patient}&agent=nurse-visiting")
    assert all(SECURITY_ALERT not in subtype_codes(e) for e in reads)

    answer = access_check(clinician, record.patient)
    assert values(answer, "decision") == ["permit"]
    assert "flag-for-review" in values(answer, "obligation")
    assert any("claimed" in r for r in values(answer, "reason"))


def test_a_claimed_relationship_does_not_override_the_patients_refusal(
    policy_client: httpx.Client, record: Record, clinician: httpx.Client
) -> None:
    refusal = refusal_consent(record.patient)
    assert policy_client.post("Consent", json=refusal).status_code == 201
    assert declare(clinician, record.patient, CLAIM, reason="covering").status_code == 200
    assert_outcome(clinician.get(f"Observation/{record.observation}"), 404)
    assert values(access_check(clinician, record.patient), "decision") == ["deny"]


def test_the_patient_sees_who_claimed_to_care_for_them(
    policy_server: LiveServer, record: Record, clinician: httpx.Client
) -> None:
    assert declare(clinician, record.patient, CLAIM, reason="home visit").status_code == 200
    with as_the_patient(policy_server, record.patient) as me:
        log = me.get(f"Patient/{record.patient}/$access-log").json()
    entries = access_entries(log)
    [entry] = [e for e in entries if e["role"] != "System (Backend Services client)"]
    assert entry["action"] == "said they are caring for you (to be checked)"
    assert entry["reason"] == "home visit"
    assert entry["role"] == "Nurse Access Role"
    assert entry["breakGlass"] is False


@pytest.mark.parametrize(
    "values_",
    [{}, {"reason": "x", "minutes": 1441}, {"reason": "x", "purpose": "BTG"}],
    ids=["no-reason", "over-a-day", "no-purpose-parameter"],
)
def test_bad_parameters_are_400(
    record: Record, clinician: httpx.Client, values_: dict[str, Any]
) -> None:
    assert_outcome(declare(clinician, record.patient, CLAIM, **values_), 400, code="invalid")


def test_a_patient_may_not_claim_a_relationship(policy_server: LiveServer, record: Record) -> None:
    with as_the_patient(policy_server, record.patient) as me:
        assert_outcome(declare(me, record.patient, CLAIM, reason="me"), 403, code="forbidden")


def test_an_unknown_patient_is_404(clinician: httpx.Client) -> None:
    assert_outcome(declare(clinician, "nobody", CLAIM, reason="x"), 404, code="not-found")
