"""Where audit records go: the database (fail closed), or nowhere (benchmark baselines).

ARCHITECTURE.md "Audit" and IHE BALP (https://profiles.ihe.net/ITI/BALP/content.html). Two
ways in:

* :meth:`AuditSink.insert` adds records to the caller's own transaction: a write is audited
  in the same database transaction as the write, so both commit or neither does;
* :meth:`AuditSink.write` makes records durable before it returns, for reads, searches,
  failures and refused authentications. :class:`DatabaseSink` does it with group commit, led
  by the requests themselves (no writer thread: handing over to one cost a read 85 µs). A
  request queues its records and takes a *writer slot*; holding it, it inserts, as one
  committed statement, its own records and those of every request queued before it. The
  requests that queued meanwhile wait for the slot, and most find their records already
  written when they get it. On PostgreSQL, whose commits can overlap, a few slots; on SQLite,
  which has one writer at a time, one. A slot is a plain lock and only a request whose records
  are in flight with another writer waits on an Event: measured under 8 reading threads on
  SQLite, 1,335 audited reads/s against 1,033-1,125 when every request waited on an Event for
  a leader to wake it. ADR 0007.

A request waits ``timeout`` seconds at most to be written or to write, and a writer as long
again for the database (the writers' own connections give up waiting for a lock after
``timeout``: SQLite's busy timeout, PostgreSQL's ``lock_timeout`` and ``statement_timeout``).
Either way, a record that cannot be written raises :class:`AuditUnavailable` (503): the
request fails closed and nothing of it is returned. :class:`NullSink` (``audit_enabled =
false``) writes nothing; it exists only to measure what audit costs.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, Protocol, cast

import psycopg
from sqlalchemy import Connection, Engine

from dhr.audit.model import AuditRecord
from dhr.errors import FhirError
from dhr.store.audit_store import EventRow, event_rows, insert_events, insert_rows_committed

log = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 5000  # records per group commit
POSTGRESQL_WRITERS = 4


class AuditUnavailable(FhirError):  # noqa: N818 - a condition, like StaleVersion
    """503: the audit could not be written, so the request is refused (fail closed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            503,
            "transient",
            f"The request was refused because its audit record could not be written: {detail}",
            "audit-unavailable",
            headers={"Retry-After": "1"},
        )


class AuditSink(Protocol):
    """Where the audit records of requests go."""

    @property
    def enabled(self) -> bool:
        """False when nothing is recorded (recorders then collect nothing)."""
        ...

    def insert(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        """Add ``records`` to the caller's transaction (:class:`AuditUnavailable` on failure)."""
        ...

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Make ``records`` durable before returning (:class:`AuditUnavailable` otherwise)."""
        ...

    def close(self) -> None:
        """Finish what is queued and stop any background work (a later write restarts it)."""
        ...


class NullSink:
    """Records nothing: ``audit_enabled = false``, for benchmark baselines only."""

    enabled = False

    def insert(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        return None

    def write(self, records: Sequence[AuditRecord]) -> None:
        return None

    def close(self) -> None:
        return None


QUEUED, TAKEN, DONE = "queued", "taken", "done"


class _Ticket:
    """One request's records (as insert values) waiting for the group commit."""

    __slots__ = ("error", "rows", "state", "wake")

    def __init__(self, rows: list[EventRow]) -> None:
        self.rows = rows
        self.state = QUEUED  # QUEUED -> TAKEN (in a writer's batch) -> DONE
        # Set when DONE; made only for a request that waits on another writer's commit (an
        # Event is Python around a Condition: too dear for every read).
        self.wake: threading.Event | None = None
        self.error: BaseException | None = None


class DatabaseSink:
    """Audit records in the ``audit_event`` table (:mod:`dhr.store.audit_store`)."""

    enabled = True

    def __init__(self, engine: Engine, timeout: float = 10.0, writers: int | None = None) -> None:
        self.engine = engine
        self.timeout = timeout
        self.postgresql = engine.dialect.name == "postgresql"
        if writers is None:
            writers = 1 if not self.postgresql else POSTGRESQL_WRITERS
        self.writers = writers  # commits at once
        self.commits = 0  # group commits made (a figure for tests and operators)
        self._lock = threading.Lock()  # the queue, the tickets' states, the connections
        # Writer slots, held while committing: plain locks, which wait in C (a Semaphore is
        # Python around a Condition, and cost an audited read a sixth of its throughput).
        self._slots = [threading.Lock() for _ in range(writers)]
        self._turn = itertools.count()
        self._queue: deque[_Ticket] = deque()
        self._connections: list[Any] = []  # idle driver connections of the writers

    def insert(self, conn: Connection, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        try:
            insert_events(conn, records)
        except Exception as exc:
            log.error("audit insert failed: %s", exc)
            raise AuditUnavailable("the audit store refused the record") from exc

    def write(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        ticket = _Ticket(event_rows(records, self.postgresql))
        deadline = time.monotonic() + self.timeout
        with self._lock:
            self._queue.append(ticket)
        while ticket.state is not DONE:
            if ticket.state is TAKEN:  # in another writer's commit (PostgreSQL)
                self._wake_when_done(ticket).wait(max(0.0, deadline - time.monotonic()))
            else:
                slot = self._slot(deadline)
                if slot is not None:
                    try:
                        self._write_until_taken(ticket)
                    finally:
                        slot.release()
                    continue
            if ticket.state is not DONE and time.monotonic() >= deadline:
                self._give_up(ticket)
        if ticket.error is not None:
            raise _unavailable(ticket.error)

    def _wake_when_done(self, ticket: _Ticket) -> threading.Event:
        with self._lock:
            if ticket.wake is None:
                ticket.wake = threading.Event()
                if ticket.state is DONE:
                    ticket.wake.set()
            return ticket.wake

    def _slot(self, deadline: float) -> threading.Lock | None:
        """A free writer slot, or the next one in turn when it frees before ``deadline``."""
        for slot in self._slots:
            if slot.acquire(blocking=False):
                return slot
        slot = self._slots[next(self._turn) % len(self._slots)]
        return slot if slot.acquire(timeout=max(0.0, deadline - time.monotonic())) else None

    def _write_until_taken(self, mine: _Ticket) -> None:
        """Holding a writer slot: commit what is queued, oldest first, until ``mine`` is no
        longer waiting (committed here, or in flight with another writer)."""
        while mine.state is QUEUED:
            with self._lock:
                batch: list[_Ticket] = []
                size = 0
                while self._queue and (not batch or size < MAX_BATCH_RECORDS):
                    ticket = self._queue.popleft()
                    ticket.state = TAKEN
                    batch.append(ticket)
                    size += len(ticket.rows)
            if not batch:
                return
            self._commit(batch)

    def _give_up(self, ticket: _Ticket) -> None:
        """Past the deadline: a ticket still queued leaves the queue (nobody writes it later)
        and the request fails; one in flight fails the request too (its records may still be
        written: an event too many, never one missing)."""
        with self._lock:
            if ticket.state is DONE:
                return
            if ticket.state is QUEUED:
                self._queue.remove(ticket)
        log.error("audit write timed out after %.1f s", self.timeout)
        raise AuditUnavailable("the audit store did not answer in time")

    def close(self) -> None:
        """Close the writers' idle connections (a later write opens new ones)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for driver in connections:
            with suppress(Exception):
                driver.close()

    def _commit(self, batch: list[_Ticket]) -> None:
        """Insert the batch as one transaction. When a record is refused (a constraint), each
        ticket on its own, so that one bad record does not refuse everybody else's; any other
        failure (no table, a lock not granted in time, a lost connection) fails them all."""
        try:
            self._insert([row for t in batch for row in t.rows])
        except Exception as exc:
            if len(batch) > 1 and isinstance(exc, self._integrity_errors()):
                for ticket in batch:
                    self._commit([ticket])
                return
            log.error("audit write failed: %s", exc)
            for ticket in batch:
                ticket.error = exc
        with self._lock:
            for ticket in batch:
                ticket.state = DONE
                if ticket.wake is not None:
                    ticket.wake.set()

    def _integrity_errors(self) -> type[Exception]:
        dbapi: Any = self.engine.dialect.loaded_dbapi
        return cast(type[Exception], dbapi.IntegrityError)

    def _insert(self, rows: list[EventRow]) -> None:
        """One committed insert on a writer's own driver connection, in autocommit mode (no
        BEGIN, no COMMIT, no SQLAlchemy transaction around it:
        :func:`dhr.store.audit_store.insert_rows_committed`). A connection that failed for
        any reason but a refused record is closed, not kept."""
        with self._lock:
            driver = self._connections.pop() if self._connections else None
        if driver is None:
            driver = self._connect()
        try:
            insert_rows_committed(driver, self.postgresql, rows)
        except Exception as exc:
            if isinstance(exc, self._integrity_errors()):
                self._give_back(driver)
            else:
                with suppress(Exception):
                    driver.close()
            raise
        self._give_back(driver, committed=True)

    def _give_back(self, driver: Any, committed: bool = False) -> None:
        with self._lock:
            self._connections.append(driver)
            self.commits += committed

    def _connect(self) -> Any:
        """A driver connection to the engine's database (autocommit, as the engine opens
        them), kept by the sink rather than the pool, that waits at most ``timeout`` for a
        lock."""
        raw = self.engine.raw_connection()
        driver = raw.dbapi_connection
        raw.detach()
        millis = max(1, int(self.timeout * 1000))
        assert driver is not None
        if self.postgresql:
            driver.execute(f"SET lock_timeout = {millis}")
            driver.execute(f"SET statement_timeout = {millis}")
        else:
            driver.execute(f"PRAGMA busy_timeout = {millis}")
        return driver


def _unavailable(error: BaseException) -> AuditUnavailable:
    if _is_lock_timeout(error):
        return AuditUnavailable("the audit store did not answer in time")
    return AuditUnavailable("the audit store refused the record")


def _is_lock_timeout(error: BaseException) -> bool:
    """SQLite's "database is locked" after its busy timeout; PostgreSQL's lock or statement
    timeout."""
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error)
    return isinstance(error, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled)


def sink_for(enabled: bool, engine: Engine) -> AuditSink:
    """The sink settings ask for: :class:`DatabaseSink`, or :class:`NullSink` when off."""
    return DatabaseSink(engine) if enabled else NullSink()
