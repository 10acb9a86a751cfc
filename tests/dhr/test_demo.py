"""The ``make run`` demo data (:mod:`dhr.demo`, :mod:`dhr.demo_data`).

NHS numbers are checked with Modulus 11
(https://www.datadictionary.nhs.uk/attributes/nhs_number.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from dhr.config import Settings
from dhr.demo import load_demo
from dhr.demo_data import NHS_NUMBER, ODS_CODE, demo_resources
from tests.conftest import LiveServer, make_settings


def nhs_number_is_valid(value: str) -> bool:
    """Modulus 11: weights 10..2 on the first nine digits; 11 - remainder is the check digit."""
    if len(value) != 10 or not value.isdigit():
        return False
    digits = [int(c) for c in value]
    total = sum(d * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == digits[9]


@pytest.fixture
def settings(server: LiveServer, database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM resource_version")).scalar_one())


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for v in value.values() for r in references(v)]
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def test_the_modulus_11_check_itself() -> None:
    assert nhs_number_is_valid("9434765919")
    assert not nhs_number_is_valid("9434765918")
    assert not nhs_number_is_valid("943476591")


def test_demo_patients_have_valid_nhs_numbers_and_practices_ods_codes() -> None:
    resources = demo_resources()
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    assert len(patients) == 3
    numbers = [i["value"] for p in patients for i in p["identifier"] if i["system"] == NHS_NUMBER]
    assert len(numbers) == 3
    assert len(set(numbers)) == 3
    assert all(nhs_number_is_valid(n) for n in numbers), numbers
    practices = [r for r in resources if r["resourceType"] == "Organization"]
    assert len(practices) == 2
    for practice in practices:
        assert practice["identifier"][0]["system"] == ODS_CODE
    ids = [(r["resourceType"], r["id"]) for r in resources]
    assert len(set(ids)) == len(ids)


def test_demo_loads_coherently_and_is_readable(
    settings: Settings, engine: Engine, client: httpx.Client
) -> None:
    message = load_demo(settings, engine)
    resources = demo_resources()
    assert f"{len(resources)} created" in message
    assert f"curl {settings.fhir_base}/metadata" in message
    for resource in resources:
        response = client.get(f"{resource['resourceType']}/{resource['id']}")
        assert response.status_code == 200, response.text
        assert response.json()["meta"]["versionId"] == "1"
        for ref in references(resource):
            assert client.get(ref).status_code == 200, f"{resource['id']} -> {ref}"


def test_second_load_adds_no_versions(
    settings: Settings, engine: Engine, client: httpx.Client
) -> None:
    load_demo(settings, engine)
    before = versions(engine)
    message = load_demo(settings, engine)
    assert versions(engine) == before  # the unified-record demo's bundles change nothing either
    assert f"{len(demo_resources())} unchanged" in message
    patient_id = next(r["id"] for r in demo_resources() if r["resourceType"] == "Patient")
    assert client.get(f"Patient/{patient_id}").json()["meta"]["versionId"] == "1"


def test_a_changed_demo_resource_is_put_back(
    settings: Settings, engine: Engine, client: httpx.Client
) -> None:
    load_demo(settings, engine)
    patient = next(r for r in demo_resources() if r["resourceType"] == "Patient")
    edited = dict(patient, gender="unknown")
    assert client.put(f"Patient/{patient['id']}", json=edited).status_code == 200
    message = load_demo(settings, engine)
    assert "1 updated" in message
    body = client.get(f"Patient/{patient['id']}").json()
    assert body["gender"] == patient["gender"]
    assert body["meta"]["versionId"] == "3"
