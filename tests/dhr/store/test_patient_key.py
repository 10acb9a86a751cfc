"""Every resource row names the Patient whose record it belongs to (ARCHITECTURE.md "Storage").

The key follows the Patient compartment (https://hl7.org/fhir/R4/compartmentdefinition-patient.html)
through every write: create (alone and in a transaction's batch), update, delete. A resource of
several Patients, or naming one by an absolute URL, says "several" and the consent decision reads
its references in full.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select

from dhr.search.extract import extract
from dhr.store.db import unit_of_work
from dhr.store.models import ResourceRow
from dhr.store.patient_key import SEVERAL, patient_key
from dhr.store.repository import ResourceRepository


def key_of(res_type: str, res_id: str, body: dict[str, Any]) -> str | None:
    return patient_key(res_type, res_id, extract(res_type, {"resourceType": res_type, **body}))


def observation(**refs: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    return {**body, **refs}


def test_an_observation_belongs_to_its_subject() -> None:
    assert key_of("Observation", "o", {"subject": {"reference": "Patient/p1"}}) == "p1"


def test_a_patient_belongs_to_itself() -> None:
    assert key_of("Patient", "p1", {"name": [{"family": "Quill"}]}) == "p1"
    assert key_of("Patient", "p1", {"link": [{"other": {"reference": "Patient/p1"}}]}) == "p1"


def test_a_patient_linked_to_another_belongs_to_several() -> None:
    link = {"link": [{"other": {"reference": "Patient/master"}, "type": "replaced-by"}]}
    assert key_of("Patient", "p1", link) == SEVERAL


def test_two_patients_of_one_resource_give_several() -> None:
    refs = {"subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Patient/p2"}]}
    assert key_of("Observation", "o", refs) == SEVERAL
    same = {"subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Patient/p1"}]}
    assert key_of("Observation", "o", same) == "p1"


def test_a_patient_named_by_an_absolute_url_gives_several() -> None:
    # Whether http://elsewhere/... is this server is for the decision to judge, with its base.
    refs = {"subject": {"reference": "http://elsewhere.example/fhir/Patient/p1"}}
    assert key_of("Observation", "o", refs) == SEVERAL


def test_no_patient_reference_is_not_patient_data() -> None:
    assert key_of("Observation", "o", {"subject": {"reference": "Group/g1"}}) is None
    assert key_of("Observation", "o", {"performer": [{"reference": "Practitioner/d"}]}) is None
    assert key_of("Organization", "org", {"name": "Practice"}) is None


def stored_key(engine: Engine, res_type: str, res_id: str) -> str | None:
    with unit_of_work(engine, write=False) as conn:
        return conn.execute(
            select(ResourceRow.patient_key).where(
                ResourceRow.res_type == res_type, ResourceRow.res_id == res_id
            )
        ).scalar_one()


def test_every_write_path_keeps_the_key(engine: Engine) -> None:
    tag = uuid.uuid4().hex[:10]
    alone, many, other = f"pk-a-{tag}", f"pk-m-{tag}", f"pk-o-{tag}"
    subject = {"subject": {"reference": f"Patient/{alone}"}}
    with unit_of_work(engine, write=True) as conn:
        repo = ResourceRepository(conn)
        repo.create("Patient", alone, {"resourceType": "Patient"})
        repo.create("Observation", f"{alone}-obs", observation(**subject))
        # a transaction's many creates take the batch path on both engines
        created = repo.create_many(
            [
                ("Observation", f"{many}-1", observation(**subject)),
                ("Observation", f"{many}-2", observation(subject={"reference": "Group/g"})),
                ("Organization", f"{many}-org", {"resourceType": "Organization"}),
            ]
        )
    # what the audit names as each new resource's patient, without reading it back
    assert [v.patient for v in created] == [alone, None, None]
    assert stored_key(engine, "Patient", alone) == alone
    assert stored_key(engine, "Observation", f"{alone}-obs") == alone
    assert stored_key(engine, "Observation", f"{many}-1") == alone
    assert stored_key(engine, "Observation", f"{many}-2") is None
    assert stored_key(engine, "Organization", f"{many}-org") is None

    # an update that moves the Observation to another Patient moves its key; create-on-update
    with unit_of_work(engine, write=True) as conn:
        repo = ResourceRepository(conn)
        repo.put(
            "Observation", f"{alone}-obs", observation(subject={"reference": f"Patient/{other}"})
        )
        repo.put(
            "Observation", f"{other}-new", observation(subject={"reference": f"Patient/{other}"})
        )
    assert stored_key(engine, "Observation", f"{alone}-obs") == other
    assert stored_key(engine, "Observation", f"{other}-new") == other

    # a deletion has no references left: "several", judged in full as before the key existed
    with unit_of_work(engine, write=True) as conn:
        ResourceRepository(conn).delete("Observation", f"{alone}-obs")
    assert stored_key(engine, "Observation", f"{alone}-obs") == SEVERAL
