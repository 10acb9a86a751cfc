"""Search result control: paging, sorting, totals, summaries, ignored and bad parameters.

https://hl7.org/fhir/R4/search.html#count, #paging, #sort, #total, #summary, #elements,
#errors (unknown parameters and ``Prefer: handling=strict``) and
https://hl7.org/fhir/R4/http.html#search; a page costs a bounded number of statements.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event

from tests.helpers import assert_outcome, created_id, observation, patient


def make_patients(client: httpx.Client, n: int) -> list[str]:
    out = []
    for i in range(n):
        body = patient(name=[{"family": f"Fam{i % 3}"}], birthDate=f"19{50 + i:02d}-01-01")
        out.append(created_id(client.post("Patient", json=body)))
    return out


def page_through(client: httpx.Client, url: str) -> Iterator[dict[str, Any]]:
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        bundle = response.json()
        yield bundle
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else ""


def match_ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def test_paging_returns_every_match_once_with_self_first_and_next(client: httpx.Client) -> None:
    created = make_patients(client, 7)
    pages = list(page_through(client, "Patient?_count=3"))
    assert [len(match_ids(p)) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in match_ids(p)] == created  # default order: creation
    first = pages[0]
    assert first["total"] == 7
    relations = {link["relation"] for link in first["link"]}
    assert {"self", "first", "next"} <= relations
    assert all(e["fullUrl"].endswith(f"/Patient/{e['resource']['id']}") for e in first["entry"])


def test_pages_neither_repeat_nor_skip_while_others_write(client: httpx.Client) -> None:
    created = make_patients(client, 6)
    seen: list[str] = []
    url = "Patient?_sort=birthdate&_count=2"
    for n, bundle in enumerate(page_through(client, url)):
        seen += match_ids(bundle)
        if n == 0:
            # A new, earlier-sorting patient and a deletion of an already-seen one.
            client.post("Patient", json=patient(birthDate="1900-01-01"))
            client.delete(f"Patient/{created[0]}")
    assert seen == created
    assert len(seen) == len(set(seen))


def test_sort_several_keys_descending_and_missing_last(client: httpx.Client) -> None:
    ids = make_patients(client, 6)
    nobody = created_id(client.post("Patient", json={"resourceType": "Patient"}))
    asc = match_ids(client.get("Patient?_sort=family,-birthdate").json())
    # Fam0: 0, 3; Fam1: 1, 4; Fam2: 2, 5 (later birth dates first); no family last.
    assert asc == [ids[3], ids[0], ids[4], ids[1], ids[5], ids[2], nobody]
    desc = match_ids(client.get("Patient?_sort=-birthdate").json())
    assert desc == [*reversed(ids), nobody]
    by_id = match_ids(client.get("Patient?_sort=-_id").json())
    assert by_id == sorted([*ids, nobody], reverse=True)
    paged = [
        i
        for b in page_through(client, "Patient?_sort=family,-birthdate&_count=2")
        for i in match_ids(b)
    ]
    assert paged == asc


def test_last_updated_sort_is_stable(client: httpx.Client) -> None:
    ids = make_patients(client, 4)
    assert match_ids(client.get("Patient?_sort=_lastUpdated").json()) == ids
    assert match_ids(client.get("Patient?_sort=-_lastUpdated").json()) == list(reversed(ids))


def test_total_modes_and_count_zero(client: httpx.Client) -> None:
    make_patients(client, 5)
    assert client.get("Patient?_count=2").json()["total"] == 5
    assert "total" not in client.get("Patient?_count=2&_total=none").json()
    assert client.get("Patient?_total=estimate").json()["total"] == 5
    zero = client.get("Patient?_count=0").json()
    assert zero["total"] == 5
    assert "entry" not in zero
    summary = client.get("Patient?_summary=count").json()
    assert summary["total"] == 5
    assert "entry" not in summary


def test_summary_and_elements_shape_each_entry(client: httpx.Client) -> None:
    make_patients(client, 1)
    summary = client.get("Patient?_summary=true").json()["entry"][0]["resource"]
    assert any(t["code"] == "SUBSETTED" for t in summary["meta"]["tag"])
    elements = client.get("Patient?_elements=gender").json()["entry"][0]["resource"]
    assert "gender" in elements
    assert "birthDate" not in elements


def test_unknown_parameters_are_ignored_reported_and_left_out_of_self(
    client: httpx.Client,
) -> None:
    make_patients(client, 2)
    bundle = client.get("Patient?nonsense=1&gender=female").json()
    assert len(match_ids(bundle)) == 2
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert outcome[0]["resource"]["issue"][0]["severity"] == "warning"
    assert "nonsense" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    self_url = bundle["link"][0]["url"]
    assert "gender=female" in self_url
    assert "nonsense" not in self_url
    strict = client.get("Patient?nonsense=1", headers={"Prefer": "handling=strict"})
    assert_outcome(strict, 400)


@pytest.mark.parametrize(
    "query",
    [
        "Patient?birthdate=2020-02-30",
        "Patient?birthdate=not-a-date",
        "Patient?gender=gt5&birthdate=xx2020",
        "Patient?gender:exact=male",
        "Patient?gender:nonsense=male",
        "Patient?gender.name=x",
        "Patient?_count=100000",
        "Patient?_count=-3",
        "Patient?_sort=nonsense",
        "Patient?_page=not-a-cursor",
        "Patient?_id=';%20DROP%20TABLE%20resource;--",
        "Patient?general-practitioner=';%20DROP%20TABLE%20resource;--",
        "Patient?birthdate=';%20DROP%20TABLE%20resource;--",
        "Patient?_total=everything",
        "Patient?_summary=maybe",
        "Observation?value-quantity=1|2",
        "Observation?code-value-quantity=x",
        "Patient?identifier:of-type=http://t|MR|1",
        "Location?near=1",
    ],
)
def test_bad_input_is_a_400_operation_outcome(client: httpx.Client, query: str) -> None:
    assert_outcome(client.get(query), 400)


def test_sql_metacharacters_in_a_string_are_just_text(client: httpx.Client) -> None:
    make_patients(client, 1)
    evil = "x'; DROP TABLE resource;--"
    response = client.get("Patient", params={"name": evil, "family:contains": "%' OR 1=1"})
    assert response.status_code == 200
    assert match_ids(response.json()) == []
    assert len(match_ids(client.get("Patient").json())) == 1


def test_one_search_page_costs_a_bounded_number_of_statements(
    client: httpx.Client, engine: Engine
) -> None:
    make_patients(client, 25)
    statements: list[str] = []

    def count(*args: Any) -> None:
        # The search's statements only: the audit chainer's thread runs on the same engine
        # whenever audit rows arrive (seen in CI: 3 of its statements inside the window), and the
        # token check polls the revocation and client tables once a second from whichever
        # request comes next (seen in CI: 3 statements on auth_* tables inside the window).
        sql = str(args[2])
        if not threading.current_thread().name.startswith("dhr-") and "auth_" not in sql:
            statements.append(sql)

    def cost(url: str) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert client.get(url).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    small = cost("Patient?_count=2&_sort=family&name=fam")
    large = cost("Patient?_count=20&_sort=family&name=fam")
    assert small == large, statements
    assert 1 <= small <= 4, statements
    # a first page with every match is its own total (no count), an empty one too
    assert cost("Patient?_count=30&name=fam") == small - 1, statements
    assert cost("Patient?_count=2&name=nobody") == small - 1, statements
    assert client.get("Patient?_count=2&name=nobody").json()["total"] == 0


def test_conditional_interactions_accept_any_search_parameter(client: httpx.Client) -> None:
    body = patient(name=[{"family": "Unique"}], gender="other")
    created = client.post("Patient", json=body, headers={"If-None-Exist": "family=unique"})
    assert created.status_code == 201
    again = client.post("Patient", json=body, headers={"If-None-Exist": "family=unique"})
    assert again.status_code == 200
    assert created_id(again) == created_id(created)
    assert client.put("Patient?family=unique&gender=other", json=body).status_code == 200
    assert_outcome(client.delete("Patient?nonsense=1"), 400)
    assert client.delete("Patient?family:exact=Unique").status_code == 200
    assert client.get(f"Patient/{created_id(created)}").status_code == 410


def test_sort_on_a_reference_and_search_in_a_batch(client: httpx.Client) -> None:
    a = created_id(client.post("Patient", json=patient()))
    b = created_id(client.post("Patient", json=patient()))
    for pid in sorted([a, b], reverse=True):
        client.post("Observation", json=observation(f"Patient/{pid}"))
    subjects = [
        e["resource"]["subject"]["reference"]
        for e in client.get("Observation?_sort=subject").json()["entry"]
    ]
    assert subjects == [f"Patient/{pid}" for pid in sorted([a, b])]
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": f"Observation?subject=Patient/{a}"}}],
    }
    response = client.post("", json=batch)
    assert response.status_code == 200, response.text
    inner = response.json()["entry"][0]
    assert inner["response"]["status"].startswith("200")
    assert inner["resource"]["total"] == 1


def test_the_capability_statement_lists_search_and_its_parameters(client: httpx.Client) -> None:
    rest = client.get("metadata").json()["rest"][0]
    obs = next(r for r in rest["resource"] if r["type"] == "Observation")
    assert "search-type" in {i["code"] for i in obs["interaction"]}
    params = {p["name"]: p for p in obs["searchParam"]}
    assert params["code"]["type"] == "token"
    assert params["code-value-quantity"]["type"] == "composite"
    assert params["_lastUpdated"]["definition"].startswith("http://hl7.org/fhir/SearchParameter/")
    assert "_filter" not in params
    assert "_text" not in params
