"""Small helpers the tests share: resource factories and OperationOutcome checks."""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def patient(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1980-04-02",
    }
    body.update(extra)
    return body


def observation(subject: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": 72,
            "unit": "beats/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    body.update(extra)
    return body


def created_id(response: httpx.Response) -> str:
    """The logical id from a create's Location header."""
    location = response.headers["location"]
    return location.split("/_history/")[0].rsplit("/", 1)[1]


def assert_outcome(
    response: httpx.Response, status: int, *, code: str | None = None, expression: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with an OperationOutcome (issue code / expression if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    if code is not None:
        assert any(i["code"] == code for i in body["issue"]), body
    if expression is not None:
        assert any(expression in i.get("expression", []) for i in body["issue"]), body
    return body
