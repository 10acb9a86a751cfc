"""Bad input always gets a clear 4xx OperationOutcome, never a 500, a hang or a partial write.

https://hl7.org/fhir/R4/http.html#Status-codes, https://hl7.org/fhir/R4/json.html
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import assert_outcome, created_id, patient

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.mark.parametrize(
    ("body", "message_code"),
    [
        (b"{not json", "invalid-json"),
        (b"", "empty-body"),
        (b"[1, 2]", "not-an-object"),
        (b'{"resourceType": "Patient", "name": "\xff\xfe"}', "invalid-utf8"),
        (b"[" * 10_000 + b"]" * 10_000, "json-too-deep"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "json-too-deep"),
    ],
)
def test_unparsable_bodies_are_400(client: httpx.Client, body: bytes, message_code: str) -> None:
    response = client.post("Patient", content=body, headers=FHIR)
    outcome = assert_outcome(response, 400)
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == message_code
    assert client.get("Patient/_history").json().get("entry", []) == []


def test_invalid_elements_are_named_in_issue_expression(client: httpx.Client) -> None:
    bad_date = client.post("Patient", json=patient(birthDate="1980-02-31x", name=[{"family": 7}]))
    outcome = assert_outcome(bad_date, 400)
    expressions = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert {"Patient.birthDate", "Patient.name[0].family"} <= expressions
    assert_outcome(
        client.post("Patient", json=patient(gender="robot")), 400, expression="Patient.gender"
    )


def test_primitives_must_have_their_json_types(client: httpx.Client) -> None:
    assert_outcome(
        client.post("Patient", json=patient(active="true")), 400, expression="Patient.active"
    )
    assert_outcome(
        client.post("Patient", json=patient(multipleBirthInteger="2")),
        400,
        expression="Patient.multipleBirthInteger",
    )
    assert (
        client.post("Patient", json=patient(active=True, multipleBirthInteger=2)).status_code == 201
    )


def test_unknown_elements_and_missing_required_ones_are_refused(client: httpx.Client) -> None:
    assert_outcome(
        client.post("Patient", json=patient(favouriteColour="blue")),
        400,
        expression="Patient.favouriteColour",
    )
    assert_outcome(
        client.post("Observation", json={"resourceType": "Observation", "status": "final"}),
        400,
        code="required",
        expression="Observation.code",
    )


def test_a_body_of_another_type_than_the_url_is_refused(client: httpx.Client) -> None:
    response = client.post("Observation", json=patient())
    assert_outcome(response, 400, expression="resourceType")
    assert_outcome(client.post("Patient", json={"name": []}), 400, expression="resourceType")


@pytest.mark.parametrize("bad_id", ["a" * 65, "has space", "bad_underscore", "ünïcode"])
def test_ids_outside_the_fhir_id_pattern_are_400(client: httpx.Client, bad_id: str) -> None:
    response = client.put(f"Patient/{bad_id}", json=patient(id=bad_id))
    assert_outcome(response, 400)


def test_unknown_and_r4b_dropped_types_say_so(client: httpx.Client) -> None:
    unknown = assert_outcome(client.get("Spaceship/1"), 404)
    assert "Unknown resource type" in unknown["issue"][0]["diagnostics"]
    dropped = assert_outcome(
        client.post("MedicinalProduct", json={"resourceType": "MedicinalProduct"}), 404
    )
    assert "R4B" in dropped["issue"][0]["diagnostics"]
    in_body = client.post("Patient", json={"resourceType": "Spaceship"})
    assert_outcome(in_body, 400)


def test_a_body_over_the_size_limit_is_413(client: httpx.Client) -> None:
    big = patient(
        text={
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml">' + "x" * 3_000_000 + "</div>",
        }
    )
    assert_outcome(client.post("Patient", json=big), 413)


def test_xml_is_refused_with_406_and_415(client: httpx.Client) -> None:
    assert_outcome(client.get("metadata", headers={"Accept": "application/fhir+xml"}), 406)
    assert_outcome(client.get("metadata", params={"_format": "xml"}), 406)
    xml = b'<Patient xmlns="http://hl7.org/fhir"/>'
    assert_outcome(
        client.post("Patient", content=xml, headers={"Content-Type": "application/fhir+xml"}), 415
    )


def test_json_format_variants_are_accepted(client: httpx.Client) -> None:
    for fmt in ("json", "application/fhir+json", "application/json"):
        assert client.get("metadata", params={"_format": fmt}).status_code == 200
    assert client.get("metadata", headers={"Accept": "text/html,*/*;q=0.8"}).status_code == 200


def test_unsupported_interactions_are_405_or_404(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    assert_outcome(client.post(f"Patient/{pid}", json=patient()), 405)
    assert_outcome(client.post("Patient/$no-such-operation", json={}), 404)
    assert_outcome(client.get(f"Patient/{pid}/_history/1/extra"), 400)
    assert_outcome(client.put("Patient/x", content=b"{}", headers={"If-Match": "banana"}), 400)


def test_bad_summary_value_is_400(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    assert_outcome(client.get(f"Patient/{pid}", params={"_summary": "everything"}), 400)


# -- found by fuzzing the API (stop 13): each was a 500, a 503 or worse ------------------------


def test_a_contained_resource_of_unknown_type_is_400(client: httpx.Client) -> None:
    body = patient(contained=[{"resourceType": "Foo", "id": "c"}])
    assert_outcome(client.post("Patient", json=body), 400)
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": body, "request": {"method": "POST", "url": "Patient"}},
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    response = client.post("", json=batch)
    assert response.status_code == 200
    statuses = [e["response"]["status"][:3] for e in response.json()["entry"]]
    assert statuses == ["400", "201"]


@pytest.mark.parametrize(
    "url",
    [
        "Patient/_history?_since=9999-12-31T23:59:59%2B14:00",
        "_history?_since=9999",
        "_history?_at=9999-12-31T23:59:59-14:00",
        "AuditEvent?date=ge9999-12-31",
    ],
)
def test_dates_at_the_end_of_the_calendar_are_400(client: httpx.Client, url: str) -> None:
    assert client.get(url).status_code == 400


def test_numbers_of_thousands_of_digits_are_400(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    digits = "9" * 5000
    headers = {**FHIR, "If-Match": f'W/"{digits}"'}
    assert_outcome(client.put(f"Patient/{pid}", json=patient(id=pid), headers=headers), 400)
    assert_outcome(client.get(f"Patient?_count={digits}"), 400)
    assert_outcome(client.get(f"Patient/{pid}/_history?_count={digits}"), 400)
    assert_outcome(client.get(f"Patient/{pid}/$everything?_count={digits}"), 400)
    assert_outcome(client.get(f"Patient/{pid}/$everything?_page={digits}"), 400)


def test_an_if_modified_since_that_is_no_date_is_ignored(client: httpx.Client) -> None:
    """RFC 9110 13.1.3: a recipient ignores If-Modified-Since when it is not a valid date."""
    pid = created_id(client.post("Patient", json=patient()))
    for junk in ("Mon, 99 Foo 2020 99:99:99 GMT", "Mon, 32 Jan 2020 00:00:00 GMT"):
        response = client.get(f"Patient/{pid}", headers={"If-Modified-Since": junk})
        assert response.status_code == 200


def test_a_search_too_large_to_run_is_400_not_a_runaway_query(client: httpx.Client) -> None:
    repeated = "&".join(["name=x"] * 100)
    assert_outcome(client.get(f"Patient?{repeated}"), 400)
    many = ",".join(f"x{i}" for i in range(500))
    assert_outcome(client.get(f"Patient?name={many}"), 400)
    assert client.get("Patient?name=" + ",".join(f"x{i}" for i in range(150))).status_code == 200
    chained = "Observation?subject:Patient.link:Patient.link:Patient.link:Patient.name=x"
    assert client.get(chained).status_code in (200, 400)


def test_the_nul_character_is_never_a_server_error(client: httpx.Client) -> None:
    written = client.post("Patient", json=patient(name=[{"family": "a\u0000b"}]))
    assert written.status_code in (201, 400), written.text
    if written.status_code == 400:
        assert_outcome(written, 400)


NUL_CODE = "nul-character"


def assert_nul_refused(response: httpx.Response) -> None:
    """400 with the outcome naming the NUL, the same on SQLite and PostgreSQL."""
    outcome = assert_outcome(response, 400, code="invalid")
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == NUL_CODE


@pytest.mark.parametrize(
    "url",
    [
        "Patient?_type=Patient%00",
        "Patient?name=a%00b",
        "Patient?name%00=a",
        "Patient?name:exact=a%00",
        "Patient?identifier=a%00|b",
        "Patient?_tag=a%00",
        "Patient?general-practitioner.name=a%00",
        "Patient?_has:Observation:subject:code=a%00",
        "Patient?_elements=id%00",
        "Patient/p1/Observation?code=a%00",
        "AuditEvent?agent=a%00",
    ],
)
def test_a_nul_in_a_search_parameter_is_400(client: httpx.Client, url: str) -> None:
    """https://hl7.org/fhir/R4/datatypes.html#string: no FHIR string holds U+0000, so no search
    value can match one; it is refused before any SQL (PostgreSQL text cannot hold it at all)
    rather than ignored, matched or sent to the database."""
    client.post("Patient", json=patient(name=[{"family": "ab"}]))
    assert_nul_refused(client.get(url))


def test_a_nul_in_a_form_body_or_a_condition_is_400_and_writes_nothing(
    client: httpx.Client,
) -> None:
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert_nul_refused(client.post("Patient/_search", content=b"name=a%00b", headers=form))
    assert_nul_refused(client.post("AuditEvent/_search", content=b"agent=a%00", headers=form))
    conditional = {"If-None-Exist": "name=a%00b"}
    assert_nul_refused(client.post("Patient", json=patient(), headers=conditional))
    assert_nul_refused(client.put("Patient?name=a%00b", json=patient()))
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient?name=a\u0000b"}},
            {"request": {"method": "GET", "url": "Patient?name=ab"}},
        ],
    }
    statuses = [e["response"]["status"][:3] for e in client.post("", json=batch).json()["entry"]]
    assert statuses == ["400", "200"]
    assert client.get("Patient?_total=accurate&_count=0").json()["total"] == 0


@pytest.mark.parametrize("method", ["PROPFIND", "TRACE", "CONNECT", "BREW"])
def test_a_method_no_interaction_uses_is_405_with_an_outcome_and_allow(
    client: httpx.Client, method: str
) -> None:
    """https://hl7.org/fhir/R4/http.html#Status-codes and RFC 9110 15.5.6: 405 names the
    methods the resource answers in Allow."""
    response = client.request(method, "Patient")
    outcome = assert_outcome(response, 405)
    assert outcome["issue"][0]["code"] == "not-supported"
    assert {"GET", "POST", "PUT", "DELETE"} <= {
        m.strip() for m in response.headers["allow"].split(",")
    }


@pytest.mark.parametrize("entries", [1, 40])
def test_a_nul_character_in_a_transaction_is_never_a_server_error(
    client: httpx.Client, entries: int
) -> None:
    """Many new resources are written together (on PostgreSQL their search rows by COPY): a
    NUL in one of them is still the client's error, and nothing of the Bundle is kept."""
    family = f"nul-{entries}-family"
    names = [[{"family": family, "given": [f"g{n}"]}] for n in range(entries)]
    names[-1] = [{"family": family, "given": ["a\u0000b"]}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(name=name), "request": {"method": "POST", "url": "Patient"}}
            for name in names
        ],
    }
    written = client.post("", json=bundle)
    assert written.status_code in (200, 400), written.text
    if written.status_code == 400:
        assert_outcome(written, 400)
        assert client.get("Patient", params={"family": family}).json().get("total", 0) == 0
