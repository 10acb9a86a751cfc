"""``dhr load --source SOURCE_ID`` run as the real ``dhr`` command against the test database:
the files load as that registered source system (ARCHITECTURE.md "The unified record"), through
the ingest planner, so their resources carry the source's ``meta.source`` and Provenance, the
source's ids are mapped, an NDJSON file is one all-or-nothing ``$import``, and a re-load
changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from dhr.store import source_store
from tests.dhr.record.sources_fixture import (
    NHS,
    ROLE,
    Feed,
    feeds,
    nhs_number,
    observation_entry,
    organization_entry,
    patient_entry,
    source_backends,
)

__all__ = ["feeds", "source_backends"]  # fixtures

ROOT = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("dhr")  # the console script pyproject.toml installs
DHR = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "dhr"]


def dhr(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DHR_")}
    clean.update(DHR_DATA_DIR=str(data_dir), **env)
    return subprocess.run(
        [*DHR, *args], capture_output=True, text=True, env=clean, cwd=ROOT, timeout=120, check=False
    )


def resource(entry: dict[str, Any]) -> dict[str, Any]:
    return dict(entry["resource"])


def write_files(folder: Path, nhs_a: str, nhs_b: str) -> Path:
    """An NDJSON file whose Observation comes before its Patient, a collection Bundle with a
    forward reference, and a single Organization."""
    folder.mkdir()
    lines = [
        resource(observation_entry("obs-a", "Patient/pat-a", 120)),
        resource(patient_entry("pat-a", nhs_a)),
    ]
    (folder / "a.ndjson").write_text("\n".join(json.dumps(r) for r in lines) + "\n\n")
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": resource(observation_entry("obs-b", "Patient/pat-b", 135))},
            {"resource": resource(patient_entry("pat-b", nhs_b))},
        ],
    }
    (folder / "b.json").write_text(json.dumps(collection))
    (folder / "c.json").write_text(json.dumps(resource(organization_entry("org-1", "A81001"))))
    return folder


def master(client: httpx.Client, nhs: str) -> dict[str, Any]:
    found = client.get("Patient", params={"identifier": f"{NHS}|{nhs}", "_tag": f"{ROLE}|master"})
    entries = found.json().get("entry", [])
    assert len(entries) == 1, found.text
    return dict(entries[0]["resource"])


def every(client: httpx.Client, res_type: str) -> list[dict[str, Any]]:
    got = client.get(res_type, params={"_count": 500})
    assert got.status_code == 200, got.text
    return [e["resource"] for e in got.json().get("entry", [])]


def test_load_as_a_source_is_attributed_linked_and_idempotent(
    client: httpx.Client, feeds: dict[str, Feed], database_url: str, tmp_path: Path
) -> None:
    nhs_a, nhs_b = nhs_number(), nhs_number()
    folder = write_files(tmp_path / "in", nhs_a, nhs_b)
    env = {"DHR_DATABASE_URL": database_url}
    result = dhr(tmp_path / "data", "load", "--source", "test-emis", str(folder), **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 file(s), 5 resource(s) loaded, 0 failed" in result.stdout

    uri = "urn:dhr:source:test-emis"
    observations = every(client, "Observation")
    assert len(observations) == 2
    for nhs, value in ((nhs_a, 120), (nhs_b, 135)):
        person = master(client, nhs)
        (obs,) = [o for o in observations if o["valueQuantity"]["value"] == value]
        assert obs["subject"] == {"reference": f"Patient/{person['id']}"}
        assert obs["meta"]["source"] == uri
        assert obs["id"] not in ("obs-a", "obs-b")  # the source's ids are mapped
    (org,) = every(client, "Organization")
    assert org["meta"]["source"] == uri
    provenances = every(client, "Provenance")
    targets = {t["reference"].split("/_history/")[0] for p in provenances for t in p["target"]}
    for res in [*observations, org]:
        assert f"{res['resourceType']}/{res['id']}" in targets
    for prov in provenances:
        assert prov["meta"]["source"] == uri
        assert "test-emis" in json.dumps(prov["agent"])
    entities = {p["entity"][0]["what"]["identifier"]["value"] for p in provenances}
    assert any(e.startswith("$import ") for e in entities), entities  # the NDJSON file

    history = len(client.get("_history", params={"_count": 1000}).json()["entry"])
    again = dhr(tmp_path / "data", "load", "--source", "test-emis", str(folder), **env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 file(s), 5 resource(s) loaded, 0 failed" in again.stdout
    assert len(client.get("_history", params={"_count": 1000}).json()["entry"]) == history


def test_a_bad_line_fails_the_whole_file_and_names_the_line(
    client: httpx.Client, feeds: dict[str, Feed], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.ndjson"
    lines = [
        json.dumps(resource(patient_entry("pat-1", nhs_number()))),
        "",
        json.dumps({"resourceType": "Observation", "id": "o", "status": "final"}),
    ]
    path.write_text("\n".join(lines) + "\n")
    env = {"DHR_DATABASE_URL": database_url}
    result = dhr(tmp_path / "data", "load", "--source", "test-emis", str(path), **env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 file(s), 0 resource(s) loaded, 2 failed" in result.stdout
    assert f"{path} line 3: 400 Observation.code: Field required" in result.stdout
    assert every(client, "Patient") == []


def test_an_unknown_or_inactive_source_is_a_usage_error(
    engine: Engine, feeds: dict[str, Feed], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "p.ndjson"
    path.write_text(json.dumps(resource(patient_entry("pat-1", nhs_number()))) + "\n")
    fresh = dhr(tmp_path / "fresh", "load", "--source", "nope", str(path))  # a new SQLite file
    assert fresh.returncode == 2, fresh.stdout + fresh.stderr
    assert "no source 'nope' is registered" in fresh.stderr
    with engine.begin() as conn:
        source_store.set_source_active(conn, "test-emis", False)
    env = {"DHR_DATABASE_URL": database_url}
    inactive = dhr(tmp_path / "data", "load", "--source", "test-emis", str(path), **env)
    assert inactive.returncode == 2, inactive.stdout + inactive.stderr
    assert "source 'test-emis' is inactive" in inactive.stderr
