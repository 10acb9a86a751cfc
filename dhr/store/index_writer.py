"""Writing and dropping a resource's search index rows, in the caller's transaction.

https://hl7.org/fhir/R4/search.html. Rows come from :func:`dhr.search.extract.extract`; each
dataclass in :mod:`dhr.search.rows` maps to one table in :data:`dhr.store.models.INDEX_TABLES`.
Only the current version of a resource is indexed: an update drops the old rows first.

Rows are queued on the connection and written in one multi-row INSERT per table when the unit
of work flushes (before any search in it, and before commit), so a 1,000-entry transaction costs
seven index statements, not seven thousand.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, text

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
# PostgreSQL: every table in one statement (one round trip instead of seven). The names are
# our own constants (ix_<type>), never input.
_NAMES = [f"ix_{name}" for name in INDEX_TABLES]
_CTES = ", ".join(
    f"d{i} AS (DELETE FROM {n} WHERE resource_key = :k)"  # noqa: S608
    for i, n in enumerate(_NAMES[:-1])
)
_PG_DROP = text(f"WITH {_CTES} DELETE FROM {_NAMES[-1]} WHERE resource_key = :k")  # noqa: S608
# Queued rows belong to one Connection object (one unit of work), never to the pooled DBAPI
# connection behind it: a rolled-back unit's rows must not leak into the next one.
_QUEUES: weakref.WeakKeyDictionary[Connection, dict[str, list[dict[str, Any]]]] = (
    weakref.WeakKeyDictionary()
)


def _pending(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    return _QUEUES.setdefault(conn, {})


def queue_index_rows(conn: Connection, key: int, res_type: str, rows: Sequence[IndexRow]) -> None:
    """Queue ``rows`` for resource ``key``; :func:`flush_index_rows` writes them."""
    pending = _pending(conn)
    for row in rows:
        values = {**row.__dict__, "resource_key": key, "res_type": res_type}
        pending.setdefault(_TABLE_OF[type(row)], []).append(values)


def flush_index_rows(conn: Connection) -> None:
    """Write every queued row (one executemany per table)."""
    pending = _QUEUES.pop(conn, None)
    if not pending:
        return
    for name, batch in pending.items():
        if batch:
            conn.execute(_INSERTS[name], batch)


def write_index_rows(conn: Connection, key: int, res_type: str, rows: Sequence[IndexRow]) -> None:
    """Insert ``rows`` for resource ``key`` now."""
    queue_index_rows(conn, key, res_type, rows)
    flush_index_rows(conn)


def discard_pending(conn: Connection) -> None:
    """Forget queued rows (the unit of work rolled back)."""
    _QUEUES.pop(conn, None)


def drop_index_rows(conn: Connection, key: int) -> None:
    """Delete every index row of resource ``key`` (queued ones included)."""
    for batch in _pending(conn).values():
        batch[:] = [v for v in batch if v["resource_key"] != key]
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_DROP, {"k": key})
        return
    for stmt in _DROPS:
        conn.execute(stmt, {"k": key})
