"""Index-bound compilation: a driving criterion plus per-candidate probes, inside-out chains and
starts-with as an index range give the same answers (https://hl7.org/fhir/R4/search.html), and
SQLite plans a patient-scoped search from the reference index, not from every resource of the
type.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.dialects import postgresql, sqlite

from dhr.search import compartment
from dhr.search.compile import matching_keys, page_query
from dhr.search.params import Criterion, parse_search
from dhr.search.rows import DateRow, IndexRow, ReferenceRow, StringRow, TokenRow
from dhr.search.sql.dialect import successor
from dhr.store.index_writer import write_index_rows
from dhr.store.models import ResourceRow
from tests.conftest import empty_tables

LOINC = "http://loinc.org"
DAY = 86_400_000_000
Y2020 = 1_577_836_800_000_000


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    empty_tables(engine)
    with engine.begin() as connection:
        yield connection
        connection.rollback()


def add(
    conn: Connection, res_type: str, res_id: str, rows: list[IndexRow], deleted: bool = False
) -> int:
    values = {
        "res_type": res_type,
        "res_id": res_id,
        "version_id": 1,
        "deleted": deleted,
        "last_updated": 0,
    }
    key = int(
        conn.execute(insert(ResourceRow).values(values).returning(ResourceRow.key)).scalar_one()
    )
    write_index_rows(conn, key, res_type, rows)
    return key


def criteria(res_type: str, query: str) -> tuple[Criterion, ...]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    return parse_search(res_type, pairs, "http://x/fhir", 100).criteria  # type: ignore[arg-type]


def search(conn: Connection, res_type: str, query: str) -> set[int]:
    return set(conn.execute(matching_keys(res_type, criteria(res_type, query))).scalars())


def obs(conn: Connection, res_id: str, patient: str, code: str, day: int) -> int:
    rows: list[IndexRow] = [
        ReferenceRow("subject", "Patient", patient, None, None),
        ReferenceRow("patient", "Patient", patient, None, None),
        TokenRow("code", LOINC, code),
        DateRow("date", Y2020 + day * DAY, Y2020 + (day + 1) * DAY),
    ]
    return add(conn, "Observation", res_id, rows)


def test_successor_bounds_exactly_the_strings_with_the_prefix() -> None:
    assert successor("west") == "wesu"
    assert successor("") is None
    assert successor("a" + chr(0x10FFFF)) == "b"
    assert successor(chr(0x10FFFF)) is None


def test_string_prefix_range_matches_starts_with_only(conn: Connection) -> None:
    keys = {
        name: add(conn, "Patient", f"p{i}", [StringRow("name", name, name)])
        for i, name in enumerate(["wes", "west", "westbrook", "wesu", "wesz", "awest", "wést"])
    }
    assert search(conn, "Patient", "name=west") == {keys["west"], keys["westbrook"]}
    assert search(conn, "Patient", "name=wes") == {
        keys[n] for n in ("wes", "west", "westbrook", "wesu", "wesz")
    }
    assert search(conn, "Patient", "name:contains=est") == {
        keys[n] for n in ("west", "westbrook", "awest")
    }


def test_driver_and_probes_agree_with_the_criteria(conn: Connection) -> None:
    a1 = obs(conn, "a1", "a", "1-1", 0)
    a2 = obs(conn, "a2", "a", "2-2", 5)
    a3 = obs(conn, "a3", "a", "1-1", 40)
    b1 = obs(conn, "b1", "b", "1-1", 0)
    bare = add(conn, "Observation", "bare", [ReferenceRow("subject", "Patient", "a", None, None)])
    assert search(conn, "Observation", f"subject=Patient/a&code={LOINC}|1-1") == {a1, a3}
    assert search(conn, "Observation", f"code={LOINC}|1-1&subject=Patient/a") == {a1, a3}
    window = "date=ge2020-01-01&date=le2020-01-10"
    assert search(conn, "Observation", f"subject=Patient/a&{window}") == {a1, a2}
    assert search(conn, "Observation", f"subject=Patient/a&code:not={LOINC}|1-1") == {a2, bare}
    assert search(conn, "Observation", "subject=Patient/a&code:missing=true") == {bare}
    assert search(conn, "Observation", "subject=Patient/a&date:missing=false") == {a1, a2, a3}
    assert search(conn, "Observation", f"code={LOINC}|1-1&{window}") == {a1, b1}
    assert search(conn, "Observation", "_id=a1,b1&subject=Patient/b") == {b1}


def test_compartment_driver_and_probe(conn: Connection) -> None:
    a1 = obs(conn, "a1", "a", "1-1", 0)
    obs(conn, "b1", "b", "1-1", 0)
    owner = add(conn, "Patient", "a", [StringRow("name", "ann", "Ann")])
    add(conn, "Patient", "b", [StringRow("name", "ann", "Ann")])
    inside = compartment.criterion("Patient", "a", "Observation")
    found = conn.execute(matching_keys("Observation", [inside])).scalars()
    assert set(found) == {a1}
    own = compartment.criterion("Patient", "a", "Patient")
    named = (own, *criteria("Patient", "name=ann"))
    assert set(conn.execute(matching_keys("Patient", named)).scalars()) == {owner}


def test_chain_is_resolved_inside_out(conn: Connection) -> None:
    a1 = obs(conn, "a1", "a", "1-1", 0)
    obs(conn, "b1", "b", "1-1", 0)
    c1 = obs(conn, "c1", "c", "2-2", 0)
    add(conn, "Patient", "a", [StringRow("name", "west", "West")])
    add(conn, "Patient", "b", [StringRow("name", "east", "East")])
    add(conn, "Patient", "c", [StringRow("name", "westbrook", "Westbrook")], deleted=True)
    assert search(conn, "Observation", "subject.name=west") == {a1}
    assert search(conn, "Observation", "subject:Patient.name=west") == {a1}
    assert search(conn, "Observation", f"code={LOINC}|1-1&subject.name=west") == {a1}
    assert c1 not in search(conn, "Observation", "subject.name=westbrook")


def test_sqlite_plan_of_a_patient_search_is_driven_by_the_reference(
    conn: Connection, engine_name: str
) -> None:
    if engine_name != "sqlite":
        pytest.skip("SQLite query plan")
    crit = criteria("Observation", f"subject=Patient/a&code={LOINC}|1-1&date=ge2020")
    stmt = page_query("Observation", crit, (), 21, None)
    sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
    plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    assert not any("(res_type=?)" in step for step in plan), plan
    assert any("INTEGER PRIMARY KEY" in step for step in plan), plan
    assert any("ix_ix_token_resource_key_param_code_system" in step for step in plan), plan


def test_one_criterion_drives_and_the_others_probe() -> None:
    crit = criteria("Observation", f"code={LOINC}|1-1&subject=Patient/a&date=ge2020")
    stmt = page_query("Observation", crit, (), 21, None)
    pg = str(stmt.compile(dialect=postgresql.dialect()))
    lite = str(stmt.compile(dialect=sqlite.dialect()))
    # The reference drives (an InitPlan array on PostgreSQL); code and date are probes.
    assert pg.count("= ANY(ARRAY(SELECT") == 1
    assert "ix_reference_1.target_id = %(target_id_1)s" in pg.split("ANY(ARRAY(")[1]
    assert pg.count("EXISTS (SELECT") == 2
    assert "+resource_1.res_type" in lite
    assert "+resource_1.res_type" not in pg


def test_a_search_by_absolute_url_reads_the_partial_url_index(
    conn: Connection, engine_name: str
) -> None:
    """Only rows with an absolute URL are in the (type, param, url) index (migration 0014); a
    search by one still finds them, and SQLite reads that index for it."""
    elsewhere = "https://other.example/fhir/Patient/9"
    far = add(conn, "Observation", "far", [ReferenceRow("subject", None, None, None, elsewhere)])
    add(conn, "Observation", "near", [ReferenceRow("subject", "Patient", "9", None, None)])
    assert search(conn, "Observation", f"subject={elsewhere}") == {far}
    if engine_name != "sqlite":
        return
    stmt = matching_keys("Observation", criteria("Observation", f"subject={elsewhere}"))
    sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
    plan = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
    assert any("ix_ix_reference_res_type_param_url" in step for step in plan), plan
