"""``dhr load``: NDJSON, Bundle and single-resource files through the API's write path.

https://hl7.org/fhir/uv/bulkdata/export.html#file-format (NDJSON),
https://hl7.org/fhir/R4/http.html#transaction (transaction/batch Bundles),
https://hl7.org/fhir/R4/http.html#update (PUT with the resource's id).
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from dhr.config import Settings
from dhr.loader import EXIT_FAILURES, EXIT_OK, EXIT_USAGE, run_load
from dhr.loading.progress import Progress
from tests.conftest import LiveServer, make_settings
from tests.helpers import observation, patient


@pytest.fixture
def settings(server: LiveServer, database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path / "data")


def load(settings: Settings, *paths: Path | str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_load(settings, [str(p) for p in paths], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def write_ndjson(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def bundles_supported(client: httpx.Client) -> bool:
    response = client.post("", json={"resourceType": "Bundle", "type": "batch", "entry": []})
    return response.status_code != 405


def test_ndjson_resources_are_readable_through_the_api(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_ndjson(
        tmp_path / "patients.ndjson",
        [
            patient(id="p1"),
            patient(id="p2", gender="male"),
            patient(),
            observation("Patient/p1", id="o1"),
        ],
    )
    code, out, err = load(settings, path)
    assert code == EXIT_OK, out
    assert "1 file(s), 4 resource(s) loaded, 0 failed" in out
    assert "resources/s" in out
    assert client.get("Patient/p1").json()["gender"] == "female"
    assert client.get("Patient/p2").json()["gender"] == "male"
    assert client.get("Observation/o1").json()["subject"] == {"reference": "Patient/p1"}
    assert "[1/1]" in err  # not a terminal: one line per file


def test_reloading_with_ids_updates_instead_of_duplicating(
    settings: Settings, client: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    path = write_ndjson(tmp_path / "p.ndjson", [patient(id="p1"), patient(id="p2")])
    assert load(settings, path)[0] == EXIT_OK
    assert load(settings, path)[0] == EXIT_OK
    assert count(engine, "resource") == 2
    assert client.get("Patient/p1").json()["meta"]["versionId"] == "2"


def test_bad_lines_are_reported_with_file_and_line_and_the_rest_loads(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_ndjson(
        tmp_path / "mixed.ndjson",
        [
            patient(id="good1"),
            "{not json",
            patient(id="bad-gender", gender="sometimes"),
            {"no": "resourceType"},
            patient(id="good2"),
        ],
    )
    code, out, _ = load(settings, path)
    assert code == EXIT_FAILURES
    assert "2 resource(s) loaded, 3 failed" in out
    assert f"{path} line 2: 400" in out
    assert "not valid JSON" in out
    assert f"{path} line 3: 400" in out
    assert "Patient.gender" in out
    assert f"{path} line 4: 400" in out
    assert client.get("Patient/good1").status_code == 200
    assert client.get("Patient/good2").status_code == 200
    assert client.get("Patient/bad-gender").status_code == 404


def test_collection_bundle_gzipped_and_single_resource_in_a_directory(
    settings: Settings, client: httpx.Client, engine: Engine, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "nested").mkdir(parents=True)
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1", "resource": patient(id="c1")},
            {"fullUrl": "urn:uuid:2", "resource": patient()},
            {"fullUrl": "urn:uuid:3"},
        ],
    }
    (folder / "nested" / "bundle.json.gz").write_bytes(
        gzip.compress(json.dumps(collection).encode())
    )
    (folder / "one.json").write_text(json.dumps(patient(id="single")), encoding="utf-8")
    (folder / "notes.txt").write_text("ignored", encoding="utf-8")
    code, out, _ = load(settings, folder)
    assert code == EXIT_FAILURES  # the entry without a resource
    assert "2 file(s), 3 resource(s) loaded, 1 failed" in out
    assert "bundle.json.gz entry[2]: 400 The entry has no resource" in out
    assert client.get("Patient/c1").status_code == 200
    assert client.get("Patient/single").status_code == 200
    assert count(engine, "resource") == 3


def test_searchset_outcome_entries_are_skipped(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    searchset = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": patient(id="s1"), "search": {"mode": "match"}},
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "warning", "code": "informational"}],
                },
                "search": {"mode": "outcome"},
            },
        ],
    }
    path = tmp_path / "search.json"
    path.write_text(json.dumps(searchset), encoding="utf-8")
    code, out, _ = load(settings, path)
    assert code == EXIT_OK, out
    assert "1 resource(s) loaded" in out
    assert client.get("Patient/s1").status_code == 200


def test_a_file_that_is_not_json_is_reported_and_the_next_file_loads(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "a.json").write_text("{ truncated", encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(patient(id="after")), encoding="utf-8")
    code, out, _ = load(settings, tmp_path / "a.json", tmp_path / "b.json")
    assert code == EXIT_FAILURES
    assert "a.json file: 400" in out
    assert client.get("Patient/after").status_code == 200


def test_missing_path_is_a_usage_error(settings: Settings, tmp_path: Path) -> None:
    code, out, err = load(settings, tmp_path / "nope.ndjson")
    assert code == EXIT_USAGE
    assert "no such file or directory" in err
    assert out == ""
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    assert load(settings, tmp_path / "x.csv")[0] == EXIT_USAGE


def test_transaction_bundle_is_posted_as_it_is(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    if not bundles_supported(client):
        pytest.skip("batch/transaction is not implemented yet (POST to the base answers 405)")
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:8f2b5c3e-1111-4a3b-9c1d-000000000001",
                "resource": patient(),
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": observation("urn:uuid:8f2b5c3e-1111-4a3b-9c1d-000000000001"),
                "request": {"method": "POST", "url": "Observation"},
            },
            {"resource": patient(id="tx1"), "request": {"method": "PUT", "url": "Patient/tx1"}},
        ],
    }
    path = tmp_path / "tx.json"
    path.write_text(json.dumps(transaction), encoding="utf-8")
    code, out, _ = load(settings, path)
    assert code == EXIT_OK, out
    assert "3 resource(s) loaded, 0 failed" in out
    assert client.get("Patient/tx1").status_code == 200


def test_failed_batch_entries_are_reported_by_entry_index(
    settings: Settings, client: httpx.Client, tmp_path: Path
) -> None:
    if not bundles_supported(client):
        pytest.skip("batch/transaction is not implemented yet (POST to the base answers 405)")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(id="b1"), "request": {"method": "PUT", "url": "Patient/b1"}},
            {
                "resource": patient(gender="sometimes"),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    path = tmp_path / "batch.json"
    path.write_text(json.dumps(batch), encoding="utf-8")
    code, out, _ = load(settings, path)
    assert code == EXIT_FAILURES
    assert "1 resource(s) loaded, 1 failed" in out
    assert f"{path} entry[1]: 400" in out
    assert client.get("Patient/b1").status_code == 200


def test_progress_redraws_one_line_on_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream, 2, tty=True)
    progress.start_file("a.ndjson")
    progress.count(loaded=5)
    progress.finish_file()
    progress.close()
    output = stream.getvalue()
    assert output.startswith("\r[")
    assert "1/2 files" in output
    assert "5 resources" in output
    assert output.endswith("\n")
    assert output.count("\n") == 1
