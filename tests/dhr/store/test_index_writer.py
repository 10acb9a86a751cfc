"""The search index writer (dhr/store/index_writer.py) stores every row as extracted, whichever
way it sends them: one at a time, queued and flushed per table, or (PostgreSQL, from
COPY_FROM rows on) in binary COPY, with integers in float columns and NULLs."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, text

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
from dhr.store.db import unit_of_work
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


@pytest.mark.parametrize("resources", [1, COPY_FROM // 5])
def test_queued_rows_are_stored_as_extracted(engine: Engine, resources: int) -> None:
    empty_tables(engine)
    written: dict[str, set[tuple[object, ...]]] = {t: set() for t in COLUMNS}
    with unit_of_work(engine, write=True) as conn:
        for n in range(resources):
            values = {"res_type": "Observation", "res_id": f"o{n}", "version_id": 1}
            values |= {"deleted": False, "last_updated": 0}
            key = int(
                conn.execute(
                    insert(ResourceRow).values(values).returning(ResourceRow.key)
                ).scalar_one()
            )
            rows = rows_of_every_kind(n)
            queue_index_rows(conn, key, "Observation", rows)
            for row in rows:
                written[TABLE_OF[type(row)]].add(expected(row))
    assert resources == 1 or sum(map(len, written.values())) >= COPY_FROM
    with unit_of_work(engine, write=False) as conn:
        for table, columns in COLUMNS.items():
            got = conn.execute(text(f"SELECT {', '.join(columns)} FROM {table}"))
            assert {tuple(r) for r in got} == written[table], table
