"""Compartment search, as https://hl7.org/fhir/R4/http.html#search and
https://hl7.org/fhir/R4/compartmentdefinition.html word it: ``GET Patient/123/Observation?...``
is the Observation search restricted to resources that the Patient CompartmentDefinition
(https://hl7.org/fhir/R4/patient.html#compartment) puts in Patient/123's compartment.
"""

from __future__ import annotations

import httpx

from tests.dhr.search.test_include import included, matched, ref, transaction
from tests.helpers import assert_outcome, observation, patient


def test_compartment_search_keeps_resources_referring_to_the_patient(
    client: httpx.Client,
) -> None:
    group = {"resourceType": "Group", "type": "person", "actual": True}
    p1, p2, _, mine, theirs, performed = transaction(
        client,
        patient(),
        patient(),
        group,
        observation(ref(0)),
        observation(ref(1)),
        observation(ref(2), performer=[{"reference": ref(0)}]),  # compartment param: performer
    )
    got = set(matched(client.get(f"Patient/{p1}/Observation")))
    assert got == {f"Observation/{mine}", f"Observation/{performed}"}
    assert matched(client.get(f"Patient/{p2}/Observation")) == [f"Observation/{theirs}"]
    assert matched(client.get("Patient/nobody/Observation")) == []


def test_compartment_search_combines_with_other_parameters(client: httpx.Client) -> None:
    other_code = {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]}
    pid, heart, _, _ = transaction(
        client,
        patient(),
        observation(ref(0)),
        observation(ref(0), code=other_code),
        observation("Patient/elsewhere"),
    )
    response = client.get(f"Patient/{pid}/Observation", params={"code": "8867-4"})
    assert matched(response) == [f"Observation/{heart}"]
    self_link = response.json()["link"][0]["url"]
    assert f"/Patient/{pid}/Observation?code=8867-4" in self_link


def test_compartment_uses_each_types_own_parameters(client: httpx.Client) -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": ref(0)},
    }
    pid, enc = transaction(client, patient(), encounter)
    assert matched(client.get(f"Patient/{pid}/Encounter")) == [f"Encounter/{enc}"]
    assert matched(client.get(f"Patient/{pid}/Patient")) == [f"Patient/{pid}"]


def test_compartment_search_pages_and_includes(client: httpx.Client) -> None:
    pid, *obs = transaction(client, patient(), *(observation(ref(0)) for _ in range(3)))
    first = client.get(
        f"Patient/{pid}/Observation", params={"_count": "2", "_include": "Observation:subject"}
    )
    assert len(matched(first)) == 2
    assert included(first) == [f"Patient/{pid}"]
    assert first.json()["total"] == 3
    next_url = next(x["url"] for x in first.json()["link"] if x["relation"] == "next")
    assert f"/Patient/{pid}/Observation?" in next_url
    second = client.get(next_url)
    assert set(matched(first) + matched(second)) == {f"Observation/{o}" for o in obs}


def test_unknown_compartments_and_non_member_types_are_400(client: httpx.Client) -> None:
    assert_outcome(client.get("Practitioner/1/Observation"), 400)
    assert_outcome(client.get("Patient/1/Medication"), 400)
    response = client.get("Patient/1/NotAType")
    assert 400 <= response.status_code < 500
