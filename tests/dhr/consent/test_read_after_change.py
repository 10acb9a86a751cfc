"""A reader's next read is judged by what changed since its last one, at once.

A read under consent runs as one statement with the policy the same requester had last,
together with the request state (the newest Consent, the joint-controller arrangement, the care
relationships in the data, the reader's claims in force); the answer stands only if that state is
the one the policy was built for (ADR 0010). These rows change each part of the state between two
reads by the same reader, with the same token, and expect the second read to follow the change.
"""

from __future__ import annotations

import uuid

from tests.dhr.consent.conftest import (
    ELSEWHERE,
    GP,
    HOSPITAL,
    NHS_NUMBERS,
    REGISTRY,
    World,
    consent_body,
    ods_actor,
)


def test_a_consent_denying_the_readers_practice_hides_what_it_read_a_moment_ago(
    world: World,
) -> None:
    pid = world.patient(NHS_NUMBERS[0], registered_with=GP)
    obs = world.observation(pid, writer=HOSPITAL)
    with world.reader(GP) as gp:
        assert gp.get(f"Observation/{obs}").status_code == 200
        assert gp.get(f"Observation/{obs}").status_code == 200
        consent = world.consent(pid, {"type": "deny", "actor": [ods_actor(GP)]})
        assert gp.get(f"Observation/{obs}").status_code == 404
        withdrawn = {**consent_body(pid, {"type": "deny"}), "id": consent, "status": "inactive"}
        put = world.writers[REGISTRY].put(f"Consent/{consent}", json=withdrawn)
        assert put.status_code == 200, put.text
        assert gp.get(f"Observation/{obs}").status_code == 200


def test_a_new_care_relationship_opens_the_record_to_the_next_read(world: World) -> None:
    pid = world.patient(NHS_NUMBERS[0], registered_with=GP)
    obs = world.observation(pid, writer=GP)
    with world.reader(HOSPITAL) as hospital:
        assert hospital.get(f"Observation/{obs}").status_code == 404
        assert hospital.get(f"Observation/{obs}").status_code == 404
        enc = world.encounter(pid, provider=HOSPITAL)
        assert hospital.get(f"Observation/{obs}").status_code == 200
        # and the end of the encounter closes it again
        body = world.writers[REGISTRY].get(f"Encounter/{enc}").json()
        put = world.writers[REGISTRY].put(f"Encounter/{enc}", json={**body, "status": "finished"})
        assert put.status_code == 200, put.text
        assert hospital.get(f"Observation/{obs}").status_code == 404


def test_a_break_glass_declared_between_two_reads_opens_the_second(world: World) -> None:
    pid = world.patient(NHS_NUMBERS[0], registered_with=GP)
    obs = world.observation(pid, writer=GP)
    subject = f"user-{uuid.uuid4().hex[:8]}"
    with world.reader(ELSEWHERE, subject=subject) as elsewhere:
        assert elsewhere.get(f"Observation/{obs}").status_code == 404
        assert elsewhere.get(f"Observation/{obs}").status_code == 404
        world.declare_break_glass(subject, pid, ELSEWHERE)
        assert elsewhere.get(f"Observation/{obs}").status_code == 200


def test_a_second_patient_read_right_after_the_first_is_judged_on_its_own(world: World) -> None:
    mine = world.patient(NHS_NUMBERS[0], registered_with=GP)
    theirs = world.patient(NHS_NUMBERS[1], registered_with=HOSPITAL)
    seen, unseen = world.observation(mine, writer=GP), world.observation(theirs, writer=HOSPITAL)
    with world.reader(GP) as gp:
        for _ in range(2):
            assert gp.get(f"Observation/{seen}").status_code == 200
            assert gp.get(f"Observation/{unseen}").status_code == 404
            assert gp.get(f"Observation/{uuid.uuid4()}").status_code == 404
