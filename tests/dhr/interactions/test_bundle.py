"""batch and transaction Bundles posted to the FHIR base, over real HTTP.

https://hl7.org/fhir/R4/http.html#transaction (batch, transaction, processing order, urn:uuid
and conditional references, atomicity) and https://hl7.org/fhir/R4/bundle.html.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.helpers import assert_outcome, created_id, observation, patient

SYSTEM = "https://example.org/nhs-number"
Entry = dict[str, Any]


def txn(*entries: Any, kind: Any = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method: str, url: str, resource: Any = None, full_url: Any = None, **req: Any) -> Entry:
    out = {"fullUrl": full_url, "resource": resource, "request": {"method": method, "url": url}}
    out["request"].update(req)
    return {k: v for k, v in out.items() if v is not None}


def post(resource: dict[str, Any], full_url: str | None = None, **request: Any) -> Entry:
    return entry("POST", resource["resourceType"], resource, full_url, **request)


def put(resource: dict[str, Any], url: str, full_url: str | None = None, **request: Any) -> Entry:
    return entry("PUT", url, resource, full_url, **request)


def get(url: str) -> Entry:
    return entry("GET", url)


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def nhs(value: str) -> list[dict[str, str]]:
    return [{"system": SYSTEM, "value": value}]


def ok(http: httpx.Client, *entries: Any, kind: str = "transaction", **kw: Any) -> list[Entry]:
    response = http.post("", json=txn(*entries, kind=kind), **kw)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == f"{kind}-response"
    out: list[Entry] = response.json()["entry"]
    return out


def statuses(entries: list[Entry]) -> list[str]:
    return [e["response"]["status"] for e in entries]


def rid(entry: Entry) -> str:
    return str(entry["resource"]["id"])


def subject_of(client: httpx.Client, obs: Entry) -> str:
    return str(client.get(f"Observation/{rid(obs)}").json()["subject"]["reference"])


def history_total(client: httpx.Client, path: str = "_history") -> int:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return len(response.json()["entry"])


# -- transaction ---------------------------------------------------------------------------


def test_transaction_creates_resources_and_rewrites_urn_uuid_references(
    client: httpx.Client,
) -> None:
    p = urn()
    entries = ok(client, post(patient(), p), post(observation(p)), post(observation(p)))
    assert statuses(entries) == ["201 Created"] * 3
    pid, response = rid(entries[0]), entries[0]["response"]
    assert response["location"].endswith(f"/Patient/{pid}/_history/1")
    assert response["etag"] == 'W/"1"'
    assert response["lastModified"].endswith("Z")
    assert entries[0]["fullUrl"].endswith(f"/Patient/{pid}")
    assert [subject_of(client, e) for e in entries[1:]] == [f"Patient/{pid}"] * 2
    assert client.get(f"Patient/{pid}").status_code == 200


def test_references_are_rewritten_at_any_depth_and_in_contained_but_local_ones_are_kept(
    client: httpx.Client,
) -> None:
    p, doc = urn(), urn()
    ref = {"reference": p}
    deep = {"url": "https://example.org/ext", "extension": [{"url": "in", "valueReference": ref}]}
    specimen = {"resourceType": "Specimen", "id": "s1", "subject": {"reference": p}}
    specimen["collection"] = {"collector": {"reference": doc}}
    obs = observation(p, contained=[specimen], specimen={"reference": "#s1"})
    obs["performer"] = [{"reference": doc}]
    obs["component"] = [{"code": {"text": "x"}, "valueString": "y", "extension": [deep]}]
    doctor = {"resourceType": "Practitioner", "name": [{"family": "Who"}]}
    entries = ok(client, post(obs), post(patient(), p), post(doctor, doc))
    assert statuses(entries) == ["201 Created"] * 3
    pat, prac = f"Patient/{rid(entries[1])}", f"Practitioner/{rid(entries[2])}"
    stored = client.get(f"Observation/{rid(entries[0])}").json()
    assert stored["subject"]["reference"] == pat
    assert stored["performer"][0]["reference"] == prac
    assert stored["specimen"]["reference"] == "#s1"
    assert stored["contained"][0]["subject"]["reference"] == pat
    assert stored["contained"][0]["collection"]["collector"]["reference"] == prac
    inner = stored["component"][0]["extension"][0]["extension"][0]
    assert inner["valueReference"]["reference"] == pat


OID = "urn:oid:1.2.840.113619.2.62.994044785528.114289542805"


@pytest.mark.parametrize(
    "full",
    [
        "urn:uuid:8c1f5c2e-4b1a-4d7e-9f3a-0d6b2e7c9a11",
        OID,
        "https://client.example/fhir/Patient/local-7",
    ],
)
def test_every_kind_of_full_url_is_replaced_by_the_assigned_id(
    client: httpx.Client, full: str
) -> None:
    entries = ok(client, post(observation(full)), post(patient(), full))
    assert statuses(entries) == ["201 Created", "201 Created"]
    assert subject_of(client, entries[0]) == f"Patient/{rid(entries[1])}"


def test_request_urls_that_use_a_urn_are_rewritten(client: httpx.Client) -> None:
    p = urn()
    entries = ok(client, get(p), post(patient(gender="other"), p))
    assert statuses(entries) == ["200 OK", "201 Created"]
    assert rid(entries[0]) == rid(entries[1])
    assert entries[0]["resource"]["gender"] == "other"


def test_deletes_run_before_creates_and_reads_run_after_writes(client: httpx.Client) -> None:
    old = created_id(client.post("Patient", json=patient(identifier=nhs("111"))))
    entries = ok(
        client,
        get("Patient/pat-new"),
        post(patient(identifier=nhs("111")), urn(), ifNoneExist=f"identifier={SYSTEM}|111"),
        put(patient(id="pat-new"), "Patient/pat-new"),
        entry("DELETE", f"Patient?identifier={SYSTEM}|111"),
    )
    # The DELETE ran first (the conditional create found nothing); the GET ran last (saw the PUT).
    assert statuses(entries) == ["200 OK", "201 Created", "201 Created", "200 OK"]
    assert rid(entries[0]) == "pat-new"
    assert rid(entries[1]) != old
    assert "outcome" in entries[3]["response"]
    assert_outcome(client.get(f"Patient/{old}"), 410)


def test_transaction_response_entries_follow_the_request_order(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    entries = ok(
        client,
        get(f"Patient/{pid}/_history/1"),
        put(patient(id="ordered"), "Patient/ordered"),
        entry("DELETE", f"Patient/{pid}"),
        post(patient(gender="male")),
        get("Patient/ordered"),
    )
    assert statuses(entries) == ["200 OK", "201 Created", "200 OK", "201 Created", "200 OK"]
    assert [rid(entries[0]), rid(entries[1]), rid(entries[4])] == [pid, "ordered", "ordered"]
    assert entries[2]["response"]["etag"] == 'W/"2"'
    assert entries[3]["resource"]["gender"] == "male"


def test_a_transaction_whose_last_entry_is_invalid_writes_nothing(client: httpx.Client) -> None:
    p = urn()
    bad = observation(p, valueQuantity={"value": "seventy-two"})
    response = client.post(
        "",
        json=txn(
            post(patient(), p),
            put(patient(id="atomic-1"), "Patient/atomic-1"),
            post(observation(p)),
            post(bad),
        ),
    )
    body = assert_outcome(response, 400, expression="Bundle.entry[3]")
    assert "nothing was written" in body["issue"][0]["diagnostics"]
    assert_outcome(client.get("Patient/atomic-1"), 404)
    for path in ("_history", "Patient/_history", "Observation/_history"):
        assert history_total(client, path) == 0


def test_a_failure_rolls_back_deletes_and_updates_too(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    gone = entry("DELETE", f"Patient/{pid}")
    body = txn(gone, put(patient(id="out"), "Patient/out"), get("Patient/no"))
    assert_outcome(client.post("", json=body), 404, expression="Bundle.entry[2]")
    assert client.get(f"Patient/{pid}").status_code == 200
    assert history_total(client, f"Patient/{pid}/_history") == 1
    assert_outcome(client.get("Patient/out"), 404)


def test_conditional_create_in_a_transaction_does_not_duplicate(client: httpx.Client) -> None:
    existing = created_id(client.post("Patient", json=patient(identifier=nhs("222"))))
    for _ in range(2):
        p = urn()
        when = f"identifier={SYSTEM}|222"
        entries = ok(
            client, post(patient(identifier=nhs("222")), p, ifNoneExist=when), post(observation(p))
        )
        assert statuses(entries) == ["200 OK", "201 Created"]
        assert rid(entries[0]) == existing
        assert entries[0]["response"]["location"].endswith(f"/Patient/{existing}/_history/1")
        assert subject_of(client, entries[1]) == f"Patient/{existing}"
    assert history_total(client, "Patient/_history") == 1


def test_put_entries_with_a_full_url_map_it_to_the_id_they_update(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient(identifier=nhs("555"))))
    p, q, r = urn(), urn(), urn()
    matched = put(patient(identifier=nhs("555")), f"Patient?identifier={SYSTEM}|555", p)
    fresh = put(patient(identifier=nhs("556")), f"Patient?identifier={SYSTEM}|556", q)
    plain = put(patient(id="put-1"), "Patient/put-1", r)
    refs = [post(observation(x)) for x in (p, q, r)]
    entries = ok(client, *refs, matched, fresh, plain)
    assert statuses(entries) == ["201 Created"] * 3 + ["200 OK", "201 Created", "201 Created"]
    assert rid(entries[3]) == pid
    assert subject_of(client, entries[0]) == f"Patient/{pid}"
    assert subject_of(client, entries[1]) == f"Patient/{rid(entries[4])}"
    assert subject_of(client, entries[2]) == "Patient/put-1"


def test_conditional_references_resolve_to_the_one_match_and_fail_on_none_or_several(
    client: httpx.Client,
) -> None:
    pid = created_id(client.post("Patient", json=patient(identifier=nhs("333"))))
    entries = ok(client, post(observation(f"Patient?identifier={SYSTEM}|333")))
    assert subject_of(client, entries[0]) == f"Patient/{pid}"
    none = client.post("", json=txn(post(observation(f"Patient?identifier={SYSTEM}|404"))))
    assert_outcome(none, 412, expression="Bundle.entry[0]")
    client.post("Patient", json=patient(identifier=nhs("444")))
    client.post("Patient", json=patient(identifier=nhs("444")))
    several = client.post("", json=txn(post(observation(f"Patient?identifier={SYSTEM}|444"))))
    assert_outcome(several, 412, expression="Bundle.entry[0]")
    assert history_total(client, "Observation/_history") == 1


def test_a_stale_if_match_fails_the_whole_transaction_with_412(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    client.put(f"Patient/{pid}", json=patient(id=pid, gender="male"))
    stale = put(patient(id=pid, gender="other"), f"Patient/{pid}", ifMatch='W/"1"')
    response = client.post("", json=txn(post(patient(), urn()), stale))
    assert_outcome(response, 412, expression="Bundle.entry[1]")
    assert client.get(f"Patient/{pid}").json()["gender"] == "male"
    assert history_total(client, "Patient/_history") == 2
    current = put(patient(id=pid, gender="other"), f"Patient/{pid}", ifMatch='W/"2"')
    assert ok(client, current)[0]["response"]["etag"] == 'W/"3"'


def test_a_transaction_may_not_change_one_resource_twice(client: httpx.Client) -> None:
    twice = [put(patient(id="twice"), "Patient/twice"), entry("DELETE", "Patient/twice")]
    assert_outcome(client.post("", json=txn(*twice)), 400, expression="Bundle.entry[0]")
    assert_outcome(client.get("Patient/twice"), 404)


def test_get_entries_return_reads_vreads_and_history(client: httpx.Client) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    entries = ok(
        client, get(f"Patient/{pid}"), get(f"Patient/{pid}/_history/1"), get("Patient/_history")
    )
    assert statuses(entries) == ["200 OK"] * 3
    assert rid(entries[0]) == pid
    assert entries[0]["response"]["etag"] == 'W/"1"'
    assert entries[1]["resource"]["meta"]["versionId"] == "1"
    assert entries[2]["resource"]["type"] == "history"
    assert len(entries[2]["resource"]["entry"]) == 1


def test_each_entry_holds_the_stored_version_and_its_exact_last_update(
    client: httpx.Client,
) -> None:
    p = urn()
    entries = ok(client, post(patient(), p), post(observation(p)), get("Patient?_count=1"))
    for created in entries[:2]:
        read = client.get(created["response"]["location"]).json()
        assert created["resource"] == read
        # to the microsecond, as the resource says, not the second of Last-Modified
        assert created["response"]["lastModified"] == read["meta"]["lastUpdated"]
    assert entries[2]["resource"]["type"] == "searchset"


def test_pretty_indents_a_transaction_response(client: httpx.Client) -> None:
    response = client.post("", params={"_pretty": "true"}, json=txn(post(patient())))
    assert response.status_code == 200, response.text
    assert response.text.startswith('{\n  "resourceType": "Bundle"')
    assert '\n        "resourceType": "Patient"' in response.text
    plain = client.post("", json=txn(post(patient())))
    assert "\n" not in plain.text


def test_prefer_return_minimal_leaves_resources_out(client: httpx.Client) -> None:
    [entry] = ok(client, post(patient()), headers={"Prefer": "return=minimal"})
    assert entry["response"]["status"] == "201 Created"
    assert "resource" not in entry
    assert entry["response"]["location"]
    assert entry["response"]["lastModified"].endswith("Z")


def test_absolute_request_urls_must_be_on_this_server(
    client: httpx.Client, server: LiveServer
) -> None:
    entries = ok(client, put(patient(id="abs-1"), f"{server.base}/Patient/abs-1"))
    assert statuses(entries) == ["201 Created"]
    elsewhere = put(patient(id="abs-2"), "https://elsewhere.example/fhir/Patient/abs-2")
    response = client.post("", json=txn(elsewhere))
    assert_outcome(response, 400, expression="Bundle.entry[0].request.url")


# -- batch ---------------------------------------------------------------------------------


def test_batch_entries_succeed_or_fail_on_their_own(client: httpx.Client) -> None:
    p = urn()
    entries = ok(
        client,
        post(patient(), p),
        post(patient(birthDate="the eighties")),
        {"fullUrl": urn()},
        get("Patient/nobody"),
        put(patient(id="batch-1"), "Patient/batch-1"),
        {"request": {"method": "FETCH", "url": "Patient"}},
        post(observation(p)),
        kind="batch",
    )
    bad, created = "400 Bad Request", "201 Created"
    assert statuses(entries) == [created, bad, bad, "404 Not Found", created, bad, created]
    for failed in (1, 2, 3, 5):
        assert entries[failed]["response"]["outcome"]["resourceType"] == "OperationOutcome"
        assert "resource" not in entries[failed]
    assert client.get(f"Patient/{rid(entries[0])}").status_code == 200
    assert client.get("Patient/batch-1").status_code == 200
    assert history_total(client, "Patient/_history") == 2
    # A batch does not resolve references between its entries (the spec leaves them as sent).
    assert entries[6]["resource"]["subject"]["reference"] == p


def test_batch_reads_return_the_resource_and_prefer_operation_outcome_is_honoured(
    client: httpx.Client,
) -> None:
    pid = created_id(client.post("Patient", json=patient()))
    prefer = {"Prefer": "return=OperationOutcome"}
    read, made = ok(client, get(f"Patient/{pid}"), post(patient()), kind="batch", headers=prefer)
    assert statuses([read, made]) == ["200 OK", "201 Created"]
    assert rid(read) == pid
    assert "resource" not in made
    assert made["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert made["response"]["location"]


def test_a_nested_bundle_is_refused(client: httpx.Client) -> None:
    nested = {"resource": txn(post(patient())), "request": {"method": "POST", "url": ""}}
    response = client.post("", json=txn(nested))
    assert_outcome(response, 400, expression="Bundle.entry[0].request.url")
    batch = ok(client, nested, post(patient()), kind="batch")
    assert statuses(batch) == ["400 Bad Request", "201 Created"]


# -- malformed Bundles ---------------------------------------------------------------------


def test_a_body_that_is_not_a_bundle_is_4xx(client: httpx.Client) -> None:
    assert_outcome(client.post("", json=patient()), 400)
    assert_outcome(client.post("", json=[1, 2]), 400)
    fhir_json, fhir_xml = "application/fhir+json", "application/fhir+xml"
    assert_outcome(client.post("", content=b"{x", headers={"content-type": fhir_json}), 400)
    assert_outcome(client.post("", content=b"<Bundle/>", headers={"content-type": fhir_xml}), 415)
    assert_outcome(client.post("", json={**txn(), "surprise": True}), 400, code="structure")


@pytest.mark.parametrize("kind", ["collection", "document", "searchset", None, 7])
def test_a_bundle_that_is_neither_batch_nor_transaction_is_400(
    client: httpx.Client, kind: object
) -> None:
    assert_outcome(client.post("", json=txn(post(patient()), kind=kind)), 400)


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"resource": patient()}, "Bundle.entry[1].request"),
        ({"request": {"url": "Patient"}, "resource": patient()}, "Bundle.entry[1].request.method"),
        ({"request": {"method": "POST"}, "resource": patient()}, "Bundle.entry[1].request.url"),
        ({"request": {"method": "POST", "url": "Patient"}}, "Bundle.entry[1]"),
        ({"request": {"method": "GET", "url": "x"}, "resource": 3}, "Bundle.entry[1].resource"),
        ("not an object", "Bundle.entry[1]"),
        (post(observation(urn())), "Bundle.entry[1]"),  # a urn that no fullUrl names
    ],
)
def test_a_malformed_entry_fails_a_transaction_before_anything_is_written(
    client: httpx.Client, entry: object, where: str
) -> None:
    assert_outcome(client.post("", json=txn(post(patient()), entry)), 400, expression=where)
    assert history_total(client) == 0


def test_a_bundle_with_too_many_entries_is_refused_and_an_empty_one_is_fine(
    client: httpx.Client, server: LiveServer
) -> None:
    state, four = server.app.state, [post(patient()) for _ in range(4)]
    services = state.services
    capped = services.settings.model_copy(update={"max_bundle_entries": 3})
    state.services = dataclasses.replace(services, settings=capped)
    try:
        assert_outcome(client.post("", json=txn(*four)), 413, code="too-costly")
        assert_outcome(client.post("", json=txn(*four, kind="batch")), 413)
        assert history_total(client) == 0
        assert statuses(ok(client, *four[:3])) == ["201 Created"] * 3
        assert ok(client) == []  # an empty transaction is fine: an empty response
    finally:
        state.services = services
