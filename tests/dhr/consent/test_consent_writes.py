"""A patient's Consents, written through the FHIR API, and their effect at once.

Issue 6 and ARCHITECTURE.md "The policy layer": a patient acting for themselves (role
``patient``, a ``patient`` launch context, SMART scope ``patient/Consent.cruds``) records,
changes and withdraws their own Consents (https://hl7.org/fhir/R4/consent.html) and writes
nothing else; a clinician may record one on the patient's behalf. Every version is kept
(https://hl7.org/fhir/R4/http.html#history), and the next request of anyone is decided under the
Consents as they now stand.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.dhr.consent.conftest import GP, HOSPITAL, NHS_NUMBERS, REGISTRY, World, consent_body
from tests.helpers import assert_outcome, bearer, created_id, observation

PATIENT_SCOPE = "patient/Consent.cruds patient/*.rs"
DENY_ALL: dict[str, Any] = {"type": "deny"}
PERMIT_ALL: dict[str, Any] = {"type": "permit"}


def as_patient(world: World, pid: str) -> httpx.Client:
    token = world.issuer(
        PATIENT_SCOPE,
        patient=pid,
        roles=("patient",),
        organisation=None,
        fhir_user=f"Patient/{pid}",
        subject=f"patient-{pid[:8]}",
    )
    return httpx.Client(base_url=world.server.base + "/", timeout=30, headers=bearer(token))


def as_clinician(world: World, scope: str = "user/*.rs") -> httpx.Client:
    token = world.issuer(scope, roles=("R8000",), organisation=GP, subject="dr-writes")
    return httpx.Client(base_url=world.server.base + "/", timeout=30, headers=bearer(token))


def registered_patient_with_data(world: World) -> tuple[str, str]:
    """A patient registered with the GP practice, and an Observation the hospital wrote."""
    pid = world.patient(NHS_NUMBERS[0], GP)
    return pid, world.observation(pid, HOSPITAL)


def test_a_patient_records_changes_and_withdraws_their_consent_and_every_version_is_kept(
    world: World,
) -> None:
    pid, _ = registered_patient_with_data(world)
    with as_patient(world, pid) as me:
        made = me.post("Consent", json=consent_body(pid, DENY_ALL))
        assert made.status_code == 201, made.text
        cid = created_id(made)
        changed = me.put(f"Consent/{cid}", json={**consent_body(pid, PERMIT_ALL), "id": cid})
        assert changed.status_code == 200, changed.text
        withdrawn_body = {**consent_body(pid, PERMIT_ALL), "id": cid, "status": "inactive"}
        withdrawn = me.put(f"Consent/{cid}", json=withdrawn_body)
        assert withdrawn.status_code == 200, withdrawn.text
        assert me.get(f"Consent/{cid}").json()["status"] == "inactive"
        before = me.get(f"Consent/{cid}/_history")
        assert before.status_code == 200, before.text
        assert [e["request"]["method"] for e in before.json()["entry"]] == ["PUT", "PUT", "POST"]
        assert me.delete(f"Consent/{cid}").status_code in (200, 204)
        assert me.get(f"Consent/{cid}").status_code == 410
    # a deleted resource has no compartment left for a patient/ scope to place it in, so the
    # history of the withdrawal is read by the patient's registered practice
    with as_clinician(world) as doctor:
        history = doctor.get(f"Consent/{cid}/_history")
        assert history.status_code == 200, history.text
        entries = history.json()["entry"]
    methods = [e["request"]["method"] for e in entries]
    assert methods == ["DELETE", "PUT", "PUT", "POST"]
    kept = [e["resource"] for e in entries if "resource" in e]
    assert [(c["status"], c["provision"]["type"]) for c in kept] == [
        ("inactive", "permit"),
        ("active", "permit"),
        ("active", "deny"),
    ]


def test_a_patient_may_not_record_a_consent_for_another_patient(world: World) -> None:
    me = world.patient(NHS_NUMBERS[0], GP)
    someone_else = world.patient(NHS_NUMBERS[1], GP)
    with as_patient(world, me) as client:
        got = client.post("Consent", json=consent_body(someone_else, DENY_ALL))
    assert_outcome(got, 403)


def test_a_patient_may_not_write_an_observation(world: World) -> None:
    pid = world.patient(NHS_NUMBERS[0], GP)
    token = world.issuer(
        "patient/*.cruds",
        patient=pid,
        roles=("patient",),
        organisation=None,
        fhir_user=f"Patient/{pid}",
    )
    with httpx.Client(base_url=world.server.base + "/", timeout=30, headers=bearer(token)) as me:
        got = me.post("Observation", json=observation(f"Patient/{pid}"))
    assert_outcome(got, 403)


def test_a_patients_deny_hides_their_record_from_the_clinician_at_once_and_withdrawing_restores_it(
    world: World,
) -> None:
    pid, oid = registered_patient_with_data(world)
    with as_clinician(world) as doctor, as_patient(world, pid) as me:
        assert doctor.get(f"Observation/{oid}").status_code == 200
        made = me.post("Consent", json=consent_body(pid, DENY_ALL))
        assert made.status_code == 201, made.text
        cid = created_id(made)
        assert doctor.get(f"Observation/{oid}").status_code == 404
        assert doctor.get(f"Patient/{pid}").status_code == 404
        withdrawn = {**consent_body(pid, DENY_ALL), "id": cid, "status": "inactive"}
        assert me.put(f"Consent/{cid}", json=withdrawn).status_code == 200
        assert doctor.get(f"Observation/{oid}").status_code == 200
        assert (
            me.put(f"Consent/{cid}", json={**consent_body(pid, DENY_ALL), "id": cid}).status_code
            == 200
        )
        assert doctor.get(f"Observation/{oid}").status_code == 404
        assert me.delete(f"Consent/{cid}").status_code in (200, 204)
        assert doctor.get(f"Observation/{oid}").status_code == 200


def test_a_clinician_records_a_consent_on_the_patients_behalf_and_it_applies_at_once(
    world: World,
) -> None:
    pid, oid = registered_patient_with_data(world)
    with as_clinician(world, "user/*.cruds") as doctor:
        assert doctor.get(f"Observation/{oid}").status_code == 200
        made = doctor.post("Consent", json=consent_body(pid, DENY_ALL))
        assert made.status_code == 201, made.text
        assert doctor.get(f"Observation/{oid}").status_code == 404
        found = doctor.get("Observation", params={"patient": pid, "_total": "accurate"})
        assert found.json()["total"] == 0
    with as_patient(world, pid) as me:
        mine = me.get("Consent", params={"patient": pid})
        assert [e["resource"]["id"] for e in mine.json().get("entry", [])] == [created_id(made)]


def test_a_care_relationship_follows_the_data_at_once(world: World) -> None:
    """An in-progress Encounter opens the record to the hospital's next request; finishing it
    closes it again, and a registration opens it (the relationships a server keeps between
    requests must move with every write of the data they come from)."""
    pid = world.patient(NHS_NUMBERS[1])
    obs = world.observation(pid, GP)
    token = world.issuer("user/*.rs", roles=("R8000",), organisation=HOSPITAL, subject="dr-ward")
    with httpx.Client(base_url=world.server.base + "/", timeout=30, headers=bearer(token)) as ward:
        assert ward.get(f"Observation/{obs}").status_code == 404
        assert ward.get("Observation", params={"patient": pid}).json().get("total") == 0
        encounter = world.encounter(pid, HOSPITAL)
        assert ward.get(f"Observation/{obs}").status_code == 200
        assert ward.get("Observation", params={"patient": pid}).json().get("total") == 1
        finished = world.writers[REGISTRY].get(f"Encounter/{encounter}").json()
        done = world.writers[REGISTRY].put(
            f"Encounter/{encounter}", json={**finished, "status": "finished"}
        )
        assert done.status_code == 200, done.text
        assert ward.get(f"Observation/{obs}").status_code == 404
        assert ward.get("Observation", params={"patient": pid}).json().get("total") == 0
        patient = world.writers[REGISTRY].get(f"Patient/{pid}").json()
        org = f"Organization/{world.organisation(HOSPITAL)}"
        moved = world.writers[REGISTRY].put(
            f"Patient/{pid}", json={**patient, "generalPractitioner": [{"reference": org}]}
        )
        assert moved.status_code == 200, moved.text
        assert ward.get(f"Observation/{obs}").status_code == 200
