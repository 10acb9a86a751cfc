"""``patient/`` scopes: the launch patient's compartment and nothing else, on every path.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
"If the app has any patient-level scopes, they will be scoped to Patient 123". The compartment is
https://hl7.org/fhir/R4/compartmentdefinition-patient.html. A resource outside it answers 404
(its existence is not revealed); searches, includes, ``$everything`` and history are restricted
in SQL, so totals are true; writes must land inside the compartment (else 403).
"""

from __future__ import annotations

import httpx

from tests.dhr.access.conftest import Connect, World, ids_of, observation
from tests.helpers import assert_outcome, created_id

READ = "patient/*.rs"


def test_reading_another_patients_observation_is_404_and_ones_own_is_200(
    world: World, connect: Connect
) -> None:
    alice = connect(READ, patient=world.alice)
    assert alice.get(f"Observation/{world.alice_lab}").status_code == 200
    assert alice.get(f"Patient/{world.alice}").status_code == 200
    assert_outcome(alice.get(f"Observation/{world.bob_lab}"), 404, code="not-found")
    assert_outcome(alice.get(f"Patient/{world.bob}"), 404, code="not-found")
    assert_outcome(alice.get(f"Observation/{world.bob_lab}/_history/1"), 404)
    # Outside every Patient compartment: never visible through patient/ scopes.
    assert_outcome(alice.get(f"Practitioner/{world.practitioner}"), 404)


def test_an_unknown_id_and_another_patients_id_look_the_same(
    world: World, connect: Connect
) -> None:
    alice = connect(READ, patient=world.alice)
    other = alice.get(f"Observation/{world.bob_lab}").json()
    unknown = alice.get("Observation/no-such-id").json()
    assert other["issue"][0]["code"] == unknown["issue"][0]["code"] == "not-found"


def test_search_sees_only_the_own_compartment_with_a_true_total(
    world: World, connect: Connect
) -> None:
    alice = connect(READ, patient=world.alice)
    bundle = alice.get("Observation", params={"_count": "1"}).json()
    assert bundle["total"] == 2
    seen = ids_of(bundle)
    following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
    assert following
    seen |= ids_of(alice.get(following[0]).json())
    assert seen == {f"Observation/{world.alice_lab}", f"Observation/{world.alice_vitals}"}
    patients = alice.get("Patient").json()
    assert patients["total"] == 1
    assert ids_of(patients) == {f"Patient/{world.alice}"}
    # Asking for Bob explicitly finds nothing either.
    assert alice.get("Observation", params={"subject": f"Patient/{world.bob}"}).json()["total"] == 0
    assert alice.get(f"Patient/{world.bob}/Observation").json()["total"] == 0


def test_include_and_revinclude_do_not_leak_another_patients_data(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    params = {"_include": "Observation:derived-from", "_id": world.alice_lab}
    # The system client sees Bob's result through Alice's derivedFrom reference...
    everything = client.get("Observation", params=params).json()
    assert f"Observation/{world.bob_lab}" in ids_of(everything, "include")
    # ...Alice's app does not.
    alice = connect(READ, patient=world.alice)
    bundle = alice.get("Observation", params=params).json()
    assert ids_of(bundle) == {f"Observation/{world.alice_lab}"}
    assert ids_of(bundle, "include") == set()
    # _revinclude from a resource outside the compartment, with a user/ scope on it.
    mixed = connect("user/Practitioner.rs patient/Observation.rs", patient=world.alice)
    rev = mixed.get(
        "Practitioner",
        params={"_id": world.practitioner, "_revinclude": "Observation:performer"},
    ).json()
    assert ids_of(rev) == {f"Practitioner/{world.practitioner}"}
    assert ids_of(rev, "include") == {
        f"Observation/{world.alice_lab}",
        f"Observation/{world.alice_vitals}",
    }


def test_everything_returns_only_what_the_token_may_read(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    full = ids_of(client.get(f"Patient/{world.alice}/$everything").json(), None)
    assert f"Observation/{world.bob_lab}" in full
    assert f"Practitioner/{world.practitioner}" in full
    alice = connect(READ, patient=world.alice)
    bundle = alice.get(f"Patient/{world.alice}/$everything").json()
    assert ids_of(bundle, None) == {
        f"Patient/{world.alice}",
        f"Observation/{world.alice_lab}",
        f"Observation/{world.alice_vitals}",
    }
    assert bundle["total"] == 3
    paged = alice.get(f"Patient/{world.alice}/$everything", params={"_count": "1"}).json()
    assert paged["total"] == 3
    assert_outcome(alice.get(f"Patient/{world.bob}/$everything"), 404)
    type_level = alice.get("Patient/$everything").json()
    assert ids_of(type_level, None) == ids_of(bundle, None)


def test_history_is_filtered_to_the_compartment(world: World, connect: Connect) -> None:
    alice = connect(READ, patient=world.alice)
    versions = alice.get("Observation/_history").json()
    assert ids_of(versions, None) == {
        f"Observation/{world.alice_lab}",
        f"Observation/{world.alice_vitals}",
    }
    system_wide = ids_of(alice.get("_history").json(), None)
    assert system_wide == {
        f"Patient/{world.alice}",
        f"Observation/{world.alice_lab}",
        f"Observation/{world.alice_vitals}",
    }
    assert len(alice.get(f"Observation/{world.alice_lab}/_history").json()["entry"]) == 1
    assert_outcome(alice.get(f"Observation/{world.bob_lab}/_history"), 404)


def test_each_version_is_judged_by_its_own_content(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    moved = observation(f"Patient/{world.bob}", "vital-signs", id=world.alice_vitals)
    moved.pop("performer")
    assert client.put(f"Observation/{world.alice_vitals}", json=moved).status_code == 200
    alice = connect(READ, patient=world.alice)
    bob = connect(READ, patient=world.bob)
    assert_outcome(alice.get(f"Observation/{world.alice_vitals}"), 404)
    assert bob.get(f"Observation/{world.alice_vitals}").status_code == 200
    # Version 1 was about Alice: Bob may not read it, whoever owns the resource now.
    assert_outcome(bob.get(f"Observation/{world.alice_vitals}/_history/1"), 404)
    assert bob.get(f"Observation/{world.alice_vitals}/_history/2").status_code == 200
    history = bob.get(f"Observation/{world.alice_vitals}/_history").json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2"]


def test_writes_must_land_inside_the_compartment(world: World, connect: Connect) -> None:
    alice = connect("patient/Observation.cruds", patient=world.alice)
    mine = alice.post("Observation", json=observation(f"Patient/{world.alice}", "survey"))
    assert mine.status_code == 201, mine.text
    new_id = created_id(mine)
    assert_outcome(
        alice.post("Observation", json=observation(f"Patient/{world.bob}", "survey")),
        403,
        code="forbidden",
    )
    # Moving her own Observation to Bob, or taking over Bob's, is refused; nothing changes.
    moved = observation(f"Patient/{world.bob}", "survey", id=new_id)
    assert_outcome(alice.put(f"Observation/{new_id}", json=moved), 403, code="forbidden")
    stolen = observation(f"Patient/{world.alice}", "survey", id=world.bob_lab)
    assert_outcome(alice.put(f"Observation/{world.bob_lab}", json=stolen), 403, code="forbidden")
    patch = [{"op": "replace", "path": "/status", "value": "amended"}]
    headers = {"content-type": "application/json-patch+json"}
    assert_outcome(alice.patch(f"Observation/{world.bob_lab}", json=patch, headers=headers), 403)
    assert_outcome(alice.delete(f"Observation/{world.bob_lab}"), 403, code="forbidden")
    assert alice.patch(f"Observation/{new_id}", json=patch, headers=headers).status_code == 200
    assert alice.delete(f"Observation/{new_id}").status_code == 200
    reader = connect(READ, patient=world.bob)
    assert reader.get(f"Observation/{world.bob_lab}").json()["status"] == "final"


def test_patient_scopes_without_a_patient_context_are_refused(
    world: World, connect: Connect
) -> None:
    lost = connect(READ)
    body = assert_outcome(lost.get(f"Observation/{world.alice_lab}"), 403, code="forbidden")
    assert "patient context" in body["issue"][0]["diagnostics"]
    assert_outcome(lost.get("Observation"), 403, code="forbidden")


def test_a_reference_to_another_servers_patient_is_not_in_the_record(
    world: World, connect: Connect, client: httpx.Client
) -> None:
    foreign = observation(f"http://elsewhere.example/fhir/Patient/{world.alice}", "laboratory")
    foreign.pop("performer")
    foreign_id = created_id(client.post("Observation", json=foreign))
    alice = connect(READ, patient=world.alice)
    assert_outcome(alice.get(f"Observation/{foreign_id}"), 404)
    assert alice.get("Observation").json()["total"] == 2
    local = observation(f"{client.base_url}Patient/{world.alice}", "laboratory")
    local.pop("performer")
    local_id = created_id(client.post("Observation", json=local))
    assert alice.get(f"Observation/{local_id}").status_code == 200
    assert alice.get("Observation").json()["total"] == 3
