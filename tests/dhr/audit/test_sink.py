"""The audit sinks: group commit of many requests' events, and failing closed.

ARCHITECTURE.md "Audit": "if it cannot be written, the request fails (fail closed)". The
database sink's writer takes the events of every waiting request and commits them in one
transaction; a request whose events cannot be committed (table gone, a bad record, a writer
stuck behind a lock past the timeout) gets :class:`AuditUnavailable` (503). Each test runs on a
throwaway database of the engine under test (a temporary SQLite file, or a ``dhr_test_a2_*``
PostgreSQL database), since some break the audit table on purpose.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from dhr.audit.events import build_event
from dhr.audit.model import AuditRecord
from dhr.audit.sink import AuditUnavailable, DatabaseSink, NullSink, sink_for
from dhr.auth.model import Principal
from dhr.store import db
from dhr.store.audit_store import EventRow
from tests.conftest import ENV_URL

WHO = Principal(subject="user-1", client_id="app-1")


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A migrated, empty database of the engine under test, removed afterwards."""
    base = os.environ.get(ENV_URL, "").strip()
    if not base:
        with tempfile.TemporaryDirectory(prefix="dhr-a2-") as directory:
            url = f"sqlite:///{Path(directory) / 'audit.sqlite'}"
            db.upgrade(db.make_engine(url))
            yield url
        return
    name = f"dhr_test_a2_{uuid.uuid4().hex[:12]}"
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(base).set(database=name).render_as_string(hide_password=False)
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def engine() -> Iterator[Engine]:
    with throwaway_database() as url:
        eng = db.make_engine(url)
        yield eng
        eng.dispose()


def record(event_id: str | None = None) -> AuditRecord:
    return build_event(
        event_id=event_id or str(uuid.uuid4()),
        recorded=1_764_000_000_000_000,
        subtype="read",
        action="R",
        outcome="0",
        principal=WHO,
        request_id=str(uuid.uuid4()),
        patient="p1",
        entities=["Patient/p1"],
        query=None,
        outcome_desc=None,
        purpose=None,
        break_glass=False,
        server="http://dhr.test/fhir",
    )


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


@contextmanager
def audit_locked(engine: Engine) -> Iterator[None]:
    """Hold a lock that keeps the sink's writer from inserting until the block ends."""
    with db.unit_of_work(engine, write=True) as conn:  # SQLite: BEGIN IMMEDIATE
        if engine.dialect.name == "sqlite":
            conn.execute(text("SELECT count(*) FROM audit_event"))
        else:
            conn.execute(text("LOCK TABLE audit_event IN EXCLUSIVE MODE"))
        yield


def write_concurrently(
    sink: DatabaseSink, engine: Engine, batches: list[list[AuditRecord]]
) -> list[BaseException | None]:
    """Each batch written by a thread of its own while the writer is held back, so that they
    all queue up; returns each thread's error (or None)."""
    errors: list[BaseException | None] = [None] * len(batches)

    def run(i: int) -> None:
        try:
            sink.write(batches[i])
        except AuditUnavailable as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    with audit_locked(engine):
        for t in threads:
            t.start()
        time.sleep(0.5)  # every request is queued behind the lock
    for t in threads:
        t.join(timeout=30)
    return errors


def test_many_requests_share_one_commit(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    batches = [[record(), record(), record()] for _ in range(40)]
    try:
        errors = write_concurrently(sink, engine, batches)
    finally:
        sink.close()
    assert errors == [None] * 40
    assert count(engine) == 120
    # Each writer's first batch waited at the lock; everything queued behind it shares a commit.
    assert 1 <= sink.commits <= 2 * sink.writers, f"{sink.commits} commits for 40 requests"


class SlowSink(DatabaseSink):
    """A database that takes 0.2 s over each commit."""

    def _insert(self, rows: list[EventRow]) -> None:
        time.sleep(0.2)
        super()._insert(rows)


def test_with_several_writers_each_request_returns_once_its_own_events_are_committed() -> None:
    """Two writer slots (PostgreSQL's sink has four) and slow commits: while both writers are
    busy, later requests queue; the first to get a slot takes all of them, and the next finds
    its events in that writer's commit. Whoever commits them, a request returns only once its
    events are in the table, and each event is written once."""
    with throwaway_database() as url:
        engine = db.make_engine(url)
        sink = SlowSink(engine, writers=2)
        batches = [[record(), record()] for _ in range(12)]
        missing: list[int] = []

        def run(i: int) -> None:
            sink.write(batches[i])
            with engine.connect() as conn:
                found = conn.execute(
                    text("SELECT count(*) FROM audit_event WHERE event_id IN (:a, :b)"),
                    {"a": batches[i][0].event_id, "b": batches[i][1].event_id},
                ).scalar_one()
            if found != 2:
                missing.append(i)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        finally:
            sink.close()
        assert missing == []
        assert count(engine) == 24
        assert sink.commits < 12, f"{sink.commits} commits for 12 requests"
        engine.dispose()


def test_one_bad_record_fails_only_its_own_request(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    taken = str(uuid.uuid4())
    sink.write([record(taken)])
    batches = [[record()], [record(taken)], [record()]]
    try:
        errors = write_concurrently(sink, engine, batches)
    finally:
        sink.close()
    assert [e is not None for e in errors] == [False, True, False]
    assert count(engine) == 3


def test_a_missing_audit_table_fails_closed(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_gone"))
    try:
        with pytest.raises(AuditUnavailable) as caught:
            sink.write([record()])
        assert caught.value.status == 503
        with pytest.raises(AuditUnavailable), db.unit_of_work(engine, write=True) as conn:
            sink.insert(conn, [record()])
    finally:
        sink.close()
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event_gone RENAME TO audit_event"))
    assert count(engine) == 0


def test_a_writer_stuck_past_the_timeout_fails_closed(engine: Engine) -> None:
    sink = DatabaseSink(engine, timeout=0.3)
    try:
        with audit_locked(engine):
            started = time.monotonic()
            with pytest.raises(AuditUnavailable, match="in time"):
                sink.write([record()])
            assert time.monotonic() - started < 5
    finally:
        sink.close()


def test_requests_behind_a_stuck_writer_fail_closed_and_the_next_ones_succeed(
    engine: Engine,
) -> None:
    """Every request waiting behind a writer that cannot commit gets its 503 in time, none of
    their records is written later, and the sink is not left waiting for a writer that gave
    up: the requests after the lock is gone commit."""
    sink = DatabaseSink(engine, timeout=0.2)  # the lock is held for 0.5 s
    started = time.monotonic()
    try:
        errors = write_concurrently(sink, engine, [[record()] for _ in range(sink.writers + 6)])
        waited = time.monotonic() - started
        assert all(isinstance(e, AuditUnavailable) and "in time" in str(e) for e in errors)
        assert waited < 5
        assert count(engine) == 0
        sink.write([record()])
        sink.write([record(), record()])
    finally:
        sink.close()
    assert count(engine) == 3


def test_a_search_touching_thousands_of_patients_is_audited_in_one_commit(engine: Engine) -> None:
    """One event per patient: 2,500 events are more than SQLite binds in one statement
    (1,000 events each), so they go as several statements inside one transaction."""
    sink = DatabaseSink(engine)
    try:
        sink.write([record() for _ in range(2500)])
        assert sink.commits == 1
    finally:
        sink.close()
    assert count(engine) == 2500


def test_a_bad_record_late_in_a_large_write_leaves_none_of_it(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    taken = str(uuid.uuid4())
    try:
        sink.write([record(taken)])
        with pytest.raises(AuditUnavailable):
            sink.write([*(record() for _ in range(1500)), record(taken)])
    finally:
        sink.close()
    assert count(engine) == 1


def test_a_lone_request_commits_on_its_own_thread(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    before = threading.active_count()
    try:
        sink.write([record()])
        assert threading.active_count() == before
        assert sink.commits == 1
    finally:
        sink.close()
    assert count(engine) == 1


def test_close_lets_go_of_connections_and_a_later_write_opens_one(engine: Engine) -> None:
    sink = DatabaseSink(engine)
    sink.write([record()])
    sink.close()
    sink.write([record()])
    sink.close()
    assert count(engine) == 2


def test_the_null_sink_records_nothing(engine: Engine) -> None:
    sink = sink_for(False, engine)
    assert isinstance(sink, NullSink)
    assert not sink.enabled
    sink.write([record()])
    with db.unit_of_work(engine, write=True) as conn:
        sink.insert(conn, [record()])
    assert count(engine) == 0
    assert isinstance(sink_for(True, engine), DatabaseSink)
