"""``$validate`` on type and instance. https://hl7.org/fhir/R4/resource-operation-validate.html"""

from __future__ import annotations

import httpx

from tests.helpers import created_id, patient


def _severities(body: dict) -> set[str]:
    return {i["severity"] for i in body["issue"]}


def test_a_valid_resource_gets_an_information_outcome_and_nothing_is_stored(
    client: httpx.Client,
) -> None:
    response = client.post("Patient/$validate", json=patient())
    assert response.status_code == 200
    assert response.json()["resourceType"] == "OperationOutcome"
    assert _severities(response.json()) == {"information"}
    assert client.get("Patient/_history").json().get("entry", []) == []


def test_an_invalid_resource_lists_its_problems_with_expressions(client: httpx.Client) -> None:
    response = client.post("Patient/$validate", json=patient(birthDate="not-a-date"))
    assert response.status_code == 200
    body = response.json()
    assert "error" in _severities(body)
    assert any("Patient.birthDate" in i.get("expression", []) for i in body["issue"])


def test_parameters_wrapping_and_instance_level_mode_update(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    wrapped = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "resource", "resource": patient(id="someone-else")},
            {"name": "mode", "valueCode": "update"},
        ],
    }
    response = client.post(f"Patient/{pid}/$validate", json=wrapped)
    assert response.status_code == 200
    assert "error" in _severities(response.json())
    wrapped["parameter"][0]["resource"] = patient(id=pid)
    assert _severities(client.post(f"Patient/{pid}/$validate", json=wrapped).json()) == {
        "information"
    }


def test_validate_of_an_unparsable_body_is_400(client: httpx.Client) -> None:
    assert (
        client.post(
            "Patient/$validate", content=b"{oops", headers={"Content-Type": "application/fhir+json"}
        ).status_code
        == 400
    )
    assert client.get("Patient/$validate").status_code == 405
