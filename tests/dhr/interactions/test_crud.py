"""create, read, vread, update and delete over real HTTP.

https://hl7.org/fhir/R4/http.html#create, #read, #vread, #update, #delete
"""

from __future__ import annotations

import httpx

from tests.helpers import assert_outcome, created_id, patient


def test_create_assigns_an_id_and_answers_201_with_location_etag_and_last_modified(
    client: httpx.Client,
) -> None:
    response = client.post("Patient", json=patient(id="ignored-by-the-server"))
    assert response.status_code == 201
    new_id = created_id(response)
    assert new_id != "ignored-by-the-server"
    assert response.headers["location"].endswith(f"/fhir/Patient/{new_id}/_history/1")
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")
    body = response.json()
    assert body["id"] == new_id
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")


def test_read_returns_exactly_what_create_returned(client: httpx.Client) -> None:
    created = client.post("Patient", json=patient())
    read = client.get(f"Patient/{created_id(created)}")
    assert read.status_code == 200
    assert read.content == created.content
    assert read.headers["etag"] == 'W/"1"'


def test_read_of_an_unknown_id_is_404_with_an_outcome(client: httpx.Client) -> None:
    assert_outcome(client.get("Patient/nobody-here"), 404, code="not-found")


def test_update_creates_a_new_version_and_vread_keeps_the_old_one(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    updated = client.put(f"Patient/{pid}", json=patient(id=pid, gender="other"))
    assert updated.status_code == 200
    assert updated.headers["etag"] == 'W/"2"'
    assert client.get(f"Patient/{pid}").json()["gender"] == "other"
    first = client.get(f"Patient/{pid}/_history/1")
    assert first.status_code == 200
    assert first.json()["gender"] == "female"
    assert_outcome(client.get(f"Patient/{pid}/_history/3"), 404)
    assert_outcome(client.get(f"Patient/{pid}/_history/not-a-number"), 404)


def test_update_with_a_client_id_creates_the_resource(client: httpx.Client) -> None:
    response = client.put("Patient/nhs-9434765919", json=patient(id="nhs-9434765919"))
    assert response.status_code == 201
    assert response.headers["location"].endswith("/Patient/nhs-9434765919/_history/1")
    assert client.get("Patient/nhs-9434765919").status_code == 200


def test_update_refuses_a_body_whose_id_differs_from_the_url(client: httpx.Client) -> None:
    assert_outcome(client.put("Patient/a", json=patient(id="b")), 400, expression="Patient.id")
    assert_outcome(client.put("Patient/a", json=patient()), 400, expression="Patient.id")
    assert client.get("Patient/a").status_code == 404


def test_delete_leaves_a_tombstone_read_answers_410_and_history_keeps_versions(
    client: httpx.Client,
) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    deleted = client.delete(f"Patient/{pid}")
    assert deleted.status_code == 200
    assert deleted.headers["etag"] == 'W/"2"'
    assert_outcome(client.get(f"Patient/{pid}"), 410, code="deleted")
    assert_outcome(client.get(f"Patient/{pid}/_history/2"), 410)
    assert client.get(f"Patient/{pid}/_history/1").status_code == 200
    # Deleting again changes nothing; updating brings it back as version 3.
    assert client.delete(f"Patient/{pid}").status_code == 200
    again = client.put(f"Patient/{pid}", json=patient(id=pid))
    assert again.status_code == 201
    assert again.headers["etag"] == 'W/"3"'


def test_if_match_gives_optimistic_locking(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    ok = client.put(
        f"Patient/{pid}", json=patient(id=pid, active=True), headers={"If-Match": 'W/"1"'}
    )
    assert ok.status_code == 200
    stale = client.put(
        f"Patient/{pid}", json=patient(id=pid, active=False), headers={"If-Match": 'W/"1"'}
    )
    assert_outcome(stale, 412)
    assert client.get(f"Patient/{pid}").json()["active"] is True
    assert_outcome(client.delete(f"Patient/{pid}", headers={"If-Match": 'W/"1"'}), 412)
    assert client.get(f"Patient/{pid}").status_code == 200


def test_conditional_reads_answer_304(client: httpx.Client) -> None:
    created = client.post("Patient", json=patient())
    pid = created_id(created)
    same = client.get(f"Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert same.status_code == 304
    assert same.content == b""
    later = client.get(
        f"Patient/{pid}", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    )
    assert later.status_code == 304
    earlier = client.get(
        f"Patient/{pid}", headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    )
    assert earlier.status_code == 200


def test_prefer_return_minimal_and_operation_outcome(client: httpx.Client) -> None:
    minimal = client.post("Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post("Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"


def test_summary_and_elements_on_read_mark_the_resource_subsetted(client: httpx.Client) -> None:
    pid = created_id(
        client.post(
            "Patient",
            json=patient(
                text={
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Jane</div>',
                },
                maritalStatus={"text": "Married"},
            ),
        )
    )
    summary = client.get(f"Patient/{pid}", params={"_summary": "true"}).json()
    assert "maritalStatus" not in summary  # not a summary element
    assert summary["name"][0]["family"] == "Smith"
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    elements = client.get(f"Patient/{pid}", params={"_elements": "gender"}).json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    data = client.get(f"Patient/{pid}", params={"_summary": "data"}).json()
    assert "text" not in data
    assert "maritalStatus" in data
    pretty = client.get(f"Patient/{pid}", params={"_pretty": "true"})
    assert b"\n  " in pretty.content


def test_decimals_keep_their_precision(client: httpx.Client) -> None:
    """https://hl7.org/fhir/R4/datatypes.html#decimal: 1.50 is not 1.5."""
    body = (
        b'{"resourceType":"Observation","status":"final","code":{"text":"dose"},'
        b'"valueQuantity":{"value":1.50,"unit":"mg"},'
        b'"component":[{"code":{"text":"a"},"valueQuantity":{"value":1.0e2}},'
        b'{"code":{"text":"b"},"valueQuantity":{"value":0.1234567890123456789}}]}'
    )
    created = client.post(
        "Observation", content=body, headers={"Content-Type": "application/fhir+json"}
    )
    assert created.status_code == 201, created.text
    read = client.get(f"Observation/{created_id(created)}")
    assert b'"value":1.50' in read.content
    assert b'"value":1.0e2' in read.content or b'"value":1.0E+2' in read.content
    assert b"0.1234567890123456789" in read.content


def test_head_answers_like_get_without_a_body(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    head = client.head(f"Patient/{pid}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == 'W/"1"'
    assert client.head("Patient/missing").status_code == 404
