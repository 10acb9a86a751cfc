"""Writing and dropping a resource's search index rows, in the caller's transaction.

https://hl7.org/fhir/R4/search.html. Rows come from :func:`dhr.search.extract.extract`; each row
type in :mod:`dhr.search.rows` maps to one table in :data:`dhr.store.models.INDEX_TABLES`.
Only the current version of a resource is indexed: an update drops the old rows first.

Rows are queued on the connection (as tuples in column order) and written when the unit of work
flushes (before any search in it, and before commit): on SQLite one ``executemany`` per table,
on PostgreSQL one statement for every table (``INSERT ... SELECT FROM unnest(arrays)`` per table
in data-modifying CTEs, or from COPY_FROM rows on a binary COPY per table), so a 1,000-entry
transaction costs one round trip of index writes. At the end of a unit of work the COPY runs on
a thread of its own while the unit's checks wait for the validation workers (:func:`start_flush`).
A single PostgreSQL create or update does not queue: its rows go into the statement that stores
the version (:func:`pg_row_arrays`, :func:`pg_insert_ctes`), one prepared statement in all.
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import Float

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
from dhr.store.driver import fetch, on_cursor
from dhr.store.models import INDEX_TABLES

_TABLE_OF: dict[type[IndexRow], str] = {
    TokenRow: "token",
    StringRow: "string",
    DateRow: "date",
    NumberRow: "number",
    QuantityRow: "quantity",
    ReferenceRow: "reference",
    UriRow: "uri",
}
# Column order of a queued tuple: the owner, its type, then the row's fields in order.
_COLUMNS: dict[str, tuple[str, ...]] = {
    name: ("resource_key", "res_type", *cls._fields) for cls, name in _TABLE_OF.items()
}
_TABLE_NAMES = {name: f"ix_{name}" for name in INDEX_TABLES}
# SQLite: positional driver SQL per table. Names are our own constants, never input.
_SQLITE_INSERTS = {
    name: f"INSERT INTO {_TABLE_NAMES[name]} ({', '.join(cols)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in cols)})"
    for name, cols in _COLUMNS.items()
}
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _pg_type(name: str, col: str) -> str:
    # Unsized: an explicit cast to VARCHAR(n) would truncate, the assignment cast refuses.
    kind = INDEX_TABLES[name].__table__.c[col].type.compile(dialect=_PG)  # type: ignore[attr-defined]
    return str(kind).split("(", 1)[0]


# PostgreSQL array element type of each column, and which columns must be sent as floats.
_PG_TYPES = {name: tuple(_pg_type(name, col) for col in cols) for name, cols in _COLUMNS.items()}
_FLOATS: dict[str, tuple[int, ...]] = {
    name: tuple(
        i
        for i, col in enumerate(cols)
        if isinstance(INDEX_TABLES[name].__table__.c[col].type, Float)  # type: ignore[attr-defined]
    )
    for name, cols in _COLUMNS.items()
}
# PostgreSQL: from this many queued rows on, COPY (one round trip per table) beats arrays.
COPY_FROM = 200
# Binary COPY: the server reads each value as it is stored instead of parsing text.
_PG_COPY = {
    name: f"COPY {_TABLE_NAMES[name]} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)"
    for name, cols in _COLUMNS.items()
}
_BINARY_TYPES = {"BIGINT": "int8", "SMALLINT": "int2", "VARCHAR": "varchar", "FLOAT": "float8"}
_PG_COPY_TYPES = {
    name: [_BINARY_TYPES[kind] for kind in kinds] for name, kinds in _PG_TYPES.items()
}
_NAMES = list(_TABLE_NAMES.values())
_SQLITE_DROPS = [f"DELETE FROM {n} WHERE resource_key = ?" for n in _NAMES]  # noqa: S608
# PostgreSQL: every table in one statement (one round trip instead of seven).
_CTES = ", ".join(
    f"d{i} AS (DELETE FROM {n} WHERE resource_key = %(k)s)"  # noqa: S608
    for i, n in enumerate(_NAMES[:-1])
)
_PG_DROP = f"WITH {_CTES} DELETE FROM {_NAMES[-1]} WHERE resource_key = %(k)s"  # noqa: S608


# Queued rows belong to one Connection object (one unit of work), never to the pooled DBAPI
# connection behind it: a rolled-back unit's rows must not leak into the next one.
@dataclass
class _Queue:
    """One unit of work's queued rows (table -> tuples in column order), and the resources
    they belong to: an update of any other resource in the unit (an ingest's master Patients)
    need not scan them all for rows of its own."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    keys: set[int] = field(default_factory=set)


_QUEUES: weakref.WeakKeyDictionary[Connection, _Queue] = weakref.WeakKeyDictionary()


def _pending(conn: Connection) -> _Queue:
    return _QUEUES.setdefault(conn, _Queue())


def queue_index_rows(conn: Connection, key: int, res_type: str, rows: Sequence[IndexRow]) -> None:
    """Queue ``rows`` for resource ``key``; :func:`flush_index_rows` writes them."""
    if not rows:
        return
    queue = _pending(conn)
    queue.keys.add(key)
    pending = queue.rows
    table_of = _TABLE_OF
    for row in rows:
        name = table_of[type(row)]
        batch = pending.get(name)
        if batch is None:
            batch = pending[name] = []
        batch.append((key, res_type, *row))


def _landed() -> None:
    """Nothing is being written."""


@cache
def _pg_insert(names: tuple[str, ...]) -> str:
    """One statement inserting into every table in ``names`` from one array per column."""
    parts: list[str] = []
    for name in names:
        cols = _COLUMNS[name]
        arrays = ", ".join(f"%({name}_{i})b::{kind}[]" for i, kind in enumerate(_PG_TYPES[name]))
        parts.append(
            f"INSERT INTO {_TABLE_NAMES[name]} ({', '.join(cols)}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays})"
        )
    if len(parts) == 1:
        return parts[0]
    ctes = ", ".join(f"i{n} AS ({part})" for n, part in enumerate(parts[:-1]))
    return f"WITH {ctes} {parts[-1]}"


def _pg_params(
    name: str, batch: list[tuple[Any, ...]], into: dict[str, Any], first: int = 0
) -> None:
    """One array per column of ``batch`` (whose tuples start at column ``first``)."""
    floats = _FLOATS[name]
    for i, column in enumerate(zip(*batch, strict=True), first):
        values = list(column)
        if i in floats:  # one element type per array (an int among floats would not dump)
            values = [None if v is None else float(v) for v in values]
        into[f"{name}_{i}"] = values


def pg_row_arrays(rows: Sequence[IndexRow]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The tables ``rows`` go to, and one array per column (owner and type left out).

    For :func:`pg_insert_ctes`, which takes the owner's key and type from the statement.
    """
    per_table: dict[str, list[tuple[Any, ...]]] = {}
    table_of = _TABLE_OF
    for row in rows:
        name = table_of[type(row)]
        batch = per_table.get(name)
        if batch is None:
            batch = per_table[name] = []
        batch.append(tuple(row))
    names = tuple(name for name in _COLUMNS if name in per_table)
    params: dict[str, Any] = {}
    for name in names:
        _pg_params(name, per_table[name], params, first=2)
    return names, params


@cache
def pg_insert_ctes(names: tuple[str, ...], owner: str) -> str:
    """CTEs inserting :func:`pg_row_arrays`' arrays into ``names``, for the resource whose
    ``key`` and ``res_type`` the CTE ``owner`` returns (one row)."""
    parts: list[str] = []
    for n, name in enumerate(names):
        cols = _COLUMNS[name]
        arrays = ", ".join(
            f"%({name}_{i})b::{kind}[]" for i, kind in enumerate(_PG_TYPES[name]) if i >= 2
        )
        parts.append(
            f"x{n} AS (INSERT INTO {_TABLE_NAMES[name]} ({', '.join(cols)}) "  # noqa: S608
            f"SELECT {owner}.key, {owner}.res_type, u.* FROM {owner}, unnest({arrays}) AS u)"
        )
    return ", ".join(parts)


def _pg_copy(
    conn: Connection,
    names: tuple[str, ...],
    pending: dict[str, list[tuple[Any, ...]]],
    started: Callable[[], None] = _landed,
) -> None:
    """``COPY ... FROM STDIN`` per table: rows formatted by the driver in C, no arrays.
    ``started`` is called once the first COPY holds the driver connection's lock."""

    def write(cursor: Any, name: str) -> None:
        with cursor.copy(_PG_COPY[name]) as copy:
            started()
            copy.set_types(_PG_COPY_TYPES[name])  # an int in a float8 column is sent as one
            put = copy.write_row
            for row in pending[name]:
                put(row)

    _on_driver_cursor(conn, names, write)


def _sqlite_insert(
    conn: Connection, names: tuple[str, ...], pending: dict[str, list[tuple[Any, ...]]]
) -> None:
    """One ``executemany`` per table on the driver's cursor (no per-statement overhead)."""

    def write(cursor: Any, name: str) -> None:
        cursor.executemany(_SQLITE_INSERTS[name], pending[name])

    _on_driver_cursor(conn, names, write)


def _on_driver_cursor(
    conn: Connection, names: tuple[str, ...], write: Callable[[Any, str], None]
) -> None:
    """Run ``write`` per table on one DBAPI cursor of ``conn`` (inside its transaction).

    A driver error is raised as SQLAlchemy would have raised it, so callers map it like any
    other database error (409/503).
    """

    def run(cursor: Any) -> None:
        for name in names:
            write(cursor, name)

    on_cursor(conn, f"INSERT INTO {', '.join(_TABLE_NAMES[n] for n in names)}", run)


def start_flush(conn: Connection) -> Callable[[], None]:
    """Start writing every queued row; the returned wait ends once they are written, raising
    what the write raised.

    A PostgreSQL COPY runs on a thread of its own, so the caller's work that does not use the
    database (the unit of work's checks: waiting for the validation workers' verdicts) goes on
    while the server inserts the rows. Until the wait returns, nothing else may use ``conn``:
    the driver's lock is taken per table, not for the whole write. Anything smaller writes now.
    """
    queue = _QUEUES.get(conn)
    pending = queue.rows if queue is not None else {}
    if conn.dialect.name != "postgresql" or sum(map(len, pending.values())) < COPY_FROM:
        flush_index_rows(conn)
        return _landed
    del _QUEUES[conn]
    names = tuple(name for name in _COLUMNS if pending.get(name))
    failed: list[BaseException] = []
    started = threading.Event()

    def write() -> None:
        try:
            _pg_copy(conn, names, pending, started.set)
        except BaseException as exc:  # handed to the waiting thread
            failed.append(exc)
        finally:
            started.set()

    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(write,), name="dhr-index-copy"
    )
    thread.start()
    started.wait()  # the first COPY holds the driver's lock: no statement of ours goes first

    def wait() -> None:
        thread.join()
        if failed:
            raise failed[0]

    return wait


def flush_index_rows(conn: Connection) -> None:
    """Write every queued row."""
    queue = _QUEUES.pop(conn, None)
    if queue is None:
        return
    pending = queue.rows
    names = tuple(name for name in _COLUMNS if pending.get(name))
    if not names:
        return
    if conn.dialect.name == "postgresql":
        if sum(len(pending[name]) for name in names) >= COPY_FROM:
            _pg_copy(conn, names, pending)
            return
        params: dict[str, Any] = {}
        for name in names:
            _pg_params(name, pending[name], params)
        # Prepared: an insert from arrays plans the same whatever their length.
        fetch(conn, _pg_insert(names), params, prepare=True)
        return
    _sqlite_insert(conn, names, pending)


def write_index_rows(conn: Connection, key: int, res_type: str, rows: Sequence[IndexRow]) -> None:
    """Insert ``rows`` for resource ``key`` now."""
    queue_index_rows(conn, key, res_type, rows)
    flush_index_rows(conn)


def discard_pending(conn: Connection) -> None:
    """Forget queued rows (the unit of work rolled back)."""
    _QUEUES.pop(conn, None)


def forget_queued(conn: Connection, key: int) -> None:
    """Drop the queued (not yet written) index rows of resource ``key``."""
    queue = _QUEUES.get(conn)
    if queue is None or key not in queue.keys:
        return
    queue.keys.discard(key)
    for batch in queue.rows.values():
        batch[:] = [v for v in batch if v[0] != key]


def pg_drop_ctes(param: str) -> str:
    """CTEs deleting every stored index row of the resource whose key is ``%(param)s``."""
    return ", ".join(
        f"d{i} AS (DELETE FROM {n} WHERE resource_key = %({param})s)"  # noqa: S608
        for i, n in enumerate(_NAMES)
    )


def drop_index_rows(conn: Connection, key: int) -> None:
    """Delete every index row of resource ``key`` (queued ones included)."""
    forget_queued(conn, key)
    if conn.dialect.name == "postgresql":
        fetch(conn, _PG_DROP, {"k": key}, prepare=True)
        return

    def run(cursor: Any) -> None:
        for sql in _SQLITE_DROPS:
            cursor.execute(sql, (key,))

    on_cursor(conn, "DELETE FROM ix_*", run)
