"""The search index writer (dhr/store/index_writer.py) stores every row as extracted, whichever
way it sends them: one at a time, queued and flushed per table, or (PostgreSQL, from
COPY_FROM rows on) in binary COPY, with integers in float columns and NULLs. A unit of work
whose rows cannot be written, or whose check fails while they are being written, leaves
nothing behind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from dhr.search.rows import (
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from dhr.store.db import before_commit, unit_of_work
from dhr.store.index_writer import COPY_FROM, queue_index_rows
from dhr.store.models import ResourceRow
from tests.conftest import empty_tables

COLUMNS = {
    "ix_token": ("param", "system", "code", "text", "grp", "comp"),
    "ix_string": ("param", "norm", "exact", "grp", "comp"),
    "ix_date": ("param", "low", "high", "grp", "comp"),
    "ix_number": ("param", "value", "low", "high", "grp", "comp"),
    "ix_quantity": ("param", "value", "low", "high", "system", "code", "unit", "grp", "comp"),
    "ix_reference": ("param", "target_type", "target_id", "target_version", "url", "grp", "comp"),
    "ix_uri": ("param", "uri", "grp", "comp"),
}
TABLE_OF = {
    TokenRow: "ix_token",
    StringRow: "ix_string",
    DateRow: "ix_date",
    NumberRow: "ix_number",
    QuantityRow: "ix_quantity",
    ReferenceRow: "ix_reference",
    UriRow: "ix_uri",
}


def rows_of_every_kind(n: int) -> list[IndexRow]:
    return [
        TokenRow("code", "http://loinc.org", f"{n}-1", "Body height", n % 3, 1),
        TokenRow("status", None, "final"),
        StringRow("name", f"west{n}", f"West{n}"),
        DateRow("date", 1_577_836_800_000_000 + n, 1_577_836_800_000_001 + n),
        NumberRow("probability", 1, 0.5, 1.5),
        QuantityRow("value-quantity", 7, 6.5, 7.5, "http://unitsofmeasure.org", "kg", None),
        QuantityRow("value-quantity", 1.5, 1.45, 1.55, None, None, "mmHg", 2, 2),
        ReferenceRow("subject", "Patient", f"p{n}", None, None),
        ReferenceRow("performer", None, None, None, f"https://x.example/Practitioner/{n}"),
        UriRow("url", f"urn:uuid:{n}"),
    ]


def expected(row: IndexRow) -> tuple[object, ...]:
    """The row as read back: an integer in a float column comes back a float."""
    floats = (1, 2, 3) if type(row) in (NumberRow, QuantityRow) else ()
    return tuple(float(v) if i in floats else v for i, v in enumerate(row))


class BoomError(Exception):
    pass


def new_resource(conn: Connection, n: int) -> int:
    values = {"res_type": "Observation", "res_id": f"o{n}", "version_id": 1}
    values |= {"deleted": False, "last_updated": 0}
    return int(
        conn.execute(insert(ResourceRow).values(values).returning(ResourceRow.key)).scalar_one()
    )


def write_resources(
    engine: Engine,
    resources: int,
    last: list[IndexRow] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """One unit of work: ``resources`` Observations with rows of every kind, then one more
    with ``last`` rows; ``check`` runs before the commit."""
    with unit_of_work(engine, write=True) as conn:
        if check is not None:
            before_commit(conn, check)
        for n in range(resources):
            queue_index_rows(conn, new_resource(conn, n), "Observation", rows_of_every_kind(n))
        if last is not None:
            queue_index_rows(conn, new_resource(conn, resources), "Observation", last)


def stored_rows(engine: Engine) -> int:
    with unit_of_work(engine, write=False) as conn:
        counts = [conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COLUMNS]
        resources = conn.execute(select(func.count()).select_from(ResourceRow)).scalar_one()
    return int(sum(counts) + resources)


@pytest.mark.parametrize("resources", [1, COPY_FROM // 5])
def test_queued_rows_are_stored_as_extracted(engine: Engine, resources: int) -> None:
    empty_tables(engine)
    written: dict[str, set[tuple[object, ...]]] = {t: set() for t in COLUMNS}
    with unit_of_work(engine, write=True) as conn:
        for n in range(resources):
            key = new_resource(conn, n)
            rows = rows_of_every_kind(n)
            queue_index_rows(conn, key, "Observation", rows)
            for row in rows:
                written[TABLE_OF[type(row)]].add(expected(row))
    assert resources == 1 or sum(map(len, written.values())) >= COPY_FROM
    with unit_of_work(engine, write=False) as conn:
        for table, columns in COLUMNS.items():
            got = conn.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))
            assert {tuple(r) for r in got} == written[table], table


@pytest.mark.parametrize("resources", [1, COPY_FROM // 5])
def test_rows_that_cannot_be_written_fail_the_unit_of_work(engine: Engine, resources: int) -> None:
    """A token row without its parameter name breaks a NOT NULL column: the database refuses
    it when the queued rows are written (in COPY when there are many), and the unit of work
    rolls back its resources and every other row."""
    empty_tables(engine)
    broken = TokenRow(None, "http://loinc.org", "x")  # type: ignore[arg-type]
    with pytest.raises(DBAPIError):
        write_resources(engine, resources, last=[broken])
    assert stored_rows(engine) == 0


def test_a_check_that_fails_while_rows_are_written_leaves_nothing(engine: Engine) -> None:
    """The unit of work's checks run while its COPY-sized batch of rows is on its way; the
    check's failure rolls everything back once the write has finished."""
    empty_tables(engine)
    seen: list[int] = []

    def check() -> None:
        seen.append(1)
        raise BoomError

    with pytest.raises(BoomError):
        write_resources(engine, COPY_FROM // 5, check=check)
    assert seen == [1]
    assert stored_rows(engine) == 0
