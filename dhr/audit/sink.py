"""Where audit records go: the database (fail closed), or nowhere (benchmark baselines).

ARCHITECTURE.md "Audit" and IHE BALP (https://profiles.ihe.net/ITI/BALP/content.html). Two
ways in:

* :meth:`AuditSink.insert` adds records to the caller's own transaction: a write is audited
  in the same database transaction as the write, so both commit or neither does;
* :meth:`AuditSink.write` makes records durable before it returns, for reads, searches,
  failures and refused authentications. :class:`DatabaseSink` does it with group commit: one
  background thread takes the records of every waiting request, inserts them in ONE
  transaction, commits and wakes the requests. So reads never queue one by one for SQLite's
  write lock, and many reads share one commit. A request waits at most ``timeout`` seconds.
  On PostgreSQL, whose commits can overlap, a few writer threads run side by side (each batch
  is still one transaction); on SQLite, which has one writer at a time, just one.

Either way, a record that cannot be written raises :class:`AuditUnavailable` (503): the request
fails closed and nothing of it is returned. :class:`NullSink` (``audit_enabled = false``) writes
nothing; it exists only to measure what audit costs.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine

from dhr.audit.model import AuditRecord
from dhr.errors import FhirError
from dhr.store.audit_store import insert_events
from dhr.store.db import unit_of_work

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


class _Ticket:
    """One request's records waiting for the group commit."""

    __slots__ = ("done", "error", "records")

    def __init__(self, records: Sequence[AuditRecord]) -> None:
        self.records = records
        self.done = threading.Event()
        self.error: BaseException | None = None


class DatabaseSink:
    """Audit records in the ``audit_event`` table (:mod:`dhr.store.audit_store`)."""

    enabled = True

    def __init__(self, engine: Engine, timeout: float = 10.0, writers: int | None = None) -> None:
        self.engine = engine
        self.timeout = timeout
        if writers is None:
            writers = 1 if engine.dialect.name == "sqlite" else POSTGRESQL_WRITERS
        self.writers = writers
        self._cond = threading.Condition()
        self._queue: deque[_Ticket] = deque()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # writers inside a commit
        self._stopping = False

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
        ticket = _Ticket(records)
        with self._cond:
            self._queue.append(ticket)
            self._stopping = False
            idle = len(self._threads) - self._busy
            if idle <= 0 and len(self._threads) < self.writers:
                thread = threading.Thread(target=self._run, name="dhr-audit-writer", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        if not ticket.done.wait(self.timeout):
            log.error("audit write timed out after %.1f s", self.timeout)
            raise AuditUnavailable("the audit store did not answer in time")
        if ticket.error is not None:
            raise AuditUnavailable("the audit store refused the record")

    def close(self) -> None:
        with self._cond:
            threads = list(self._threads)
            self._stopping = True
            self._cond.notify_all()
        for thread in threads:
            thread.join(timeout=self.timeout)

    def _run(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:  # stopping and drained
                    self._threads.remove(me)
                    return
                batch: list[_Ticket] = []
                size = 0
                while self._queue and (not batch or size < MAX_BATCH_RECORDS):
                    ticket = self._queue.popleft()
                    batch.append(ticket)
                    size += len(ticket.records)
                self._busy += 1
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._busy -= 1

    def _commit(self, batch: list[_Ticket]) -> None:
        """Insert the batch in one transaction; when that fails, each ticket on its own (one
        bad record must not refuse everybody else's)."""
        try:
            with unit_of_work(self.engine, write=True) as conn:
                insert_events(conn, [r for t in batch for r in t.records])
        except Exception as exc:
            if len(batch) > 1:
                for ticket in batch:
                    self._commit([ticket])
                return
            log.error("audit write failed: %s", exc)
            batch[0].error = exc
        for ticket in batch:
            ticket.done.set()


def sink_for(enabled: bool, engine: Engine) -> AuditSink:
    """The sink settings ask for: :class:`DatabaseSink`, or :class:`NullSink` when off."""
    return DatabaseSink(engine) if enabled else NullSink()
