"""Ingest from source systems over HTTP (ARCHITECTURE.md "The unified record"): two practices'
systems sending overlapping patients end in one compartment per NHS number, re-sends are
idempotent, invalid NHS numbers are refused with nothing written, a source cannot write as
another, and everything ingested carries its provenance and controllers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.dhr.record.sources_fixture import (
    CONTROLLER,
    NHS,
    REVIEW,
    ROLE,
    TPP_IDS,
    Feed,
    invalid_nhs_number,
    nhs_number,
    observation_entry,
    organization_entry,
    patient_entry,
)


def _tags(resource: dict[str, Any], system: str) -> list[str]:
    return [t["code"] for t in resource.get("meta", {}).get("tag", []) if t.get("system") == system]


def _master(client: httpx.Client, nhs: str) -> dict[str, Any]:
    found = client.get("Patient", params={"identifier": f"{NHS}|{nhs}", "_tag": f"{ROLE}|master"})
    assert found.status_code == 200, found.text
    entries = found.json().get("entry", [])
    assert len(entries) == 1, found.text
    return dict(entries[0]["resource"])


def _everything(client: httpx.Client, patient_id: str) -> list[dict[str, Any]]:
    got = client.get(f"Patient/{patient_id}/$everything", params={"_count": 500})
    assert got.status_code == 200, got.text
    return [e["resource"] for e in got.json().get("entry", [])]


def _two_practices(feeds: dict[str, Feed], nhs: str) -> None:
    emis, tpp = feeds["emis"], feeds["tpp"]
    sent = emis.send(
        [
            patient_entry("e-pat-1", nhs),
            observation_entry("e-obs-1", "urn:uuid:" + _uuid_of(patient_entry("e-pat-1", nhs))),
        ]
    )
    assert sent.status_code == 200, sent.text
    tpp_patient = patient_entry("t-900", nhs, system=TPP_IDS)
    sent = tpp.send([tpp_patient, observation_entry("t-obs-7", tpp_patient["fullUrl"], 135)])
    assert sent.status_code == 200, sent.text


def _id_of(entry: dict[str, Any]) -> str:
    """The server id in a response entry's ``location`` (``[base/]Type/id/_history/n``)."""
    return str(entry["response"]["location"]).split("/_history/")[0].rsplit("/", 1)[1]


def _uuid_of(entry: dict[str, Any]) -> str:
    return str(entry["fullUrl"]).removeprefix("urn:uuid:")


def test_two_sources_one_person_share_one_compartment(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs = nhs_number()
    _two_practices(feeds, nhs)
    master = _master(client, nhs)
    everything = _everything(client, master["id"])
    observations = [r for r in everything if r["resourceType"] == "Observation"]
    assert {o["meta"]["source"] for o in observations} == {
        "urn:dhr:source:test-emis",
        "urn:dhr:source:test-tpp",
    }
    assert all(o["subject"]["reference"] == f"Patient/{master['id']}" for o in observations)
    records = [r for r in everything if r["resourceType"] == "Patient" and r["id"] != master["id"]]
    assert len(records) == 2
    for record in records:
        assert _tags(record, ROLE) == ["source-record"]
        assert {"other": {"reference": f"Patient/{master['id']}"}, "type": "refer"} in record[
            "link"
        ]
    assert sorted(link["other"]["reference"] for link in master["link"]) == sorted(
        f"Patient/{r['id']}" for r in records
    )


def test_resending_a_bundle_changes_nothing(client: httpx.Client, feeds: dict[str, Feed]) -> None:
    nhs = nhs_number()
    pat = patient_entry("e-pat-2", nhs)
    bundle = [
        pat,
        observation_entry("e-obs-2", pat["fullUrl"]),
        organization_entry("e-org", "A81001"),
    ]
    first = feeds["emis"].send(bundle)
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created"] * 3
    history_before = len(client.get("_history", params={"_count": 1000}).json()["entry"])
    again = feeds["emis"].send(bundle)
    assert again.status_code == 200, again.text
    assert [e["response"]["status"][:3] for e in again.json()["entry"]] == ["200"] * 3
    locations = [e["response"]["location"] for e in first.json()["entry"]]
    assert [e["response"]["location"] for e in again.json()["entry"]] == locations
    assert len(client.get("_history", params={"_count": 1000}).json()["entry"]) == history_before
    assert client.get("Observation", params={"_summary": "count"}).json()["total"] == 1


def test_a_changed_record_gets_one_new_version(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    pat = patient_entry("e-pat-3", nhs_number())
    feeds["emis"].send([pat, observation_entry("e-obs-3", pat["fullUrl"], 120)])
    resent = feeds["emis"].send([pat, observation_entry("e-obs-3", pat["fullUrl"], 150)])
    statuses = [e["response"] for e in resent.json()["entry"]]
    assert statuses[0]["location"].endswith("/_history/1")  # the Patient is as it was
    assert statuses[1]["location"].endswith("/_history/2")
    obs = client.get("Observation").json()["entry"]
    assert [o["resource"]["valueQuantity"]["value"] for o in obs] == [150]


def test_an_invalid_nhs_number_is_refused_and_nothing_is_written(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    good = patient_entry("e-pat-4", nhs_number())
    bad = patient_entry("e-pat-5", invalid_nhs_number())
    sent = feeds["emis"].send([good, observation_entry("e-obs-4", good["fullUrl"]), bad])
    assert sent.status_code == 422, sent.text
    issue = sent.json()["issue"][0]
    assert any("identifier" in e and "entry[2]" in e for e in issue.get("expression", [])), issue
    for res_type in ("Patient", "Observation", "Provenance"):
        assert client.get(res_type, params={"_summary": "count"}).json()["total"] == 0


def test_a_source_cannot_change_another_sources_data(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    pat = patient_entry("e-pat-6", nhs_number())
    sent = feeds["emis"].send([pat, observation_entry("e-obs-6", pat["fullUrl"])])
    obs_id = _id_of(sent.json()["entry"][1])
    obs = client.get(f"Observation/{obs_id}").json()
    tpp = feeds["tpp"].http
    changed = tpp.put(f"Observation/{obs_id}", json={**obs, "status": "cancelled"})
    assert changed.status_code == 403, changed.text
    deleted = tpp.delete(f"Observation/{obs_id}")
    assert deleted.status_code == 403, deleted.text
    assert client.get(f"Observation/{obs_id}").json()["status"] == "final"
    patched = tpp.patch(
        f"Observation/{obs_id}",
        json=[{"op": "replace", "path": "/status", "value": "cancelled"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert patched.status_code == 403, patched.text


def test_meta_source_comes_from_credentials_not_the_body(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    pat = patient_entry("t-77", nhs_number(), system=TPP_IDS)
    pat["resource"]["meta"] = {
        "source": "urn:dhr:source:test-emis",
        "tag": [{"system": CONTROLLER, "code": "A81001"}],
    }
    sent = feeds["tpp"].send([pat])
    record_id = _id_of(sent.json()["entry"][0])
    record = client.get(f"Patient/{record_id}").json()
    assert record["meta"]["source"] == "urn:dhr:source:test-tpp"
    assert _tags(record, CONTROLLER) == ["B82005", "X24"]
    forged = client.post(
        "Observation",
        json={
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "meta": {"source": "urn:dhr:source:test-emis"},
        },
    )
    assert forged.status_code == 403, forged.text


def test_provenance_and_controllers_on_everything_ingested(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs = nhs_number()
    _two_practices(feeds, nhs)
    found = client.get(
        "Observation", params={"_revinclude": "Provenance:target", "_count": 50}
    ).json()
    observations = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "match"]
    provenances = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert len(observations) == 2
    for obs in observations:
        ods = "A81001" if obs["meta"]["source"].endswith("emis") else "B82005"
        assert _tags(obs, CONTROLLER) == [ods, "X24"]
        mine = [
            p
            for p in provenances
            if any(t["reference"].startswith(f"Observation/{obs['id']}/") for t in p["target"])
        ]
        assert len(mine) == 1
        prov = mine[0]
        assert prov["activity"]["coding"][0]["code"] == "CREATE"
        assert prov["agent"][0]["who"]["identifier"]["value"] == ods
        assert prov["entity"][0]["role"] == "source"
    by_controller = client.get(
        "Observation", params={"_tag": f"{CONTROLLER}|B82005", "_summary": "count"}
    ).json()
    assert by_controller["total"] == 1


def test_a_patient_without_nhs_number_is_kept_and_flagged(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    pat = patient_entry("e-pat-8", None, family="Nobody")
    sent = feeds["emis"].send([pat, observation_entry("e-obs-8", pat["fullUrl"])])
    assert sent.status_code == 200, sent.text
    record_id = _id_of(sent.json()["entry"][0])
    record = client.get(f"Patient/{record_id}").json()
    assert _tags(record, ROLE) == ["unlinked"]
    assert _tags(record, REVIEW) == ["no-nhs-number"]
    everything = _everything(client, record_id)
    assert [r["resourceType"] for r in everything].count("Observation") == 1
    flagged = client.get("Patient", params={"_tag": f"{REVIEW}|no-nhs-number"}).json()
    assert [e["resource"]["id"] for e in flagged["entry"]] == [record_id]


def test_conflicting_birth_dates_are_kept_flagged_and_visible(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs = nhs_number()
    feeds["emis"].send([patient_entry("e-pat-9", nhs, birth_date="1960-05-05")])
    feeds["tpp"].send([patient_entry("t-9", nhs, birth_date="1961-06-06", system=TPP_IDS)])
    master = _master(client, nhs)
    assert master["birthDate"] == "1960-05-05"  # not silently overwritten
    assert _tags(master, REVIEW) == ["demographics-conflict"]
    flags = client.get("Flag", params={"subject": f"Patient/{master['id']}"}).json()["entry"]
    assert len(flags) == 1
    text = flags[0]["resource"]["code"]["text"]
    assert "1960-05-05" in text
    assert "1961-06-06" in text
    assert flags[0]["resource"]["status"] == "active"


def test_the_registered_gp_follows_the_latest_registration(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs = nhs_number()
    old_org = organization_entry("e-org-1", "A81001")
    feeds["emis"].send([old_org, patient_entry("e-pat-10", nhs, gp=old_org["fullUrl"])])
    master = _master(client, nhs)
    old_gp = master["generalPractitioner"][0]["reference"]
    new_org = organization_entry("t-org-1", "B82005")
    feeds["tpp"].send([new_org, patient_entry("t-10", nhs, gp=new_org["fullUrl"], system=TPP_IDS)])
    master = _master(client, nhs)
    new_gp = master["generalPractitioner"][0]["reference"]
    assert new_gp != old_gp
    assert client.get(new_gp).json()["identifier"][0]["value"] == "B82005"
    # The old practice re-sending its unchanged record does not take the registration back.
    feeds["emis"].send([old_org, patient_entry("e-pat-10", nhs, gp=old_org["fullUrl"])])
    assert _master(client, nhs)["generalPractitioner"][0]["reference"] == new_gp


def test_single_writes_by_a_source_are_ingested_too(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    nhs = nhs_number()
    emis = feeds["emis"].http
    created = emis.post("Patient", json=patient_entry("e-pat-11", nhs)["resource"])
    assert created.status_code == 201, created.text
    again = emis.put("Patient/e-pat-11", json=patient_entry("e-pat-11", nhs)["resource"])
    assert again.status_code == 200, again.text
    assert again.headers["Location"] == created.headers["Location"]
    obs = observation_entry("e-obs-11", "Patient/e-pat-11")["resource"]
    posted = emis.post("Observation", json=obs)
    assert posted.status_code == 201, posted.text
    master = _master(client, nhs)
    assert posted.json()["subject"]["reference"] == f"Patient/{master['id']}"


def test_a_single_write_by_a_source_is_audited_with_its_patient(
    client: httpx.Client, feeds: dict[str, Feed], engine: Engine
) -> None:
    nhs = nhs_number()
    created = feeds["emis"].http.post("Patient", json=patient_entry("e-pat-12", nhs)["resource"])
    assert created.status_code == 201, created.text
    master = _master(client, nhs)["id"]
    record = created.headers["Location"].split("/_history/")[0].rsplit("/", 1)[1]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT patient FROM audit_event WHERE client_id = :c AND subtype = 'create'"),
            {"c": feeds["emis"].source.client_id},
        ).all()
    patients = {r[0] for r in rows}
    assert None not in patients
    assert master in patients or f"Patient/{master}" in patients, (patients, record)


# The session's server validates these transactions in the worker pool (tests/conftest.py) while
# the ingest plans and writes them: resources shaped so that the planner meets the wrong shape
# before any verdict is in still get the validation's 400, and nothing is written.
MISSHAPEN = {
    "a subject that is a string, not a Reference": ("subject", "Patient/123"),
    "identifiers that are an object, not a list": ("identifier", {"system": "x", "value": "1"}),
    "a meta that is a list": ("meta", [{"source": "elsewhere"}]),
    "an id that is a number": ("id", 12),
}


@pytest.mark.parametrize("why", sorted(MISSHAPEN))
def test_a_misshapen_resource_is_a_400_whatever_the_ingest_made_of_it(
    client: httpx.Client, feeds: dict[str, Feed], why: str
) -> None:
    pat = patient_entry("e-pat-9", nhs_number())
    obs = observation_entry("e-obs-9", pat["fullUrl"])
    element, value = MISSHAPEN[why]
    obs["resource"][element] = value
    sent = feeds["emis"].send([pat, obs, observation_entry("e-obs-10", pat["fullUrl"])])
    assert sent.status_code == 400, sent.text
    issue = sent.json()["issue"][0]
    assert "Bundle.entry[1]" in issue["expression"], issue
    for res_type in ("Patient", "Observation", "Provenance"):
        assert client.get(res_type, params={"_summary": "count"}).json()["total"] == 0
