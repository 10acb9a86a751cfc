"""The SQL of access restrictions on both engines: the launch patient's record through local
references only (https://hl7.org/fhir/R4/compartmentdefinition-patient.html), OR-ed
alternatives, visibility of resources of any type, visibility-filtered history, and a
patient-scoped search that SQLite plans from the reference index."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, insert, select, text

from dhr.search.compile import matching_keys, page_query
from dhr.search.params import parse_search
from dhr.search.rows import IndexRow, ReferenceRow, TokenRow
from dhr.store import access_store, policy_store
from dhr.store.access_store import Allowance, AnyOf, PatientRecord
from dhr.store.index_writer import write_index_rows
from dhr.store.models import ResourceRow, VersionRow
from tests.conftest import empty_tables

BASE = "http://dhr.example/fhir"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    empty_tables(engine)
    with engine.begin() as connection:
        yield connection
        connection.rollback()


def add(conn: Connection, res_type: str, res_id: str, rows: list[IndexRow]) -> int:
    values = {"res_type": res_type, "res_id": res_id, "version_id": 1, "deleted": False}
    key = int(
        conn.execute(
            insert(ResourceRow).values(last_updated=0, **values).returning(ResourceRow.key)
        ).scalar_one()
    )
    conn.execute(
        insert(VersionRow).values(
            resource_key=key, last_updated=0, method="POST", data=b"{}", **values
        )
    )
    write_index_rows(conn, key, res_type, rows)
    return key


def obs(conn: Connection, res_id: str, subject: str, category: str, url: str | None = None) -> int:
    kind, _, ident = subject.partition("/")
    return add(
        conn,
        "Observation",
        res_id,
        [
            ReferenceRow("subject", kind, ident, None, url),
            ReferenceRow("patient", kind, ident, None, url),
            TokenRow("category", CAT, category),
        ],
    )


@pytest.fixture
def keys(conn: Connection) -> dict[str, int]:
    return {
        "alice": add(conn, "Patient", "alice", []),
        "bob": add(conn, "Patient", "bob", []),
        "a-lab": obs(conn, "a-lab", "Patient/alice", "laboratory"),
        "a-vit": obs(conn, "a-vit", "Patient/alice", "vital-signs"),
        "a-abs": obs(conn, "a-abs", "Patient/alice", "laboratory", f"{BASE}/Patient/alice"),
        "foreign": obs(
            conn, "foreign", "Patient/alice", "laboratory", "http://x.org/Patient/alice"
        ),
        "b-lab": obs(conn, "b-lab", "Patient/bob", "laboratory"),
        "prac": add(conn, "Practitioner", "prac", []),
    }


def search(conn: Connection, res_type: str, terms: tuple[object, ...]) -> set[int]:
    return set(conn.execute(matching_keys(res_type, terms)).scalars())  # type: ignore[arg-type]


def lab() -> tuple[object, ...]:
    return parse_search("Observation", [("category", "laboratory")], BASE, 10).criteria


def test_the_record_is_reached_by_local_references_only(
    conn: Connection, keys: dict[str, int]
) -> None:
    alice = PatientRecord("alice", BASE)
    assert search(conn, "Observation", (alice,)) == {keys["a-lab"], keys["a-vit"], keys["a-abs"]}
    assert search(conn, "Patient", (alice,)) == {keys["alice"]}
    assert search(conn, "Practitioner", (alice,)) == set()
    assert set(conn.execute(alice.keys()).scalars()) == {
        keys["alice"],
        keys["a-lab"],
        keys["a-vit"],
        keys["a-abs"],
    }


def test_alternatives_are_ored(conn: Connection, keys: dict[str, int]) -> None:
    alice, bob = PatientRecord("alice", BASE), PatientRecord("bob", BASE)
    either = AnyOf(((alice, *lab()), (bob,)))
    assert search(conn, "Observation", (either,)) == {keys["a-lab"], keys["a-abs"], keys["b-lab"]}
    ids = access_store.visible_ids(conn, "Observation", ["a-lab", "a-vit", "b-lab"], (either,))
    assert ids == {"a-lab", "b-lab"}


def test_visible_across_types(conn: Connection, keys: dict[str, int]) -> None:
    res = ResourceRow.__table__.alias()
    allowances = [
        Allowance(None, PatientRecord("alice", BASE), None),
        Allowance(frozenset({"Practitioner"})),
    ]
    got = set(
        conn.execute(select(res.c.key).where(access_store.visible(res, allowances))).scalars()
    )
    assert got == {keys["alice"], keys["a-lab"], keys["a-vit"], keys["a-abs"], keys["prac"]}
    assert (
        set(conn.execute(select(res.c.key).where(access_store.visible(res, []))).scalars()) == set()
    )


def test_history_keeps_only_visible_resources(conn: Connection, keys: dict[str, int]) -> None:
    allowances = [Allowance(frozenset({"Observation"}), PatientRecord("bob", BASE), None)]
    versions = access_store.history(conn, None, None, None, None, 50, None, allowances)
    assert [(v.res_type, v.res_id) for v in versions] == [("Observation", "b-lab")]
    everything = access_store.history(conn, None, None, None, None, 50, None, None)
    assert len(everything) == len(keys)
    typed = access_store.history(
        conn, None, None, None, None, 50, None, [Allowance(frozenset({"Patient"}))]
    )
    assert {v.res_id for v in typed} == {"alice", "bob"}


def test_sqlite_plans_a_patient_scoped_search_from_the_reference_index(
    conn: Connection, engine_name: str
) -> None:
    if engine_name != "sqlite":
        pytest.skip("SQLite query plan")
    terms = (PatientRecord("alice", BASE), *lab())
    stmt = page_query("Observation", terms, (), 21, None)  # type: ignore[arg-type]
    sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
    plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    # No table is scanned; the chosen page (at most 21 rows, materialised) is read whole.
    scans = [step for step in plan if "SCAN" in step and step != "SCAN anon_1"]
    assert not scans, "\n".join(plan)
    assert any("ix_ix_reference_res_type_param_target_id_target_type" in step for step in plan)


def test_sqlite_reads_a_type_page_in_key_order_from_the_type_index(
    conn: Connection, engine_name: str
) -> None:
    """A page of one type with no criteria (``Condition?_count=20``) walks that type's rows in
    key order and stops when the page is full: no walk of every type's rows by the primary key,
    no sort of all the type's rows."""
    if engine_name != "sqlite":
        pytest.skip("SQLite query plan")
    stmt = page_query("Condition", (), (), 21, None)
    sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
    plan = [(row[0], row[1], row[-1]) for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    page = next(node for node, _, step in plan if step == "MATERIALIZE anon_1")
    choosing = [step for _, parent, step in plan if parent == page]
    assert choosing == ["SEARCH resource_1 USING INDEX ix_resource_res_type_key (res_type=?)"], plan


def test_sqlite_asks_for_rows_of_several_patients_from_an_index(
    conn: Connection, engine_name: str
) -> None:
    """Whether a type has live rows of several patients is one probe of an index that holds
    only such rows: the partial index (its predicate repeated word for word) or the type's rows
    by patient key (migration 0012), never a scan of the type's rows."""
    if engine_name != "sqlite":
        pytest.skip("SQLite query plan")
    sql = policy_store._SEVERAL_SQL.format("'Observation'")
    plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    assert plan in (
        ["SEARCH resource USING INDEX ix_resource_several_patients (res_type=?)"],
        [
            "SEARCH resource USING INDEX ix_resource_res_type_patient_key"
            " (res_type=? AND patient_key=?)"
        ],
    )
    assert policy_store.has_several(conn, "Observation") is False
    key = obs(conn, "two", "Patient/a", "laboratory")
    conn.execute(text("UPDATE resource SET patient_key = '*' WHERE key = :k"), {"k": key})
    assert policy_store.has_several(conn, "Observation") is True
    conn.execute(text("UPDATE resource SET deleted = true WHERE key = :k"), {"k": key})
    assert policy_store.has_several(conn, "Observation") is False
