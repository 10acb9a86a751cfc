"""Including other resources in search results, as https://hl7.org/fhir/R4/search.html#include
words it: ``_include``, ``_revinclude``, the ``:iterate`` modifier and the ``*`` wildcard.

Included resources follow the page's matches with ``search.mode = include``, appear once, and
are computed for that page only, with a bounded number of SQL statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine, event

from tests.helpers import assert_outcome, observation, patient


def transaction(client: httpx.Client, *resources: dict[str, Any]) -> list[str]:
    """Create ``resources`` in one transaction (``urn:uuid:<n>`` refers to the n-th); their ids."""
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}",
            "resource": res,
            "request": {"method": "POST", "url": res["resourceType"]},
        }
        for i, res in enumerate(resources)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.post("", json=bundle)
    assert response.status_code == 200, response.text
    return [e["resource"]["id"] for e in response.json()["entry"]]


def ref(n: int) -> str:
    return f"urn:uuid:00000000-0000-0000-0000-{n:012d}"


def modes(response: httpx.Response) -> list[tuple[str, str]]:
    """``(mode, Type/id)`` of every resource entry, in Bundle order."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "searchset"
    return [
        (e["search"]["mode"], f"{e['resource']['resourceType']}/{e['resource']['id']}")
        for e in body.get("entry", [])
        if e["search"]["mode"] != "outcome"
    ]


def included(response: httpx.Response) -> list[str]:
    return [name for mode, name in modes(response) if mode == "include"]


def matched(response: httpx.Response) -> list[str]:
    return [name for mode, name in modes(response) if mode == "match"]


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        # Resource reads only: the audit chainer and token checks run on their own schedule.
        if sql.lstrip().upper().startswith("SELECT") and "audit_" not in sql and "resource" in sql:
            seen.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def practitioner() -> dict[str, Any]:
    return {"resourceType": "Practitioner", "name": [{"family": "Who"}]}


def test_include_adds_the_referenced_resource_once_after_the_matches(
    client: httpx.Client,
) -> None:
    pid, *obs = transaction(client, patient(), *(observation(ref(0)) for _ in range(3)))
    response = client.get("Observation", params={"_include": "Observation:subject"})
    assert [m for m, _ in modes(response)] == ["match"] * 3 + ["include"]
    assert sorted(matched(response)) == sorted(f"Observation/{o}" for o in obs)
    assert included(response) == [f"Patient/{pid}"]
    self_link = response.json()["link"][0]["url"]
    assert "_include=Observation:subject" in self_link


def test_include_target_type_modifier_restricts_the_targets(client: httpx.Client) -> None:
    pid, prac, _ = transaction(
        client, patient(), practitioner(), observation(ref(0), performer=[{"reference": ref(1)}])
    )
    both = "Observation?_include=Observation:performer&_include=Observation:subject"
    assert sorted(included(client.get(both))) == sorted([f"Patient/{pid}", f"Practitioner/{prac}"])
    only = client.get("Observation?_include=Observation:performer:Practitioner")
    assert included(only) == [f"Practitioner/{prac}"]
    assert included(client.get("Observation?_include=Observation:subject:Group")) == []


def test_include_wildcard_follows_every_reference(client: httpx.Client) -> None:
    pid, prac, _ = transaction(
        client, patient(), practitioner(), observation(ref(0), performer=[{"reference": ref(1)}])
    )
    got = included(client.get("Observation?_include=*"))
    assert sorted(got) == sorted([f"Patient/{pid}", f"Practitioner/{prac}"])


def test_revinclude_adds_the_resources_that_refer_to_the_matches(client: httpx.Client) -> None:
    provenance = {
        "resourceType": "Provenance",
        "target": [{"reference": ref(0)}],
        "recorded": "2024-01-01T00:00:00Z",
        "agent": [{"who": {"display": "someone"}}],
    }
    pid, _, prov = transaction(client, patient(), patient(), provenance)
    response = client.get("Patient", params={"_id": pid, "_revinclude": "Provenance:target"})
    assert modes(response) == [("match", f"Patient/{pid}"), ("include", f"Provenance/{prov}")]
    everyone = client.get("Patient?_revinclude=*")
    assert included(everyone) == [f"Provenance/{prov}"]


def test_iterate_follows_the_includes_of_included_resources(client: httpx.Client) -> None:
    org = {"resourceType": "Organization", "name": "Clinic"}
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": ref(1)},
        "medicationCodeableConcept": {"text": "aspirin"},
    }
    oid, pid, _ = transaction(
        client, org, patient(managingOrganization={"reference": ref(0)}), request
    )
    plain = "MedicationRequest?_include=MedicationRequest:patient&_include=Patient:organization"
    assert included(client.get(plain)) == [f"Patient/{pid}"]
    iterate = plain.replace("_include=Patient", "_include:iterate=Patient")
    assert included(client.get(iterate)) == [f"Patient/{pid}", f"Organization/{oid}"]


def test_iterate_stops_at_cycles_and_never_repeats_a_match(client: httpx.Client) -> None:
    a, b = transaction(
        client,
        patient(link=[{"other": {"reference": ref(1)}, "type": "seealso"}]),
        patient(link=[{"other": {"reference": ref(0)}, "type": "seealso"}]),
    )
    response = client.get("Patient", params={"_id": a, "_include:iterate": "Patient:link"})
    assert modes(response) == [("match", f"Patient/{a}"), ("include", f"Patient/{b}")]
    both = client.get("Patient", params={"_include": "Patient:link"})
    assert sorted(matched(both)) == sorted([f"Patient/{a}", f"Patient/{b}"])
    assert included(both) == []


def test_includes_are_computed_for_the_page_only(client: httpx.Client) -> None:
    made = transaction(
        client, *(patient() for _ in range(4)), *(observation(ref(i)) for i in range(4))
    )
    patients = made[:4]
    first = client.get("Observation", params={"_include": "Observation:subject", "_count": "2"})
    assert included(first) == [f"Patient/{p}" for p in patients[:2]]
    next_url = next(x["url"] for x in first.json()["link"] if x["relation"] == "next")
    second = client.get(next_url)
    assert included(second) == [f"Patient/{p}" for p in patients[2:]]


def test_bad_include_parameters_are_400(client: httpx.Client) -> None:
    for value in (
        "Observation:nope",
        "Observation:code",
        "Nothing:subject",
        "Observation",
        "Observation:subject:Medication",
    ):
        assert_outcome(client.get("Observation", params={"_include": value}), 400)
    assert_outcome(client.get("Patient", params={"_revinclude": "Provenance:recorded"}), 400)
    assert_outcome(client.get("Patient", params={"_include:deep": "Patient:link"}), 400)


def test_include_statements_do_not_grow_with_the_page(client: httpx.Client, engine: Engine) -> None:
    """One statement per include parameter per round, whatever the page size (no N+1)."""
    made = transaction(
        client,
        practitioner(),
        *(patient(generalPractitioner=[{"reference": ref(0)}]) for _ in range(10)),
        *(observation(ref(i + 1)) for i in range(10)),
    )
    assert len(made) == 21
    query = {
        "_include": "Observation:subject",
        "_include:iterate": "Patient:general-practitioner",
        "_revinclude": "Provenance:target",
        "_total": "none",
    }
    counts = {}
    for size in (2, 10):
        with statements(engine) as seen:
            response = client.get("Observation", params={**query, "_count": str(size)})
        assert len(included(response)) == size + 1
        counts[size] = len(seen)
    assert counts[2] == counts[10]
    # the consent policy's one check that nothing it compiled changed, the page, then round 1
    # (subject, revinclude), then round 2 (general-practitioner) and round 3 (the Practitioner
    # has no references to follow, so no statement)
    assert counts[10] <= 5, counts
