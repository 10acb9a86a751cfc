"""Conditional create, update and delete on _id and identifier.

https://hl7.org/fhir/R4/http.html#ccreate, #cond-update, #cdelete
"""

from __future__ import annotations

import httpx

from tests.helpers import assert_outcome, created_id, patient

NHS = "https://fhir.nhs.uk/Id/nhs-number"


def _ident(value: str) -> list[dict[str, str]]:
    return [{"system": NHS, "value": value}]


def test_if_none_exist_creates_once_then_returns_the_match(client: httpx.Client) -> None:
    header = {"If-None-Exist": f"identifier={NHS}|9434765919"}
    first = client.post("Patient", json=patient(identifier=_ident("9434765919")), headers=header)
    assert first.status_code == 201
    second = client.post("Patient", json=patient(identifier=_ident("9434765919")), headers=header)
    assert second.status_code == 200
    assert created_id(second) == created_id(first)
    assert len(client.get("Patient/_history").json()["entry"]) == 1


def test_if_none_exist_with_several_matches_is_412(client: httpx.Client) -> None:
    for _ in range(2):
        client.post("Patient", json=patient(identifier=_ident("9434765919")))
    response = client.post(
        "Patient", json=patient(), headers={"If-None-Exist": "identifier=9434765919"}
    )
    assert_outcome(response, 412)


def test_conditional_update_creates_updates_or_refuses(client: httpx.Client) -> None:
    url = f"Patient?identifier={NHS}|9449306168"
    created = client.put(url, json=patient(identifier=_ident("9449306168")))
    assert created.status_code == 201
    pid = created_id(created)
    updated = client.put(url, json=patient(identifier=_ident("9449306168"), active=True))
    assert updated.status_code == 200
    assert created_id(updated) == pid
    assert updated.headers["etag"] == 'W/"2"'
    client.post("Patient", json=patient(identifier=_ident("9449306168")))
    assert_outcome(client.put(url, json=patient(identifier=_ident("9449306168"))), 412)


def test_conditional_update_by_id_and_system_only_token(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient(identifier=_ident("9434765919"))))
    by_id = client.put(f"Patient?_id={pid}", json=patient(gender="other"))
    assert by_id.status_code == 200
    assert client.get(f"Patient/{pid}").json()["gender"] == "other"
    by_system = client.put(f"Patient?identifier={NHS}|", json=patient(id=pid))
    assert by_system.status_code == 200


def test_conditional_delete_removes_the_single_match(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient(identifier=_ident("9434765919"))))
    response = client.delete(f"Patient?identifier={NHS}|9434765919")
    assert response.status_code == 200
    assert client.get(f"Patient/{pid}").status_code == 410
    nothing = client.delete(f"Patient?identifier={NHS}|9434765919")
    assert nothing.status_code == 200


def test_unknown_criteria_are_refused_not_ignored(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    assert_outcome(client.delete("Patient?nonsense=Smith"), 400)
    assert_outcome(client.delete("Patient?_count=1"), 400)
    assert client.get(f"Patient/{pid}").status_code == 200
    assert_outcome(client.put("Patient", json=patient()), 400)
