"""Aliases kept from one search statement to the next (dhr/search/sql/aliases.py): distinct
within a statement, shared between statements, and the same SQL as fresh aliases give."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from dhr.search.compile import RESOURCE, count_query, page_query
from dhr.search.params import parse_search
from dhr.search.sql.aliases import MAX_KEPT, alias_of, one_statement

BASE = "http://example.org/fhir"


def test_a_statement_gets_a_distinct_alias_each_time_and_the_next_the_same_ones() -> None:
    with one_statement():
        first = [alias_of(RESOURCE) for _ in range(3)]
        with one_statement():  # nested: part of the same statement
            first.append(alias_of(RESOURCE))
    assert len({id(a) for a in first}) == 4
    with one_statement():
        again = [alias_of(RESOURCE) for _ in range(4)]
    assert again == first


def test_outside_a_statement_and_beyond_the_limit_aliases_are_fresh() -> None:
    assert alias_of(RESOURCE) is not alias_of(RESOURCE)
    with one_statement():
        many = [alias_of(RESOURCE) for _ in range(MAX_KEPT + 2)]
    with one_statement():
        more = [alias_of(RESOURCE) for _ in range(MAX_KEPT + 2)]
    assert len({id(a) for a in many}) == MAX_KEPT + 2
    assert more[:MAX_KEPT] == many[:MAX_KEPT]
    assert more[MAX_KEPT] is not many[MAX_KEPT]


def test_threads_count_their_own_statements() -> None:
    seen: dict[str, list[int]] = {}
    ready = threading.Barrier(2)

    def build(name: str) -> None:
        with one_statement():
            ready.wait()
            seen[name] = [id(alias_of(RESOURCE)) for _ in range(2)]

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen["a"] == seen["b"]  # each thread's statement starts from the first alias


@pytest.mark.parametrize(
    ("res_type", "pairs"),
    [
        ("Observation", [("subject", "Patient/1"), ("code", "http://loinc.org|1-8")]),
        ("Observation", [("date", "ge2020"), ("_sort", "-date,code")]),
        ("Observation", [("subject.name", "x"), ("subject:Patient.organization.name", "y")]),
        ("Patient", [("_has:Observation:subject:code", "1-8"), ("name", "a,b")]),
        ("Observation", [("code-value-quantity", "1-8$gt5"), ("value-quantity", "lt3")]),
        ("Observation", [("code:not", "x"), ("status:missing", "true"), ("_tag", "a|b")]),
    ],
)
def test_a_search_statement_reads_the_same_with_kept_aliases(
    res_type: str, pairs: list[tuple[str, str]]
) -> None:
    sreq = parse_search(res_type, pairs, BASE, 100)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        for build in (
            lambda: page_query(res_type, sreq.criteria, sreq.sort, 21, None),
            lambda: count_query(res_type, sreq.criteria),
        ):
            fresh = str(build().compile(dialect=dialect))
            for _ in range(2):
                with one_statement():
                    assert str(build().compile(dialect=dialect)) == fresh
