"""patch and conditional patch over real HTTP, with JSON Patch and FHIRPath Patch.

https://hl7.org/fhir/R4/http.html#patch, https://hl7.org/fhir/R4/fhirpatch.html,
https://www.rfc-editor.org/rfc/rfc6902, #concurrency (If-Match) and #cond-update (criteria).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from tests.helpers import TEST_ORG, assert_outcome, created_id, patient

JSON_PATCH = {"content-type": "application/json-patch+json"}
FHIR_JSON = {"content-type": "application/fhir+json"}


def json_patch(client: httpx.Client, url: str, ops: Any, **headers: str) -> httpx.Response:
    return client.patch(url, content=json.dumps(ops), headers={**JSON_PATCH, **headers})


def fhirpath_patch(
    client: httpx.Client, url: str, *operations: dict[str, Any], **headers: str
) -> httpx.Response:
    body = {"resourceType": "Parameters", "parameter": list(operations)}
    return client.patch(url, content=json.dumps(body), headers={**FHIR_JSON, **headers})


def operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    out: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "path", "valueString": path},
    ]
    out += [{"name": name, **value} for name, value in parts.items()]
    return {"name": "operation", "part": out}


def create(client: httpx.Client, **extra: Any) -> str:
    return created_id(client.post("Patient", json=patient(**extra)))


def test_json_patch_creates_a_new_version_recorded_as_patch_in_history(
    client: httpx.Client,
) -> None:
    pid = create(client)
    response = json_patch(
        client,
        f"Patient/{pid}",
        [
            {"op": "test", "path": "/gender", "value": "female"},
            {"op": "replace", "path": "/gender", "value": "other"},
            {"op": "add", "path": "/name/0/given/-", "value": "Ann"},
        ],
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["location"].endswith(f"/Patient/{pid}/_history/2")
    body = response.json()
    assert body["gender"] == "other"
    assert body["name"][0]["given"] == ["Jane", "Ann"]
    assert body["meta"]["versionId"] == "2"
    assert client.get(f"Patient/{pid}").json() == body
    history = client.get(f"Patient/{pid}/_history").json()
    methods = {e["resource"]["meta"]["versionId"]: e["request"]["method"] for e in history["entry"]}
    assert methods["2"] == "PATCH"


def test_fhirpath_patch_applies_a_parameters_body(client: httpx.Client) -> None:
    pid = create(client)
    response = fhirpath_patch(
        client,
        f"Patient/{pid}",
        operation("replace", "Patient.birthDate", value={"valueDate": "1981-05-03"}),
        operation(
            "add",
            "Patient",
            name={"valueString": "identifier"},
            value={"valueIdentifier": {"system": "urn:x", "value": "1"}},
        ),
        operation("delete", "Patient.name.where(family = 'Smith').given"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["birthDate"] == "1981-05-03"
    assert body["identifier"] == [{"system": "urn:x", "value": "1"}]
    assert body["name"] == [{"family": "Smith"}]
    assert response.headers["etag"] == 'W/"2"'
    history = client.get(f"Patient/{pid}/_history").json()
    assert history["entry"][0]["request"]["method"] == "PATCH"


def test_a_plain_json_parameters_body_is_a_fhirpath_patch(client: httpx.Client) -> None:
    pid = create(client)
    body = {
        "resourceType": "Parameters",
        "parameter": [operation("replace", "Patient.gender", value={"valueCode": "male"})],
    }
    response = client.patch(f"Patient/{pid}", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["gender"] == "male"


def test_patch_honours_prefer_return_minimal(client: httpx.Client) -> None:
    pid = create(client)
    ops = [{"op": "remove", "path": "/birthDate"}]
    response = json_patch(client, f"Patient/{pid}", ops, prefer="return=minimal")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["etag"] == 'W/"2"'
    assert "birthDate" not in client.get(f"Patient/{pid}").json()


def test_if_match_with_the_current_version_patches_and_a_stale_one_is_412(
    client: httpx.Client,
) -> None:
    pid = create(client)
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert json_patch(client, f"Patient/{pid}", ops, **{"if-match": 'W/"1"'}).status_code == 200
    stale = json_patch(client, f"Patient/{pid}", ops, **{"if-match": 'W/"1"'})
    assert_outcome(stale, 412, code="conflict")
    assert client.get(f"Patient/{pid}").headers["etag"] == 'W/"2"'


def test_a_failed_test_operation_is_422_and_changes_nothing(client: httpx.Client) -> None:
    pid = create(client)
    ops = [
        {"op": "replace", "path": "/gender", "value": "male"},
        {"op": "test", "path": "/birthDate", "value": "1999-01-01"},
    ]
    assert_outcome(json_patch(client, f"Patient/{pid}", ops), 422, code="processing")
    current = client.get(f"Patient/{pid}")
    assert current.headers["etag"] == 'W/"1"'
    assert current.json()["gender"] == "female"


def test_a_patch_leaving_an_invalid_resource_is_refused_naming_the_element(
    client: httpx.Client,
) -> None:
    pid = create(client)
    bad = json_patch(client, f"Patient/{pid}", [{"op": "add", "path": "/colour", "value": "red"}])
    assert_outcome(bad, 400, expression="Patient.colour")
    wrong = fhirpath_patch(
        client, f"Patient/{pid}", operation("replace", "Patient.gender", value={"valueCode": "x"})
    )
    assert_outcome(wrong, 400, expression="Patient.gender")
    assert client.get(f"Patient/{pid}").headers["etag"] == 'W/"1"'


def test_a_patch_may_not_change_the_id_or_resource_type(client: httpx.Client) -> None:
    pid = create(client)
    url = f"Patient/{pid}"
    moved = json_patch(client, url, [{"op": "replace", "path": "/id", "value": "other"}])
    assert_outcome(moved, 400, expression="Patient.id")
    removed = json_patch(client, url, [{"op": "remove", "path": "/id"}])
    assert_outcome(removed, 400, expression="Patient.id")
    retyped = [{"op": "replace", "path": "/resourceType", "value": "Person"}]
    assert_outcome(json_patch(client, url, retyped), 400, expression="resourceType")
    whole = json_patch(client, url, [{"op": "replace", "path": "", "value": [1]}])
    assert_outcome(whole, 400)
    assert client.get(url).headers["etag"] == 'W/"1"'


def test_version_id_and_last_updated_stay_server_managed(client: httpx.Client) -> None:
    pid = create(client)
    ops = [
        {"op": "replace", "path": "/meta/versionId", "value": "99"},
        {"op": "add", "path": "/meta/tag", "value": [{"system": "urn:t", "code": "x"}]},
    ]
    body = json_patch(client, f"Patient/{pid}", ops).json()
    assert body["meta"]["versionId"] == "2"
    # The patch's tag is kept; the server adds the controller tags: the writer's organisation
    # (the originating controller) and the national controller X24.
    assert body["meta"]["tag"] == [
        {"system": "urn:t", "code": "x"},
        {"system": "https://dhr.nhs.example/fhir/CodeSystem/data-controller", "code": TEST_ORG},
        {"system": "https://dhr.nhs.example/fhir/CodeSystem/data-controller", "code": "X24"},
    ]


def test_other_content_types_are_415(client: httpx.Client) -> None:
    pid = create(client)
    for ctype in ("application/xml-patch+xml", "application/fhir+xml", "text/plain"):
        response = client.patch(f"Patient/{pid}", content=b"[]", headers={"content-type": ctype})
        assert_outcome(response, 415, code="not-supported")
    ops = [{"op": "remove", "path": "/gender"}]
    assert_outcome(client.patch(f"Patient/{pid}", json=ops), 415, code="not-supported")
    assert client.get(f"Patient/{pid}").headers["etag"] == 'W/"1"'


def test_malformed_patch_bodies_are_400(client: httpx.Client) -> None:
    pid = create(client)
    url = f"Patient/{pid}"
    for body in (b"", b"{not json", b'{"op": "add"}', b'[{"op": "jump", "path": "/a"}]'):
        assert_outcome(client.patch(url, content=body, headers=JSON_PATCH), 400)
    assert_outcome(client.patch(url, json=patient(), headers=FHIR_JSON), 400)
    bad_path = fhirpath_patch(client, url, operation("delete", "Patient.name["))
    assert_outcome(bad_path, 400, expression="Parameters.parameter[0]")
    assert_outcome(fhirpath_patch(client, url, {"name": "operation", "part": "x"}), 400)


def test_patching_an_unknown_id_is_404_and_a_deleted_one_410(client: httpx.Client) -> None:
    ops = [{"op": "remove", "path": "/gender"}]
    assert_outcome(json_patch(client, "Patient/nobody", ops), 404, code="not-found")
    pid = create(client)
    client.delete(f"Patient/{pid}")
    assert_outcome(json_patch(client, f"Patient/{pid}", ops), 410, code="deleted")
    assert_outcome(json_patch(client, "Patient/bad id!", ops), 400)


def test_conditional_patch_patches_the_one_match(client: httpx.Client) -> None:
    pid = create(client, identifier=[{"system": "urn:mrn", "value": "42"}])
    create(client, identifier=[{"system": "urn:mrn", "value": "43"}])
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    response = json_patch(client, "Patient?identifier=urn:mrn|42", ops)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == pid
    assert client.get(f"Patient/{pid}").json()["gender"] == "male"


def test_conditional_patch_with_no_match_is_404_and_several_412(client: httpx.Client) -> None:
    ops = [{"op": "replace", "path": "/gender", "value": "male"}]
    assert_outcome(json_patch(client, "Patient?identifier=urn:mrn|1", ops), 404)
    for _ in range(2):
        create(client, identifier=[{"system": "urn:mrn", "value": "1"}])
    assert_outcome(json_patch(client, "Patient?identifier=urn:mrn|1", ops), 412)


def test_a_transaction_entry_patches_with_parameters_or_a_json_patch_binary(
    client: httpx.Client,
) -> None:
    pid, other = create(client), create(client)
    ops = [{"op": "replace", "path": "/gender", "value": "other"}]
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(json.dumps(ops).encode()).decode(),
    }
    parameters = {
        "resourceType": "Parameters",
        "parameter": [operation("replace", "Patient.birthDate", value={"valueDate": "1970-01-01"})],
    }
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": binary, "request": {"method": "PATCH", "url": f"Patient/{pid}"}},
            {"resource": parameters, "request": {"method": "PATCH", "url": f"Patient/{other}"}},
        ],
    }
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    assert client.get(f"Patient/{pid}").json()["gender"] == "other"
    assert client.get(f"Patient/{other}").json()["birthDate"] == "1970-01-01"
