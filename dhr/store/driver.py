"""Hot statements run on the DBAPI cursor under a SQLAlchemy :class:`~sqlalchemy.Connection`.

The store's fixed, most frequent statements (read by id, the version and index inserts of a
write) skip SQLAlchemy's per-statement machinery and run as driver SQL on the connection's own
DBAPI cursor, inside the same transaction. Two things SQLAlchemy would have done are kept:
a driver error is raised as the matching :class:`sqlalchemy.exc.DBAPIError` (so the request
edge maps it to 409/503 like any other), and a connection the driver reports as lost is
invalidated so the pool does not hand it out again.

PostgreSQL specifics, each saving the network a round trip or the server a plan:

* These statements may be *prepared* (parsed and planned once per connection, see
  :data:`PREPARE_EXPLICIT_ONLY`); every other statement, searches included, is planned with its
  values each time.
* The driver runs in autocommit mode and the store begins transactions itself, lazily:
  :func:`mark_begin` (SQLAlchemy's ``begin``) only notes that one is due, and ``BEGIN`` travels
  with the transaction's first statement: in one pipeline with a hot statement (:func:`fetch`),
  or just ahead of any other (:func:`begin_if_due`, on SQLAlchemy's ``before_cursor_execute``).
  A transaction that runs no statement costs nothing, as before.
"""

from __future__ import annotations

import sqlite3
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from psycopg import RawCursor
from psycopg.pq import ExecStatus
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

# psycopg prepares a statement after ``prepare_threshold`` executions of it. Searches must never
# be prepared (a generic plan ignores how selective their values are: measured 3-4x slower as
# the data grows), so the threshold is out of reach and only statements executed with
# ``prepare=True`` are prepared: statements whose best plan does not depend on their values
# (a lookup by unique key, an insert from arrays).
PREPARE_EXPLICIT_ONLY = sys.maxsize
# What psycopg itself sent before (the server default could be changed by configuration).
PG_BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"

TUPLES_OK = ExecStatus.TUPLES_OK
T = TypeVar("T")

# SQLAlchemy connections (PostgreSQL) inside a transaction that has not sent BEGIN yet.
_BEGIN_DUE: weakref.WeakSet[Connection] = weakref.WeakSet()


def mark_begin(conn: Connection) -> None:
    """``conn`` began a transaction: BEGIN goes out with its first statement."""
    _BEGIN_DUE.add(conn)


def forget_begin(conn: Connection) -> None:
    """``conn``'s transaction ended (a transaction without statements never sent BEGIN)."""
    _BEGIN_DUE.discard(conn)


def begin_if_due(conn: Connection, cursor: Any) -> None:
    """Send BEGIN on ``cursor`` if ``conn``'s transaction has not sent it yet."""
    if conn in _BEGIN_DUE:
        _BEGIN_DUE.discard(conn)
        cursor.execute(PG_BEGIN)


def on_cursor(
    conn: Connection, statement: str, work: Callable[[Any], T], sends_begin: bool = False
) -> T:
    """Run ``work(cursor)`` on a DBAPI cursor of ``conn``; driver errors become DBAPIErrors.

    A due BEGIN is sent first unless ``work`` ``sends_begin`` itself. ``statement`` names
    what ran, for the error message only.
    """
    dbapi_conn = conn.connection
    cursor = dbapi_conn.cursor()
    try:
        if _BEGIN_DUE and not sends_begin:
            begin_if_due(conn, cursor)
        return work(cursor)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, statement, exc, cursor) from exc
    finally:
        cursor.close()


def _wrapped(conn: Connection, statement: str, exc: Any, cursor: Any) -> Exception:
    """``exc`` as SQLAlchemy raises it; a lost connection is invalidated first."""
    lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor)
    if lost:
        conn.invalidate(exc)
    error = conn.dialect.loaded_dbapi.Error
    wrapped: Exception = DBAPIError.instance(
        statement, None, exc, error, connection_invalidated=lost, dialect=conn.dialect
    )
    return wrapped


def fetch(
    conn: Connection, sql: str, params: Any, prepare: bool = False, native: bool = False
) -> list[Sequence[Any]]:
    """Every row of ``sql`` run with ``params`` (a tuple for SQLite, a dict for PostgreSQL).

    ``prepare`` asks PostgreSQL to keep the statement parsed and planned on this connection;
    only for statements whose plan does not depend on their values. ``native``: ``sql`` has
    PostgreSQL's own ``$1, $2...`` placeholders and ``params`` is a sequence, sent as they are
    (psycopg's ``RawCursor``); psycopg otherwise rewrites ``%(name)s`` placeholders on every
    execution of a statement longer than it caches (4 kB: 0.5 ms for the consent check).
    """
    if conn.dialect.name == "sqlite":
        # sqlite3's own execute: the cursor ends with the rows (reads are the hottest path).
        driver: Any = conn.connection.dbapi_connection
        try:
            rows: list[Sequence[Any]] = driver.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _wrapped(conn, sql, exc, None) from exc
        return rows

    def run_pg(cursor: Any) -> list[Sequence[Any]]:
        if native:
            cursor = RawCursor(cursor.connection)
        try:
            if conn in _BEGIN_DUE:
                # BEGIN and the statement in one pipeline: one round trip (leaving the block
                # syncs).
                driver = cursor.connection
                with driver.pipeline():
                    driver.execute(PG_BEGIN)
                    _BEGIN_DUE.discard(conn)
                    cursor.execute(sql, params, prepare=prepare, binary=True)
            else:
                # Binary results: BYTEA arrives as its bytes, not as hex text twice the size.
                cursor.execute(sql, params, prepare=prepare, binary=True)
            result = cursor.pgresult
            if result is None or result.status != TUPLES_OK:
                return []  # no rows to fetch (cheaper than building ``description``)
            return list(cursor.fetchall())
        finally:
            if native:
                cursor.close()

    return on_cursor(conn, sql, run_pg, sends_begin=True)


def fetch_one(
    conn: Connection, sql: str, params: Any, prepare: bool = False
) -> Sequence[Any] | None:
    """The first row of ``sql``, or None."""
    rows = fetch(conn, sql, params, prepare)
    return rows[0] if rows else None
