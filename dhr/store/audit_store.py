"""All audit SQL: insert events, chain them, checkpoints, read, search and stream them.

https://hl7.org/fhir/R4/auditevent.html; the chain and checkpoints are described in
:mod:`dhr.audit.chain`. Requests insert events unchained (``seq`` NULL) in their own
transaction; only the chainer (under its lock) assigns ``seq``/``prev_hash``/``chain_hash``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeAlias

from sqlalchemy import Connection, Row, Table, bindparam, func, insert, or_, select, update

from dhr.audit.model import AuditRecord
from dhr.store.audit_models import AuditCheckpointRow, AuditEventRow
from dhr.store.driver import fetch, on_cursor

AuditRow: TypeAlias = Row[*tuple[Any, ...]]
"""A row of ``audit_event`` or ``audit_checkpoint`` (attribute access by column name)."""
EVENTS: Table = AuditEventRow.__table__  # type: ignore[assignment]
CHECKPOINTS: Table = AuditCheckpointRow.__table__  # type: ignore[assignment]
# pg_advisory_xact_lock key of the chainer ("DHRAUDIT" as a 64-bit integer).
CHAIN_LOCK_KEY = int.from_bytes(b"DHRAUDIT", "big") - (1 << 63)

# Columns a search or export returns (not the chain internals).
_EVENT_COLUMNS = (
    EVENTS.c.key,
    EVENTS.c.event_id,
    EVENTS.c.recorded,
    EVENTS.c.patient,
    EVENTS.c.agent,
    EVENTS.c.client_id,
    EVENTS.c.action,
    EVENTS.c.subtype,
    EVENTS.c.outcome,
    EVENTS.c.purpose,
    EVENTS.c.break_glass,
    EVENTS.c.request_id,
    EVENTS.c.data,
    EVENTS.c.seq,
)
# The event's bytes go binary (%b), not as hex text twice their size.
_PG_INSERT = """INSERT INTO audit_event (event_id, recorded, patient, agent, client_id, action,
    subtype, outcome, purpose, break_glass, request_id, data, event_hash)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %b, %s)"""


@dataclass(frozen=True)
class ChainLink:
    """A pending row given its place in the chain."""

    key: int
    seq: int
    prev_hash: str
    chain_hash: str


def event_hash(data: bytes) -> str:
    """The ``event_hash`` column: sha256 hex of the canonical event bytes."""
    return hashlib.sha256(data).hexdigest()


EventRow: TypeAlias = tuple[Any, ...]
"""An ``audit_event`` insert's values, in the order of :data:`_INSERT_COLUMNS`."""
_INSERT_COLUMNS = """event_id, recorded, patient, agent, client_id, action, subtype, outcome,
    purpose, break_glass, request_id, data, event_hash"""
_SQLITE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# SQLite binds at most 32,766 values per statement: 13 per event.
SQLITE_ROWS_PER_STATEMENT = 1000
# One fixed statement for any number of events (prepared once per connection).
_PG_INSERT_ARRAYS = """INSERT INTO audit_event (event_id, recorded, patient, agent, client_id,
    action, subtype, outcome, purpose, break_glass, request_id, data, event_hash)
SELECT * FROM unnest(%b::varchar[], %b::bigint[], %b::varchar[], %b::varchar[], %b::varchar[],
    %b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], %b::boolean[], %b::varchar[],
    %b::bytea[], %b::varchar[])"""

# PostgreSQL: from this many events on (a transaction Bundle audits each entry), one COPY
# instead of an INSERT per event: the server parses and plans nothing per row.
PG_COPY_FROM = 16
# Binary: the event's bytes go as they are, not as hex text the server decodes again.
_PG_COPY = f"COPY audit_event ({' '.join(_INSERT_COLUMNS.split())}) FROM STDIN (FORMAT BINARY)"
_PG_COPY_TYPES = ["varchar", "int8", *["varchar"] * 7, "bool", "varchar", "bytea", "varchar"]


def event_rows(records: Sequence[AuditRecord], postgresql: bool) -> list[EventRow]:
    """The insert values of ``records`` (their hash included): built by the request that
    audits, so that the writer of a group commit only sends them."""
    return [
        (
            r.event_id,
            r.recorded,
            r.patient,
            r.agent,
            r.client_id,
            r.action,
            r.subtype,
            r.outcome,
            r.purpose,
            r.break_glass if postgresql else int(r.break_glass),
            r.request_id,
            r.data,
            event_hash(r.data),
        )
        for r in records
    ]


def insert_events(conn: Connection, records: Sequence[AuditRecord]) -> None:
    """Insert ``records`` unchained, in the caller's transaction, as one statement.

    A hot path (every write), so driver SQL (:mod:`dhr.store.driver`): ``executemany`` of a
    fixed INSERT (measured 1.5-4x cheaper per event than SQLAlchemy's multi-row VALUES, which
    is compiled anew for each row count). On PostgreSQL a single event (the usual case) is one
    prepared statement sent in the same round trip as a due BEGIN.
    """
    if not records:
        return
    postgresql = conn.dialect.name == "postgresql"
    rows = event_rows(records, postgresql)
    if postgresql and len(rows) == 1:
        fetch(conn, _PG_INSERT, rows[0], prepare=True)
        return
    if postgresql and len(rows) >= PG_COPY_FROM:
        on_cursor(conn, _PG_COPY, lambda cursor: _copy_rows(cursor, rows))
        return
    sql = _PG_INSERT if postgresql else _sqlite_insert(1)
    on_cursor(conn, sql, lambda cursor: cursor.executemany(sql, rows))


def _copy_rows(cursor: Any, rows: Sequence[EventRow]) -> None:
    with cursor.copy(_PG_COPY) as copy:
        copy.set_types(_PG_COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def insert_rows_committed(driver: Any, postgresql: bool, rows: Sequence[EventRow]) -> None:
    """Insert ``rows`` and commit them, on a driver connection in autocommit mode (the group
    commit of reads' events, :class:`dhr.audit.sink.DatabaseSink`).

    Each statement is its own transaction, and as few statements as possible run: on
    PostgreSQL one prepared ``INSERT ... SELECT FROM unnest(arrays)``; on SQLite one multi-row
    INSERT per 1000 events (more than that run inside ``BEGIN IMMEDIATE ... COMMIT``). A
    statement is where the driver lets other Python threads run while the database works, and
    every such pause costs the writer a wait for the interpreter lock behind busy request
    threads: measured, a three-event batch as BEGIN, ``executemany`` and COMMIT took 1.1 ms
    under 8 reading threads.
    """
    if not rows:
        return
    if postgresql:
        if len(rows) == 1:  # the usual case: psycopg adapts arrays in Python, scalars in C
            driver.execute(_PG_INSERT, rows[0], prepare=True)
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        driver.execute(_PG_INSERT_ARRAYS, columns, prepare=True)
        return
    step = SQLITE_ROWS_PER_STATEMENT
    chunks = [rows[i : i + step] for i in range(0, len(rows), step)]
    if len(chunks) == 1:
        driver.execute(_sqlite_insert(len(rows)), [v for row in rows for v in row])
        return
    driver.execute("BEGIN IMMEDIATE")
    try:
        for chunk in chunks:
            driver.execute(_sqlite_insert(len(chunk)), [v for row in chunk for v in row])
        driver.execute("COMMIT")
    except BaseException:
        with suppress(Exception):  # a lost connection has nothing to roll back
            driver.execute("ROLLBACK")
        raise


@lru_cache(maxsize=64)
def _sqlite_insert(count: int) -> str:
    """The INSERT of ``count`` events (fixed column names and placeholders only)."""
    rows = ", ".join([_SQLITE_ROW] * count)
    return f"INSERT INTO audit_event ({_INSERT_COLUMNS}) VALUES {rows}"  # noqa: S608


def read_event(conn: Connection, event_id: str) -> AuditRow | None:
    """The event with this AuditEvent id, or None."""
    return conn.execute(select(*_EVENT_COLUMNS).where(EVENTS.c.event_id == event_id)).first()


def search_events(
    conn: Connection,
    *,
    patient: str | None = None,
    agent: str | None = None,
    since: int | None = None,
    until: int | None = None,
    action: str | None = None,
    outcome: str | None = None,
    purpose: str | None = None,
    subtype: str | None = None,
    limit: int = 100,
    after_key: int | None = None,
    newest_first: bool = False,
) -> list[AuditRow]:
    """Events matching every given filter (``since`` inclusive, ``until`` exclusive, in µs).

    ``agent`` matches the user's subject or the client id of the app that acted.

    Pages by ``key``: ascending after ``after_key``, or with ``newest_first`` descending below it.
    """
    stmt = select(*_EVENT_COLUMNS)
    if agent is not None:  # the user's subject, or the app (client) acting for them
        stmt = stmt.where(or_(EVENTS.c.agent == agent, EVENTS.c.client_id == agent))
    for column, value in (
        (EVENTS.c.patient, patient),
        (EVENTS.c.action, action),
        (EVENTS.c.outcome, outcome),
        (EVENTS.c.purpose, purpose),
        (EVENTS.c.subtype, subtype),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(EVENTS.c.recorded >= since)
    if until is not None:
        stmt = stmt.where(EVENTS.c.recorded < until)
    if newest_first:
        if after_key is not None:
            stmt = stmt.where(EVENTS.c.key < after_key)
        stmt = stmt.order_by(EVENTS.c.key.desc())
    else:
        if after_key is not None:
            stmt = stmt.where(EVENTS.c.key > after_key)
        stmt = stmt.order_by(EVENTS.c.key)
    return list(conn.execute(stmt.limit(limit)))


def events_since(
    conn: Connection, recorded_from: int, after_seq: int, limit: int
) -> list[AuditRow]:
    """Chained events recorded at or after ``recorded_from`` (µs), in chain order after
    ``after_seq`` (export pages by seq; unchained events follow once chained)."""
    stmt = (
        select(*_EVENT_COLUMNS)
        .where(EVENTS.c.seq > after_seq, EVENTS.c.recorded >= recorded_from)
        .order_by(EVENTS.c.seq)
        .limit(limit)
    )
    return list(conn.execute(stmt))


def pending_count(conn: Connection) -> int:
    """How many events are not chained yet."""
    return int(conn.execute(select(func.count()).where(EVENTS.c.seq.is_(None))).scalar_one())


# --- the chainer (called under its lock) ------------------------------------------------------


def lock_chain(conn: Connection) -> None:
    """Make this transaction the only chainer until it ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the caller's write transaction
    (``BEGIN IMMEDIATE``) already excludes every other writer.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK_KEY)))


def chain_head(conn: Connection) -> tuple[int, str] | None:
    """The last chained event's ``(seq, chain_hash)``, or None for an empty chain."""
    row = conn.execute(
        select(EVENTS.c.seq, EVENTS.c.chain_hash)
        .where(EVENTS.c.seq.is_not(None))
        .order_by(EVENTS.c.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row.seq), str(row.chain_hash))


def pending_events(conn: Connection, limit: int) -> list[tuple[int, str]]:
    """``(key, event_hash)`` of up to ``limit`` unchained events, oldest key first."""
    rows = conn.execute(
        select(EVENTS.c.key, EVENTS.c.event_hash)
        .where(EVENTS.c.seq.is_(None))
        .order_by(EVENTS.c.key)
        .limit(limit)
    )
    return [(int(r.key), str(r.event_hash)) for r in rows]


_PG_LINK = """UPDATE audit_event AS e SET seq = u.s, prev_hash = u.p, chain_hash = u.c
FROM unnest(%(k)b::bigint[], %(s)b::bigint[], %(p)b::varchar[], %(c)b::varchar[]) AS u(k, s, p, c)
WHERE e.key = u.k"""


def link_events(conn: Connection, links: Sequence[ChainLink]) -> None:
    """Write each link's chain fields onto its row."""
    if not links:
        return
    if conn.dialect.name == "postgresql":  # one statement instead of one per row
        fetch(
            conn,
            _PG_LINK,
            {
                "k": [x.key for x in links],
                "s": [x.seq for x in links],
                "p": [x.prev_hash for x in links],
                "c": [x.chain_hash for x in links],
            },
        )
        return
    stmt = (
        update(EVENTS)
        .where(EVENTS.c.key == bindparam("k"))
        .values(seq=bindparam("s"), prev_hash=bindparam("p"), chain_hash=bindparam("c"))
    )
    conn.execute(
        stmt,
        [{"k": x.key, "s": x.seq, "p": x.prev_hash, "c": x.chain_hash} for x in links],
    )


def chained_events(conn: Connection, after_seq: int, limit: int) -> list[AuditRow]:
    """Chained rows after ``after_seq`` in seq order, every column (for verify)."""
    stmt = (
        select(*_EVENT_COLUMNS, EVENTS.c.event_hash, EVENTS.c.prev_hash, EVENTS.c.chain_hash)
        .where(EVENTS.c.seq > after_seq)
        .order_by(EVENTS.c.seq)
        .limit(limit)
    )
    return list(conn.execute(stmt))


def half_chained_count(conn: Connection) -> int:
    """Rows with chain fields but no seq (or seq without chain fields): never written so."""
    stmt = select(func.count()).where(
        (
            EVENTS.c.seq.is_(None)
            & (EVENTS.c.chain_hash.is_not(None) | EVENTS.c.prev_hash.is_not(None))
        )
        | (
            EVENTS.c.seq.is_not(None)
            & (EVENTS.c.chain_hash.is_(None) | EVENTS.c.prev_hash.is_(None))
        )
    )
    return int(conn.execute(stmt).scalar_one())


# --- checkpoints -------------------------------------------------------------------------------


def insert_checkpoint(
    conn: Connection, seq: int, chain_hash: str, signed_at: int, key_id: str, signature: bytes
) -> None:
    conn.execute(
        insert(CHECKPOINTS).values(
            seq=seq, chain_hash=chain_hash, signed_at=signed_at, key_id=key_id, signature=signature
        )
    )


def last_checkpoint(conn: Connection) -> AuditRow | None:
    """The newest checkpoint (highest seq), or None."""
    return conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq.desc()).limit(1)).first()


def all_checkpoints(conn: Connection) -> list[AuditRow]:
    """Every checkpoint in seq order (a few per 1000 events: small enough to load)."""
    return list(conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq)))


# --- lookups for dhr audit verify (only when a break was found: unindexed, full scans) --------


def seq_with_event_hash(conn: Connection, event_hash: str, other_than: int) -> int | None:
    """The seq of another chained event with this event hash."""
    found = conn.execute(
        select(EVENTS.c.seq)
        .where(EVENTS.c.event_hash == event_hash, EVENTS.c.seq != other_than)
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def seq_with_chain_hash(conn: Connection, chain_hash: str) -> int | None:
    """The seq of the chained event whose chain hash this is."""
    found = conn.execute(
        select(EVENTS.c.seq).where(EVENTS.c.chain_hash == chain_hash).limit(1)
    ).scalar()
    return None if found is None else int(found)


def seq_with_prev_hash(conn: Connection, prev_hash: str, other_than: int) -> int | None:
    """The seq of another chained event that links to ``prev_hash``."""
    found = conn.execute(
        select(EVENTS.c.seq)
        .where(EVENTS.c.prev_hash == prev_hash, EVENTS.c.seq != other_than)
        .limit(1)
    ).scalar()
    return None if found is None else int(found)


def max_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one())


def chain_fields_between(conn: Connection, first: int, last: int) -> list[AuditRow]:
    """``seq``, ``prev_hash``, ``chain_hash`` of the chained events in ``first..last``."""
    stmt = (
        select(EVENTS.c.seq, EVENTS.c.prev_hash, EVENTS.c.chain_hash)
        .where(EVENTS.c.seq.between(first, last))
        .order_by(EVENTS.c.seq)
    )
    return list(conn.execute(stmt))
