"""``POST /fhir/$import`` over real HTTP as a registered source (ARCHITECTURE.md "The unified
record"; synchronous NDJSON-in-the-body variant of
https://github.com/smart-on-fhir/bulk-import/blob/master/import.md): the source's local ids and
references (also to lines further down) are mapped, a re-import changes nothing, one bad line
writes nothing and every bad line is named, only a source may call it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from dhr.errors import FhirError, Issue
from dhr.operations.bulk_import import _at_line, parse_lines, split_lines
from tests.dhr.record.sources_fixture import (
    NHS,
    ROLE,
    Feed,
    feeds,
    invalid_nhs_number,
    nhs_number,
    observation_entry,
    patient_entry,
    source_backends,
)

__all__ = ["feeds", "source_backends"]  # fixtures

NDJSON = {"Content-Type": "application/fhir+ndjson"}


def ndjson(*rows: dict[str, Any] | str) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode() + b"\n"


def patient(local_id: str, nhs: str | None) -> dict[str, Any]:
    return dict(patient_entry(local_id, nhs)["resource"])


def observation(local_id: str, patient_ref: str, value: float = 120.0) -> dict[str, Any]:
    return dict(observation_entry(local_id, patient_ref, value)["resource"])


def post(feed: Feed, body: bytes, **headers: str) -> httpx.Response:
    return feed.http.post("$import", content=body, headers={**NDJSON, **headers})


def params(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters", body
    out: dict[str, Any] = {"provenance": []}
    for part in body["parameter"]:
        if part["name"] == "provenance":
            out["provenance"].append(part["valueReference"]["reference"])
        elif part["name"] == "outcome":
            out["outcome"] = part["resource"]
        else:
            out[part["name"]] = part["valueInteger"]
    return out


def master(client: httpx.Client, nhs: str) -> dict[str, Any]:
    found = client.get("Patient", params={"identifier": f"{NHS}|{nhs}", "_tag": f"{ROLE}|master"})
    entries = found.json().get("entry", [])
    assert len(entries) == 1, found.text
    return dict(entries[0]["resource"])


def total(client: httpx.Client, res_type: str) -> int:
    got = client.get(res_type, params={"_summary": "count"})
    assert got.status_code == 200, got.text
    return int(got.json()["total"])


def test_import_maps_local_ids_and_references_to_later_lines(
    client: httpx.Client, feeds: dict[str, Feed], engine: Engine
) -> None:
    emis = feeds["emis"]
    nhs_a, nhs_b = nhs_number(), nhs_number()
    body = ndjson(
        observation("o-1", "Patient/p-a", 120),  # before the Patient it is about
        observation("o-2", "Patient/p-b", 135),
        "",
        patient("p-a", nhs_a),
        patient("p-b", nhs_b),
    )
    got = params(post(emis, body))
    assert (got["total"], got["created"], got["updated"], got["unchanged"]) == (4, 4, 0, 0)
    assert got["provenance"], got
    diagnostics = got["outcome"]["issue"][0]["diagnostics"]
    assert diagnostics.startswith("4 resources: 4 created, 0 updated, 0 unchanged, 0 deleted;")
    for nhs, value in ((nhs_a, 120), (nhs_b, 135)):
        person = master(client, nhs)
        found = client.get("Observation", params={"subject": f"Patient/{person['id']}"})
        observations = [e["resource"] for e in found.json()["entry"]]
        assert [o["valueQuantity"]["value"] for o in observations] == [value]
        assert observations[0]["meta"]["source"] == "urn:dhr:source:test-emis"
    provenance = client.get(got["provenance"][0])
    assert provenance.status_code == 200, provenance.text
    assert "$import" in json.dumps(provenance.json()["entity"])
    # Audited like any write: AuditEvents of the source's client name the patients touched.
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT patient FROM audit_event WHERE client_id = :c AND outcome = '0'"),
            {"c": emis.source.client_id},
        ).all()
    audited = {r[0] for r in rows}
    assert {master(client, nhs_a)["id"], master(client, nhs_b)["id"]} <= audited


def test_reimport_changes_nothing(client: httpx.Client, feeds: dict[str, Feed]) -> None:
    emis = feeds["emis"]
    body = ndjson(observation("o-9", "Patient/p-9"), patient("p-9", nhs_number()))
    assert params(post(emis, body))["created"] == 2
    history = len(client.get("_history", params={"_count": 1000}).json()["entry"])
    provenances = total(client, "Provenance")
    again = post(emis, body, Prefer="return=OperationOutcome")
    assert again.status_code == 200, again.text
    issue = again.json()["issue"][0]
    assert issue["severity"] == "information"
    assert issue["diagnostics"] == (
        "2 resources: 0 created, 0 updated, 2 unchanged, 0 deleted; "
        "Provenance: none (nothing changed)"
    )
    assert len(client.get("_history", params={"_count": 1000}).json()["entry"]) == history
    assert total(client, "Provenance") == provenances
    assert total(client, "Observation") == 1


def test_bad_lines_are_all_named_and_nothing_is_written(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    body = ndjson(
        patient("p-1", nhs_number()),
        "{not json",
        observation("o-1", "Patient/p-1"),
        {"resourceType": "Unicorn", "id": "u"},
        {"resourceType": "Observation", "id": "o-2", "status": "final", "colour": "red"},
        "[1, 2]",
        patient("p-1", nhs_number()),
    )
    response = post(feeds["emis"], body)
    assert response.status_code == 400, response.text
    issues = response.json()["issue"]
    assert "5 of 7 lines are not valid; nothing was imported" in issues[0]["diagnostics"]
    named = {i["expression"][0].split(".")[0] for i in issues[1:]}
    assert named == {"line[2]", "line[4]", "line[5]", "line[6]", "line[7]"}
    for issue in issues[1:]:
        number = issue["expression"][0].split(".")[0][5:-1]
        assert issue["diagnostics"].startswith(f"line {number}: ")
    assert any(i.get("expression") == ["line[5].colour"] for i in issues), issues
    assert "repeats line 1" in json.dumps(issues)
    assert "column 2" in issues[1]["diagnostics"]
    assert "line 1 column" not in issues[1]["diagnostics"]  # the parser's own line number
    assert total(client, "Patient") == 0
    assert total(client, "Observation") == 0


def test_an_invalid_nhs_number_is_a_422_naming_the_line(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    body = ndjson(observation("o-1", "Patient/p-1"), patient("p-1", invalid_nhs_number()))
    response = post(feeds["emis"], body)
    assert response.status_code == 422, response.text
    issues = response.json()["issue"]
    assert issues[1]["diagnostics"].startswith("line 2: ")
    assert issues[1]["expression"] == ["line[2].identifier[0].value"]
    assert "Bundle.entry" not in response.text
    assert total(client, "Patient") == 0
    assert total(client, "Observation") == 0


def test_only_a_source_may_import(client: httpx.Client, feeds: dict[str, Feed]) -> None:
    body = ndjson(patient("p-1", nhs_number()))
    response = client.post("$import", content=body, headers=NDJSON)
    assert response.status_code == 403, response.text
    assert response.json()["issue"][0]["code"] == "forbidden"
    assert total(client, "Patient") == 0


def test_the_body_must_be_ndjson(client: httpx.Client, feeds: dict[str, Feed]) -> None:
    body = ndjson(patient("p-1", nhs_number()))
    for ctype in ("application/fhir+json", "text/plain"):
        response = feeds["emis"].http.post("$import", content=body, headers={"Content-Type": ctype})
        assert response.status_code == 415, response.text
    response = post(feeds["emis"], b"\n \n")
    assert response.status_code == 400, response.text
    assert post(feeds["emis"], body, **{"Content-Type": "application/ndjson"}).status_code == 200
    assert feeds["emis"].http.get("$import").status_code == 405


def test_the_line_cap_is_a_413() -> None:
    body = ndjson(patient("a", None), patient("b", None), patient("c", None))
    entries, problems = parse_lines(split_lines(body, 3))
    assert [e.index for e in entries] == [0, 1, 2]
    assert problems == []
    with pytest.raises(FhirError) as caught:
        split_lines(body, 2)
    assert caught.value.status == 413


def test_ingest_errors_name_the_line_not_the_bundle_entry() -> None:
    exc = FhirError(
        403,
        "forbidden",
        "Transaction failed at Bundle.entry[3] (POST Observation); nothing was written: "
        "Bundle.entry[3]: not yours",
        "forbidden",
        ("Bundle.entry[3]", "Bundle.entry[3].resource.subject"),
        (Issue("error", "forbidden", "see Bundle.entry[0]", ("Bundle.entry[0]",)),),
    )
    restated = _at_line(exc)
    assert restated.diagnostics == (
        "The import failed at line 4 (Observation); nothing was written: line 4: not yours"
    )
    assert restated.expression == ("line[4]", "line[4].subject")
    assert restated.extra_issues[0].diagnostics == "see line 1"
    assert restated.extra_issues[0].expression == ("line[1]",)


def test_a_misshapen_line_is_a_400_whatever_the_ingest_made_of_it(
    client: httpx.Client, feeds: dict[str, Feed]
) -> None:
    # The session's server validates the lines in the worker pool while the ingest runs; the
    # planner meets this meta (a list) before the verdict is in, and the verdict is the answer.
    bad = {**observation("o-2", "Patient/p-1"), "meta": [{"source": "elsewhere"}]}
    body = ndjson(patient("p-1", nhs_number()), observation("o-1", "Patient/p-1"), bad)
    response = post(feeds["emis"], body)
    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["diagnostics"].startswith("1 of 3 lines are not valid"), issue
    assert any(
        e.startswith("line[3]") for i in response.json()["issue"] for e in i.get("expression", [])
    )
    assert total(client, "Patient") == 0
    assert total(client, "Observation") == 0
