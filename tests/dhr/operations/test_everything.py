"""``Patient/[id]/$everything`` and ``Patient/$everything``, as
https://hl7.org/fhir/R4/patient-operation-everything.html words them: the Patient, everything
in its compartment and what those refer to; ``_since``, ``_type`` and ``_count`` paging.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine

from tests.dhr.search.test_include import modes, practitioner, ref, statements, transaction
from tests.helpers import assert_outcome, observation, patient


def record(client: httpx.Client) -> dict[str, Any]:
    """A patient with eight resources in its compartment, a Practitioner, an Organization and a
    Medication they refer to, and another patient's observation."""
    org = {"resourceType": "Organization", "name": "Clinic"}
    medication = {"resourceType": "Medication", "code": {"text": "aspirin"}}
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": ref(0)},
        "medicationReference": {"reference": ref(3)},
    }
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": ref(0)},
        "participant": [{"individual": {"reference": ref(1)}}],
    }
    group = {"resourceType": "Group", "type": "person", "actual": True}
    ids = transaction(
        client,
        patient(managingOrganization={"reference": ref(2)}),  # 0
        practitioner(),  # 1
        org,  # 2
        medication,  # 3
        request,  # 4
        encounter,  # 5
        *(observation(ref(0), performer=[{"reference": ref(1)}]) for _ in range(5)),  # 6-10
        observation(ref(12), performer=[{"reference": ref(0)}]),  # 11: performer only
        group,  # 12
        patient(),  # 13: someone else
        observation(ref(13)),  # 14: theirs
    )
    types = ["Patient", "Practitioner", "Organization", "Medication", "MedicationRequest"]
    types += ["Encounter", *["Observation"] * 6, "Group", "Patient", "Observation"]
    names = [f"{t}/{i}" for t, i in zip(types, ids, strict=True)]
    return {
        "pid": ids[0],
        "members": set(names[:1] + names[4:12]),
        "referenced": set(names[1:4] + names[12:13]),
        "other": set(names[13:]),
    }


def pages(client: httpx.Client, url: str, between: Any = None) -> list[list[tuple[str, str]]]:
    out = []
    next_url: str | None = url
    while next_url:
        response = client.get(next_url)
        out.append(modes(response))
        links = {x["relation"]: x["url"] for x in response.json()["link"]}
        next_url = links.get("next")
        if between is not None:
            between()
            between = None
    return out


def test_everything_is_the_patient_its_compartment_and_what_they_refer_to(
    client: httpx.Client,
) -> None:
    data = record(client)
    response = client.get(f"Patient/{data['pid']}/$everything")
    body = response.json()
    got = modes(response)
    assert {n for m, n in got if m == "match"} == data["members"]
    assert {n for m, n in got if m == "include"} == data["referenced"]
    assert body["type"] == "searchset"
    assert body["total"] == len(got) == len(data["members"]) + len(data["referenced"])


def test_everything_pages_have_no_duplicates_while_others_write(client: httpx.Client) -> None:
    data = record(client)
    pid = data["pid"]
    late: list[str] = []

    def write() -> None:
        made = client.post("Observation", json=observation(f"Patient/{pid}"))
        assert made.status_code == 201
        late.append(f"Observation/{made.json()['id']}")

    got = pages(client, f"Patient/{pid}/$everything?_count=2", write)
    assert all(len(page) <= 2 for page in got)
    assert len(got) >= 7
    names = [n for page in got for _, n in page]
    assert len(names) == len(set(names))
    assert set(names) == data["members"] | data["referenced"] | set(late)


def test_everything_since_and_type(client: httpx.Client) -> None:
    data = record(client)
    pid = data["pid"]
    only = client.get(f"Patient/{pid}/$everything", params={"_type": "Observation,Practitioner"})
    kinds = {n.split("/")[0] for _, n in modes(only)}
    assert kinds == {"Observation", "Practitioner"}
    assert len(modes(only)) == 7
    first = modes(client.get(f"Patient/{pid}/$everything"))
    assert first
    stamp = client.get(f"Patient/{pid}").json()["meta"]["lastUpdated"]
    later = client.put(f"Patient/{pid}", json=patient(id=pid)).json()["meta"]["lastUpdated"]
    assert later > stamp
    since = modes(client.get(f"Patient/{pid}/$everything", params={"_since": later}))
    assert since == [("match", f"Patient/{pid}")]
    assert_outcome(client.get(f"Patient/{pid}/$everything", params={"_type": "Nope"}), 400)


def test_everything_on_an_unknown_or_deleted_patient(client: httpx.Client) -> None:
    assert_outcome(client.get("Patient/nobody/$everything"), 404)
    pid = transaction(client, patient())[0]
    assert client.delete(f"Patient/{pid}").status_code in (200, 204)
    assert_outcome(client.get(f"Patient/{pid}/$everything"), 410)
    assert_outcome(client.post(f"Patient/{pid}/$everything", json={}), 405)
    assert_outcome(client.get("Observation/x/$everything"), 404)


def test_type_level_everything_covers_every_patient(client: httpx.Client) -> None:
    data = record(client)
    got = {n for page in pages(client, "Patient/$everything?_count=3") for _, n in page}
    assert got == data["members"] | data["referenced"] | data["other"]


def test_everything_statements_do_not_grow_with_the_page(
    client: httpx.Client, engine: Engine
) -> None:
    pid = record(client)["pid"]
    counts = {}
    for size in (2, 10):
        with statements(engine) as seen:
            response = client.get(f"Patient/{pid}/$everything", params={"_count": str(size)})
        assert len(modes(response)) == size
        counts[size] = len(seen)
    assert counts[2] == counts[10] <= 3, counts
