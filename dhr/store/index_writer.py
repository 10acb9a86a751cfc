"""Writing and dropping a resource's search index rows, in the caller's transaction.

https://hl7.org/fhir/R4/search.html. Rows come from :func:`dhr.search.extract.extract`; each
dataclass in :mod:`dhr.search.rows` maps to one table in :data:`dhr.store.models.INDEX_TABLES`.
Only the current version of a resource is indexed: an update drops the old rows first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert

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
from dhr.store.models import INDEX_TABLES

_TABLE_OF: dict[type, str] = {
    TokenRow: "token",
    StringRow: "string",
    DateRow: "date",
    NumberRow: "number",
    QuantityRow: "quantity",
    ReferenceRow: "reference",
    UriRow: "uri",
}
_INSERTS = {name: insert(table) for name, table in INDEX_TABLES.items()}
_DROPS = [
    delete(table).where(table.resource_key == bindparam("k")) for table in INDEX_TABLES.values()
]


def write_index_rows(conn: Connection, key: int, res_type: str, rows: Sequence[IndexRow]) -> None:
    """Insert ``rows`` for resource ``key`` (one executemany per table)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        values = {**row.__dict__, "resource_key": key, "res_type": res_type}
        grouped.setdefault(_TABLE_OF[type(row)], []).append(values)
    for name, batch in grouped.items():
        conn.execute(_INSERTS[name], batch)


def drop_index_rows(conn: Connection, key: int) -> None:
    """Delete every index row of resource ``key``."""
    for stmt in _DROPS:
        conn.execute(stmt, {"k": key})
