"""The compiler against hand-written index rows (independent of index extraction).

https://hl7.org/fhir/R4/search.html#composite (components joined on one element) and
#token, #missing; rows are written with :func:`dhr.store.index_writer.write_index_rows`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, insert

from dhr.search.compile import matching_keys
from dhr.search.params import parse_search
from dhr.search.rows import IndexRow, QuantityRow, TokenRow
from dhr.store.index_writer import write_index_rows
from dhr.store.models import ResourceRow
from tests.conftest import empty_tables

LOINC = "http://loinc.org"


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    empty_tables(engine)
    with engine.begin() as connection:
        yield connection
        connection.rollback()


def add(conn: Connection, res_id: str, rows: list[IndexRow], deleted: bool = False) -> int:
    values = {
        "res_type": "Observation",
        "res_id": res_id,
        "version_id": 1,
        "deleted": deleted,
        "last_updated": 0,
    }
    key = int(
        conn.execute(insert(ResourceRow).values(values).returning(ResourceRow.key)).scalar_one()
    )
    write_index_rows(conn, key, "Observation", rows)
    return key


def search(conn: Connection, query: str) -> set[int]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    req = parse_search("Observation", pairs, "http://x/fhir", 100)  # type: ignore[arg-type]
    return set(conn.execute(matching_keys("Observation", req.criteria)).scalars())


def cvq(grp: int, code: str, value: float, param: str = "code-value-quantity") -> list[IndexRow]:
    return [
        TokenRow(param, LOINC, code, None, grp, 1),
        QuantityRow(param, value, value, value, None, "mm[Hg]", None, grp, 2),
    ]


def test_composite_components_must_come_from_the_same_element(conn: Connection) -> None:
    # Systolic 120 and diastolic 80 in one resource: "systolic > 100" matches, but a systolic
    # code with the diastolic value must not mix across elements.
    both = add(conn, "bp", cvq(1, "8480-6", 120) + cvq(2, "8462-4", 80))
    low = add(conn, "low", cvq(1, "8480-6", 90) + cvq(2, "8462-4", 130))
    assert search(conn, f"code-value-quantity={LOINC}|8480-6$gt100") == {both}
    assert search(conn, f"code-value-quantity={LOINC}|8462-4$gt100") == {low}
    assert search(conn, "code-value-quantity:missing=false") == {both, low}


def test_a_combo_composite_reads_its_parts_and_never_mixes_their_elements(
    conn: Connection,
) -> None:
    # combo-code-value-quantity is stored as code-value-quantity (the Observation's own code
    # and value) and component-code-value-quantity (each component's): dhr.search.unions.
    # Both parts number their elements from 1, so grp 1 of one is not grp 1 of the other.
    own = add(conn, "own", cvq(1, "8480-6", 120))
    parts = add(
        conn,
        "parts",
        cvq(1, "29463-7", 70) + cvq(1, "8480-6", 90, "component-code-value-quantity"),
    )
    assert search(conn, f"combo-code-value-quantity={LOINC}|8480-6$gt100") == {own}
    assert search(conn, f"combo-code-value-quantity={LOINC}|8480-6$lt100") == {parts}
    # The Observation's own code with its component's value: different elements, no match.
    assert search(conn, f"combo-code-value-quantity={LOINC}|29463-7$lt80") == {parts}
    assert search(conn, f"combo-code-value-quantity={LOINC}|29463-7$gt80") == set()
    assert search(conn, "combo-code-value-quantity:missing=false") == {own, parts}


def test_a_combo_token_matches_a_code_in_either_part(conn: Connection) -> None:
    top = add(conn, "top", [TokenRow("code", LOINC, "85354-9")])
    inner = add(conn, "inner", [TokenRow("component-code", LOINC, "8480-6")])
    none = add(conn, "none", [TokenRow("status", None, "final")])
    assert search(conn, f"combo-code={LOINC}|85354-9") == {top}
    assert search(conn, f"combo-code={LOINC}|8480-6,{LOINC}|85354-9") == {top, inner}
    assert search(conn, "combo-code:missing=true") == {none}
    assert search(conn, f"combo-code:not={LOINC}|8480-6") == {top, none}


def test_token_rows_and_deleted_resources(conn: Connection) -> None:
    live = add(conn, "a", [TokenRow("status", None, "final")])
    add(conn, "b", [TokenRow("status", None, "final")], deleted=True)
    none = add(conn, "c", [])
    assert search(conn, "status=final") == {live}
    assert search(conn, "status:not=final") == {none}
    assert search(conn, "status:missing=true") == {none}
