"""Concurrent updates to one resource lose nothing: versions increase without gaps, and a stale
If-Match gets 412. https://hl7.org/fhir/R4/http.html#concurrency
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import BackendClient, created_id, patient


@pytest.mark.slow
def test_concurrent_updates_get_gapless_versions_and_none_is_lost(
    server: LiveServer, system_backend: BackendClient
) -> None:
    with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
        pid = created_id(http.post("Patient", json=patient()))

    def put(i: int) -> tuple[int, str]:
        with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
            body = patient(id=pid, name=[{"family": f"Writer{i}"}])
            response = http.put(f"Patient/{pid}", json=body)
            return response.status_code, response.headers.get("etag", "")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(put, range(40)))
    assert all(status == 200 for status, _ in results), results
    etags = sorted(int(etag.strip('W/"')) for _, etag in results)
    assert etags == list(range(2, 42))
    with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
        history = http.get(f"Patient/{pid}/_history", params={"_count": "100"}).json()
    families = {
        e["resource"]["name"][0]["family"]
        for e in history["entry"]
        if e["resource"]["meta"]["versionId"] != "1"
    }
    assert families == {f"Writer{i}" for i in range(40)}


@pytest.mark.slow
def test_concurrent_if_match_writers_exactly_one_wins_each_round(
    server: LiveServer, system_backend: BackendClient
) -> None:
    with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
        pid = created_id(http.post("Patient", json=patient()))

    def put(i: int) -> int:
        with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
            body = patient(id=pid, name=[{"family": f"Writer{i}"}])
            return http.put(f"Patient/{pid}", json=body, headers={"If-Match": 'W/"1"'}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(put, range(16)))
    assert statuses.count(200) == 1
    assert statuses.count(412) == 15


@pytest.mark.slow
def test_concurrent_create_on_update_of_one_new_id_creates_it_once(
    server: LiveServer, system_backend: BackendClient
) -> None:
    def put(i: int) -> int:
        with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
            return http.put(
                "Patient/brand-new", json=patient(id="brand-new", active=i % 2 == 0)
            ).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(put, range(16)))
    assert statuses.count(201) == 1
    assert statuses.count(200) == 15
    with httpx.Client(base_url=server.base + "/", timeout=60, auth=system_backend) as http:
        assert http.get("Patient/brand-new").headers["etag"] == 'W/"16"'
