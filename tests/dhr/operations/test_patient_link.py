"""``Patient/[id]/$link`` and ``$unlink`` (dhr.operations.patient_link): an administrator links a
source's Patient kept without an NHS number to a master, moving its data into the master's
compartment; unlinking moves exactly that data back; both are recorded with who and why."""

from __future__ import annotations

from typing import Any

import httpx

from tests.dhr.record.sources_fixture import (
    NHS,
    ROLE,
    Feed,
    feeds,
    nhs_number,
    observation_entry,
    patient_entry,
    source_backends,
)

__all__ = ["feeds", "source_backends"]  # fixtures


def _params(**values: Any) -> dict[str, Any]:
    parts = []
    for name, value in values.items():
        key = "valueReference" if isinstance(value, dict) else "valueString"
        parts.append({"name": name, key: value})
    return {"resourceType": "Parameters", "parameter": parts}


def _id_of(entry: dict[str, Any]) -> str:
    return str(entry["response"]["location"]).split("/_history/")[0].rsplit("/", 1)[1]


def _setup(feeds: dict[str, Feed]) -> tuple[str, str, str]:
    """A TPP patient with an NHS number (its master) and an EMIS patient without one."""
    nhs = nhs_number()
    tpp = patient_entry("t-1", nhs, system="https://tpp.example/Id/record")
    feeds["tpp"].send([tpp, observation_entry("t-obs-1", tpp["fullUrl"])])
    emis = patient_entry("e-1", None, family="Jones")
    sent = feeds["emis"].send([emis, observation_entry("e-obs-1", emis["fullUrl"], 99)])
    record = _id_of(sent.json()["entry"][0])
    return nhs, record, _id_of(sent.json()["entry"][1])


def _master_id(client: httpx.Client, nhs: str) -> str:
    found = client.get("Patient", params={"identifier": f"{NHS}|{nhs}", "_tag": f"{ROLE}|master"})
    return str(found.json()["entry"][0]["resource"]["id"])


def _compartment_observations(client: httpx.Client, patient: str) -> set[str]:
    found = client.get("Observation", params={"subject": f"Patient/{patient}"}).json()
    return {e["resource"]["id"] for e in found.get("entry", [])}


def test_link_moves_the_records_data_into_the_masters_compartment_and_unlink_moves_it_back(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs, record, obs = _setup(feeds)
    master = _master_id(client, nhs)
    assert obs not in _compartment_observations(client, master)
    linked = client.post(
        f"Patient/{record}/$link",
        json=_params(nhsNumber=nhs, reason="Confirmed identity at the surgery desk"),
    )
    assert linked.status_code == 200, linked.text
    assert obs in _compartment_observations(client, master)
    assert obs not in _compartment_observations(client, record)
    record_now = client.get(f"Patient/{record}").json()
    assert {"other": {"reference": f"Patient/{master}"}, "type": "refer"} in record_now["link"]
    master_now = client.get(f"Patient/{master}").json()
    assert f"Patient/{record}" in [link["other"]["reference"] for link in master_now["link"]]
    provenance = client.get(
        "Provenance", params={"target": f"Observation/{obs}", "_count": 50}
    ).json()
    reasons = [r["text"] for e in provenance["entry"] for r in e["resource"].get("reason", [])]
    assert "Confirmed identity at the surgery desk" in reasons

    unlinked = client.post(f"Patient/{record}/$unlink", json=_params(reason="Wrong person"))
    assert unlinked.status_code == 200, unlinked.text
    assert obs in _compartment_observations(client, record)
    assert obs not in _compartment_observations(client, master)
    master_after = client.get(f"Patient/{master}").json()
    assert f"Patient/{record}" not in [
        link["other"]["reference"] for link in master_after.get("link", [])
    ]
    history = client.get(f"Observation/{obs}/_history").json()
    assert len(history["entry"]) == 3  # ingested, moved in, moved back


def test_link_needs_a_reason_a_master_and_an_administrator(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs, record, _ = _setup(feeds)
    no_reason = client.post(f"Patient/{record}/$link", json=_params(nhsNumber=nhs))
    assert no_reason.status_code == 400, no_reason.text
    not_master = client.post(
        f"Patient/{record}/$link",
        json=_params(master={"reference": f"Patient/{record}"}, reason="x"),
    )
    assert not_master.status_code == 400, not_master.text
    by_source = feeds["emis"].http.post(
        f"Patient/{record}/$link", json=_params(nhsNumber=nhs, reason="x")
    )
    assert by_source.status_code == 403, by_source.text
    master = _master_id(client, nhs)
    not_a_record = client.post(f"Patient/{master}/$unlink", json=_params(reason="x"))
    assert not_a_record.status_code == 404, not_a_record.text
