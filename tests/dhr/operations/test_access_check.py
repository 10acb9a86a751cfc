"""``POST /fhir/$access-check`` (dhr.operations.access_check): the consent decision and its
reasons for a requester, patient, data and purpose, with facts read from the record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import created_id, refusal_consent

CONTROLLER = "https://dhr.nhs.example/fhir/CodeSystem/data-controller"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


@pytest.fixture
def client(policy_client: httpx.Client) -> httpx.Client:
    """These tests ask about the default policy: a care relationship is needed."""
    return policy_client


def _setup(client: httpx.Client, ods: str = "A81001") -> str:
    org = client.post(
        "Organization",
        json={"resourceType": "Organization", "identifier": [{"system": ODS, "value": ods}]},
    )
    patient = client.post(
        "Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": "Check"}],
            "generalPractitioner": [{"reference": f"Organization/{created_id(org)}"}],
        },
    )
    return created_id(patient)


def _ask(client: httpx.Client, patient: str, **values: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{patient}"}}
    ]
    for name, value in values.items():
        for one in value if isinstance(value, list) else [value]:
            key = "valueCode" if name in ("purpose", "role", "resourceType") else "valueString"
            parts.append({"name": name, key: one})
    got = client.post("$access-check", json={"resourceType": "Parameters", "parameter": parts})
    assert got.status_code == 200, got.text
    return dict(got.json())


def _decision(answer: dict[str, Any]) -> str:
    return str(next(p["valueCode"] for p in answer["parameter"] if p["name"] == "decision"))


def _reasons(answer: dict[str, Any]) -> list[str]:
    return [p["valueString"] for p in answer["parameter"] if p["name"] == "reason"]


def test_the_registered_practice_may_see_its_patient_for_direct_care(client: httpx.Client) -> None:
    pid = _setup(client)
    answer = _ask(client, pid, organization="A81001", role="R8000")
    assert _decision(answer) == "permit"
    assert any("registered" in r for r in _reasons(answer))


def test_another_organisation_without_a_relationship_is_denied(client: httpx.Client) -> None:
    pid = _setup(client)
    answer = _ask(client, pid, organization="B82005", role="R8000")
    assert _decision(answer) == "deny"
    assert any("care relationship" in r for r in _reasons(answer))


def test_the_patients_consent_to_deny_overrides_the_relationship(client: httpx.Client) -> None:
    pid = _setup(client)
    consent = refusal_consent(pid)
    made = client.post("Consent", json=consent)
    assert made.status_code == 201, made.text
    denied = _ask(client, pid, organization="A81001", role="R8000")
    assert _decision(denied) == "deny"
    assert any("Consent/" in r for r in _reasons(denied))
    glass = _ask(
        client,
        pid,
        organization="A81001",
        role="R8000",
        purpose="BTG",
        breakGlassReason="collapsed in the waiting room",
    )
    assert _decision(glass) == "permit"
    obligations = [p["valueCode"] for p in glass["parameter"] if p["name"] == "obligation"]
    assert "notify-patient" in obligations


def test_research_follows_the_controllers_purposes(client: httpx.Client) -> None:
    pid = _setup(client)
    national_only = _ask(client, pid, purpose="HRESCH", role="researcher", controller="X24")
    assert _decision(national_only) == "permit"
    practice_data = _ask(
        client, pid, purpose="HRESCH", role="researcher", controller=["A81001", "X24"]
    )
    assert _decision(practice_data) == "deny"
    assert any("A81001" in r for r in _reasons(practice_data))


def test_a_request_without_a_patient_is_400(client: httpx.Client) -> None:
    got = client.post("$access-check", json={"resourceType": "Parameters", "parameter": []})
    assert got.status_code == 400, got.text
