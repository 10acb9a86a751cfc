"""``/metadata``: a CapabilityStatement that strict R4 clients parse and that states what works.

https://hl7.org/fhir/R4/http.html#capabilities, https://hl7.org/fhir/R4/capabilitystatement.html
"""

from __future__ import annotations

import httpx
from fhirclient.models.capabilitystatement import CapabilityStatement

from dhr.fhir.types import resource_types


def test_the_strict_fhirclient_models_parse_the_capability_statement(client: httpx.Client) -> None:
    response = client.get("metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    statement = CapabilityStatement(response.json(), strict=True)
    assert statement.fhirVersion == "4.0.1"
    assert statement.kind == "instance"
    assert "json" in statement.format


def test_every_served_type_is_listed_with_the_interactions_that_work(client: httpx.Client) -> None:
    rest = client.get("metadata").json()["rest"][0]
    listed = {r["type"]: r for r in rest["resource"]}
    assert set(listed) == set(resource_types())
    assert "MedicinalProduct" not in listed  # dropped by R4B
    patient = listed["Patient"]
    codes = {i["code"] for i in patient["interaction"]}
    assert {
        "read",
        "vread",
        "create",
        "update",
        "delete",
        "history-instance",
        "history-type",
    } <= codes
    assert "search-type" in codes
    names = {p["name"] for p in patient["searchParam"]}
    assert {"_id", "_lastUpdated", "identifier", "birthdate", "name", "family"} <= names
    assert patient["conditionalDelete"] == "single"
    assert {i["code"] for i in rest["interaction"]} >= {"history-system"}


def test_the_base_url_in_the_statement_is_the_configured_one(client: httpx.Client) -> None:
    body = client.get("metadata").json()
    assert body["implementation"]["url"] == str(client.base_url).rstrip("/")
