"""Chained and reverse-chained searches cannot match through what the consent policy hides
(issue 6 "chained and _has searches (no leak through them)"; docs/adr/0010).

The world: patient Paula is registered with practice B (its Organization carries ODS code B).
Hospital A recorded an Observation about her (so A sees that Observation: it originated it) but
A has no care relationship with Paula, so A may not see her Patient resource. Practice B sees
Paula, and Paula's mental-health Observation recorded by A is hidden from B (a sensitive label,
no consent).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.helpers import BackendClient, TokenIssuer, bearer, created_id

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
HOSPITAL, PRACTICE = "RAA01", "B00002"
MH = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "MH"}


@pytest.fixture
def world(policy_server: LiveServer, engine: Engine) -> Iterator[dict[str, str]]:
    settings = policy_server.settings
    practice = BackendClient(engine, settings, "system/*.cruds", organisation=PRACTICE)
    hospital = BackendClient(engine, settings, "system/*.cruds", organisation=HOSPITAL)
    base = policy_server.base + "/"
    with (
        httpx.Client(base_url=base, auth=practice, timeout=30) as b,
        httpx.Client(base_url=base, auth=hospital, timeout=30) as a,
    ):
        org = created_id(
            b.post(
                "Organization",
                json={
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS, "value": PRACTICE}],
                },
            )
        )
        paula = created_id(
            b.post(
                "Patient",
                json={
                    "resourceType": "Patient",
                    "name": [{"family": "Quill", "given": ["Paula"]}],
                    "managingOrganization": {"reference": f"Organization/{org}"},
                },
            )
        )
        code = {"coding": [{"system": "http://loinc.org", "code": "44249-1"}]}
        obs = {
            "resourceType": "Observation",
            "status": "final",
            "code": code,
            "subject": {"reference": f"Patient/{paula}"},
        }
        plain = created_id(a.post("Observation", json=obs))
        labelled = created_id(a.post("Observation", json={**obs, "meta": {"security": [MH]}}))
        yield {"paula": paula, "plain": plain, "labelled": labelled}


def _ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {
        e["resource"]["id"]
        for e in response.json().get("entry", [])
        if e.get("search", {}).get("mode") == "match"
    }


def _reader(server: LiveServer, organisation: str) -> dict[str, str]:
    token = TokenIssuer(server.app.state.auth)(
        "user/*.rs", roles=("R8000",), organisation=organisation, subject=f"dr-{organisation}"
    )
    return bearer(token)


def test_a_chain_does_not_reveal_a_patient_the_searcher_may_not_see(
    policy_server: LiveServer, world: dict[str, str]
) -> None:
    hospital = _reader(policy_server, HOSPITAL)
    with httpx.Client(base_url=policy_server.base + "/", timeout=30, headers=hospital) as http:
        # The hospital sees its own Observations about Paula...
        assert _ids(http.get("Observation", params={"subject": f"Patient/{world['paula']}"})) == {
            world["plain"],
            world["labelled"],
        }
        # ...but not Paula, so searching them by her name must not match (it would tell the
        # hospital her name).
        assert http.get(f"Patient/{world['paula']}").status_code == 404
        chained = http.get("Observation", params={"subject:Patient.name": "Quill"})
        assert _ids(chained) == set()
        assert (
            http.get(
                "Observation", params={"subject:Patient.name": "Quill", "_summary": "count"}
            ).json()["total"]
            == 0
        )


def test_has_does_not_match_through_hidden_data(
    policy_server: LiveServer, world: dict[str, str]
) -> None:
    practice = _reader(policy_server, PRACTICE)
    with httpx.Client(base_url=policy_server.base + "/", timeout=30, headers=practice) as http:
        # The practice sees Paula and the hospital's plain Observation, not the labelled one.
        seen = _ids(http.get("Observation", params={"subject": f"Patient/{world['paula']}"}))
        assert seen == {world["plain"]}
        by_plain = http.get("Patient", params={"_has:Observation:subject:_id": world["plain"]})
        assert _ids(by_plain) == {world["paula"]}
        by_hidden = http.get("Patient", params={"_has:Observation:subject:_id": world["labelled"]})
        assert _ids(by_hidden) == set()
