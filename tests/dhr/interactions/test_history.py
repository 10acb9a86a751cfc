"""history at instance, type and system level, with _since, _at, _count and paging.

https://hl7.org/fhir/R4/http.html#history
"""

from __future__ import annotations

import time

import httpx

from tests.helpers import created_id, observation, patient


def _entries(bundle: dict) -> list[dict]:
    return bundle.get("entry", [])


def test_instance_history_lists_every_version_newest_first(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    client.put(f"Patient/{pid}", json=patient(id=pid, active=True))
    client.delete(f"Patient/{pid}")
    bundle = client.get(f"Patient/{pid}/_history").json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "history"
    entries = _entries(bundle)
    assert [e["response"]["etag"] for e in entries] == ['W/"3"', 'W/"2"', 'W/"1"']
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "POST"]
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["active"] is True
    assert entries[2]["response"]["status"].startswith("201")


def test_type_history_keeps_to_its_type_and_system_history_sees_all(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    client.post("Observation", json=observation(f"Patient/{pid}"))
    types = {e["resource"]["resourceType"] for e in _entries(client.get("Patient/_history").json())}
    assert types == {"Patient"}
    everything = {e["resource"]["resourceType"] for e in _entries(client.get("_history").json())}
    assert everything == {"Patient", "Observation"}


def test_history_of_an_unknown_resource_is_404(client: httpx.Client) -> None:
    assert client.get("Patient/unknown/_history").status_code == 404


def test_paging_with_count_follows_next_links_without_gaps_or_repeats_while_others_write(
    client: httpx.Client,
) -> None:
    ids = [created_id(client.post("Patient", json=patient())) for _ in range(7)]
    page = client.get("Patient/_history", params={"_count": "3"}).json()
    seen: list[str] = []
    while True:
        seen += [e["resource"]["id"] for e in _entries(page)]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        # A write between pages must not shift what the next page holds.
        client.post("Patient", json=patient())
        if not nxt:
            break
        page = client.get(nxt[0]).json()
    assert sorted(seen) == sorted(ids)


def test_since_keeps_versions_written_at_or_after_the_instant(client: httpx.Client) -> None:
    old = created_id(client.post("Patient", json=patient()))
    time.sleep(0.01)
    cut = client.post("Patient", json=patient()).json()["meta"]["lastUpdated"]
    new = client.get("Patient/_history", params={"_since": cut}).json()
    ids = {e["resource"]["id"] for e in _entries(new)}
    assert old not in ids
    assert len(ids) == 1


def test_at_keeps_the_versions_current_at_that_moment(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient(gender="female")))
    time.sleep(1.1)
    moment = client.get(f"Patient/{pid}").json()["meta"]["lastUpdated"]
    time.sleep(1.1)
    client.put(f"Patient/{pid}", json=patient(id=pid, gender="male"))
    # _at with second precision (a one-second period) after version 1 was written
    at = client.get(f"Patient/{pid}/_history", params={"_at": moment[:19] + "Z"}).json()
    assert [e["resource"]["gender"] for e in _entries(at)] == ["female"]


def test_bad_history_parameters_are_400(client: httpx.Client) -> None:
    for params in (
        {"_since": "yesterday"},
        {"_count": "-1"},
        {"_count": "100000"},
        {"_at": "2020-13"},
    ):
        response = client.get("_history", params=params)
        assert response.status_code == 400, params
        assert response.json()["resourceType"] == "OperationOutcome"
