"""``Patient/$match`` over real HTTP. https://hl7.org/fhir/R4/patient-operation-match.html

By NHS number (``certain``), by demographics (scores and ``probable`` / ``possible`` grades,
:mod:`dhr.operations.match`), ``count``, ``onlyCertainMatches``, a missing ``resource`` (400),
and source records (tagged ``record-role|source-record``) never returned.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

from dhr.record.nhs_number import check_digit
from dhr.record.vocab import (
    MATCH_GRADE_EXTENSION,
    NHS_NUMBER_SYSTEM,
    RECORD_ROLE_SYSTEM,
    ROLE_MASTER,
    ROLE_SOURCE_RECORD,
)
from tests.conftest import LiveServer
from tests.helpers import TokenIssuer, assert_outcome, bearer, created_id


def nhs_number() -> str:
    """A random valid NHS number (Modulus 11) in the 9xx test range."""
    while True:
        first = "9" + "".join(random.choices("0123456789", k=8))
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def unique(prefix: str) -> str:
    return f"{prefix}{''.join(random.choices('abcdefghijklmnopqrstuvwxyz', k=10))}"


def person(
    family: str,
    given: str = "Ada",
    birth: str = "1961-07-14",
    gender: str = "female",
    postcode: str | None = "LS1 4AB",
    nhs: str | None = None,
    role: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "birthDate": birth,
        "gender": gender,
    }
    if postcode is not None:
        body["address"] = [{"line": ["1 High Street"], "postalCode": postcode}]
    if nhs is not None:
        body["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": nhs}]
    if role is not None:
        body["meta"] = {"tag": [{"system": RECORD_ROLE_SYSTEM, "code": role}]}
    return body


def store(client: httpx.Client, body: dict[str, Any]) -> str:
    return created_id(client.post("Patient", json=body))


def params(resource: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if resource is not None:
        parts.append({"name": "resource", "resource": resource})
    if "only_certain" in extra:
        parts.append({"name": "onlyCertainMatches", "valueBoolean": extra["only_certain"]})
    if "count" in extra:
        parts.append({"name": "count", "valueInteger": extra["count"]})
    return {"resourceType": "Parameters", "parameter": parts}


def matches(client: httpx.Client, body: dict[str, Any]) -> list[tuple[str, float, str]]:
    """``(id, score, grade)`` of each match, in answer order."""
    response = client.post("Patient/$match", json=body)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "searchset")
    out = []
    for entry in bundle.get("entry", []):
        search = entry["search"]
        if search["mode"] == "outcome":
            continue
        assert search["mode"] == "match"
        (ext,) = search["extension"]
        assert ext["url"] == MATCH_GRADE_EXTENSION
        assert entry["fullUrl"].endswith(f"Patient/{entry['resource']['id']}")
        out.append((entry["resource"]["id"], search["score"], ext["valueCode"]))
    assert bundle["total"] == len(out)
    return out


def test_an_nhs_number_match_is_certain(client: httpx.Client) -> None:
    number = nhs_number()
    wanted = store(client, person(unique("Mx"), nhs=number, role=ROLE_MASTER))
    store(client, person(unique("Other"), nhs=nhs_number()))
    # Only the NHS number is sent: nothing else agrees, yet it is certain.
    probe = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": number}],
    }
    assert matches(client, params(probe)) == [(wanted, 1.0, "certain")]


def test_a_different_valid_nhs_number_is_never_a_match(client: httpx.Client) -> None:
    family = unique("Twin")
    store(client, person(family, nhs=nhs_number()))
    # Every demographic agrees, but both carry valid NHS numbers that differ.
    assert matches(client, params(person(family, nhs=nhs_number()))) == []


def test_demographics_grade_certain_probable_and_possible(client: httpx.Client) -> None:
    family = unique("Demo")
    same = store(client, person(family, postcode="ls14ab"))  # postcode spelt differently
    probable = store(client, person(family, postcode="M1 1AA"))  # 25+15+30+10 = 80
    possible = store(client, person(family, given="Grace", birth="1950-01-01"))  # 25+10+20
    store(client, person(family, given="Grace", birth="1950-01-01", gender="male", postcode=None))
    found = matches(client, params(person(family)))
    # The fourth agrees on the family name only (0.25): not returned.
    assert found == [
        (same, 1.0, "certain"),
        (probable, 0.8, "probable"),
        (possible, 0.55, "possible"),
    ]


def test_probable_and_sorting_by_score(client: httpx.Client) -> None:
    family = unique("Prob")
    # family 25 + given 15 + birth 30 = 70: probable; + gender 10 = 80.
    eighty = store(client, person(family, postcode="B1 1BB"))
    seventy = store(client, person(family, gender="male", postcode="B1 1BB"))
    found = matches(client, params(person(family, postcode="ZZ9 9ZZ")))
    assert found == [(eighty, 0.8, "probable"), (seventy, 0.7, "probable")]


def test_a_match_by_postcode_and_birth_date_alone_finds_a_changed_surname(
    client: httpx.Client,
) -> None:
    postcode = f"Q{random.randrange(10)}{random.randrange(10)} {random.randrange(10)}QQ"
    married = store(client, person(unique("Before"), postcode=postcode, birth="1977-03-03"))
    probe = person(unique("After"), postcode=postcode.replace(" ", "").lower(), birth="1977-03-03")
    # given 15 + birth 30 + gender 10 + postcode 20 = 75
    assert matches(client, params(probe)) == [(married, 0.75, "probable")]


def test_count_and_only_certain_matches(client: httpx.Client) -> None:
    family = unique("Count")
    certain = store(client, person(family))
    for given in ("Bea", "Cal", "Dee"):
        store(client, person(family, given=given))  # 85: probable
    assert len(matches(client, params(person(family)))) == 4
    top = matches(client, params(person(family), count=2))
    assert [g for _, _, g in top] == ["certain", "probable"]
    assert top[0][0] == certain
    only = matches(client, params(person(family), only_certain=True))
    assert only == [(certain, 1.0, "certain")]
    none = matches(client, params(person(family, given="Zed", gender="other"), only_certain=True))
    assert none == []


def test_source_records_are_not_returned(client: httpx.Client) -> None:
    number = nhs_number()
    family = unique("Src")
    master = store(client, person(family, nhs=number, role=ROLE_MASTER))
    store(client, person(family, nhs=number, role=ROLE_SOURCE_RECORD))
    assert matches(client, params(person(family, nhs=number))) == [(master, 1.0, "certain")]
    no_number = person(family)
    assert [i for i, _, _ in matches(client, params(no_number))] == [master]


def test_candidates_are_only_what_the_token_may_search(
    client: httpx.Client, server: LiveServer, issue_token: TokenIssuer
) -> None:
    family = unique("Scope")
    mine = store(client, person(family))
    store(client, person(family, given="Other"))
    assert len(matches(client, params(person(family)))) == 2
    token = issue_token("patient/Patient.rs", patient=mine)
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token)) as http:
        assert matches(http, params(person(family))) == [(mine, 1.0, "certain")]
    reader = issue_token("system/Patient.r")
    with httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(reader)) as http:
        assert_outcome(http.post("Patient/$match", json=params(person(family))), 403)


def test_bad_requests_are_400(client: httpx.Client) -> None:
    assert_outcome(client.post("Patient/$match", json=params(None, count=3)), 400)
    assert_outcome(
        client.post("Patient/$match", json=person(unique("Bare"))), 400
    )  # not Parameters
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    assert_outcome(client.post("Patient/$match", json=params(observation)), 400)
    assert_outcome(client.post("Patient/$match", json=params(person("X"), count=0)), 400)
    odd = params(person("X"))
    odd["parameter"].append({"name": "mode", "valueCode": "x"})
    assert_outcome(client.post("Patient/$match", json=odd), 400)
    assert client.get("Patient/$match").status_code == 405


def test_an_invalid_nhs_number_in_the_input_is_422(client: httpx.Client) -> None:
    response = client.post("Patient/$match", json=params(person("X", nhs="9434765918")))
    assert_outcome(response, 422, expression="Patient.identifier[0].value")


def test_nothing_to_match_on_is_an_empty_searchset_with_advice(client: httpx.Client) -> None:
    response = client.post("Patient/$match", json=params({"resourceType": "Patient"}))
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert [e["search"]["mode"] for e in entries] == ["outcome"]
