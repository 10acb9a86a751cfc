"""Engines, migrations and the unit of work (one request is one transaction).

SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` so two writers queue
on the busy timeout instead of failing on a lock upgrade. PostgreSQL runs READ COMMITTED with row
locks taken by the repository. Nothing outside :func:`unit_of_work` commits.

Both drivers run in autocommit mode and the store sends BEGIN itself: SQLite when SQLAlchemy
begins, PostgreSQL with the transaction's first statement (:mod:`dhr.store.driver`). So SQL must
go through SQLAlchemy or :mod:`dhr.store.driver`, never straight to a DBAPI cursor: a statement
sent around both would run outside the transaction. A single-statement read needs no
transaction; on SQLite it runs on a connection its thread keeps (:func:`_sqlite_read`).
"""

from __future__ import annotations

import contextvars
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from dhr.config import Settings
from dhr.store.driver import (
    PREPARE_EXPLICIT_ONLY,
    begin_if_due,
    forget_begin,
    mark_begin,
    on_cursor,
)
from dhr.store.index_writer import discard_pending, start_flush

MIGRATIONS = Path(__file__).parent / "migrations"
# How the next SQLite transaction begins: "write" (IMMEDIATE), "read" (deferred) or "none".
_TXN_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("dhr_txn_mode", default="read")
_BEGIN = {"write": "BEGIN IMMEDIATE", "read": "BEGIN"}
WAL_CHECKPOINT_PAGES = 10_000


def make_engine(url: str, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and immediate write transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            pool_size=8,
            max_overflow=8,
        )
        _sqlite_setup(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    # Server-side prepared statements only where asked for (dhr.store.driver): a search's best
    # plan depends on its values (one patient vs the whole population), and PostgreSQL's generic
    # plans after five executions of a prepared statement lose that (measured: 3-4x growth with
    # data size instead of 1.1x); the store's fixed key lookups and inserts do not.
    # The driver runs in autocommit mode; transactions begin lazily (_postgresql_setup).
    engine = create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        pool_use_lifo=True,
        pool_reset_on_return=None,  # _postgresql_setup resets only what needs it
        isolation_level="AUTOCOMMIT",
        connect_args={
            "prepare_threshold": PREPARE_EXPLICIT_ONLY,
            # What is prepared is planned once: its plan does not depend on its values (above),
            # and the consent check of a read is too large to plan five times per connection.
            # No JIT (https://www.postgresql.org/docs/15/jit-decision.html): a consent search's
            # estimated cost passes jit_above_cost, and compiling its expressions took 20 ms of a
            # 42 ms count at 191k resources, every time; these are short queries.
            "options": "-c plan_cache_mode=force_generic_plan -c jit=off",
        },
    )
    _postgresql_setup(engine)
    return engine


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics (after a bulk load the old ones mislead it); on
    PostgreSQL also the visibility map (``VACUUM``), without which an index-only scan still
    reads every table row it finds until autovacuum comes round
    (https://www.postgresql.org/docs/15/indexes-index-only-scans.html)."""
    if engine.dialect.name == "sqlite":
        with unit_of_work(engine, write=True) as conn:
            conn.exec_driver_sql("ANALYZE")
        return
    # On the driver's own connection (in autocommit mode): a SQLAlchemy connection would send
    # its lazy BEGIN first, and VACUUM cannot run inside a transaction block.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM (ANALYZE)")
        cursor.close()
    finally:
        raw.close()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        # Checkpoint every ~40 MB of WAL instead of every 4 MB: a transaction Bundle dirties
        # thousands of index pages, and checkpointing them after every Bundle (write + fsync of
        # the database file) cost a fifth of the load time. Durability is unchanged (WAL with
        # synchronous=NORMAL); the WAL is cut back to 64 MB after a checkpoint.
        cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cur.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        begin = _BEGIN.get(_TXN_MODE.get())
        if begin:
            on_cursor(conn, begin, lambda cursor: cursor.execute(begin))

    @event.listens_for(engine, "engine_disposed")
    def _on_dispose(_engine: Engine) -> None:
        _readers(engine).generation += 1


def _postgresql_setup(engine: Engine) -> None:
    """Transactions on an autocommit driver: SQLAlchemy's ``begin`` notes that BEGIN is due and
    the transaction's first statement sends it (:mod:`dhr.store.driver`), so a unit of work
    saves a round trip. A single-statement read (``_TXN_MODE`` "none") stays in autocommit.
    """

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if _TXN_MODE.get() != "none":
            mark_begin(conn)

    @event.listens_for(engine, "before_cursor_execute")
    def _before_execute(
        conn: Connection,
        cursor: Any,
        _statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        begin_if_due(conn, cursor)

    @event.listens_for(engine, "commit")
    def _on_commit(conn: Connection) -> None:
        forget_begin(conn)

    @event.listens_for(engine, "reset")
    def _on_reset(dbapi_conn: Any, _record: Any, _state: Any) -> None:
        # A connection going back to the pool inside a transaction (the unit of work never
        # ended it) is rolled back; an idle one, the usual case, costs no driver call.
        if dbapi_conn.pgconn.transaction_status != TransactionStatus.IDLE:
            dbapi_conn.rollback()

    @event.listens_for(engine, "rollback")
    def _on_rollback(conn: Connection) -> None:
        forget_begin(conn)


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Migrate the database to the newest schema (``dhr db upgrade``)."""
    command.upgrade(alembic_config(engine), "head")


def is_empty(engine: Engine) -> bool:
    return "alembic_version" not in inspect(engine).get_table_names()


def engine_for(settings: Settings) -> Engine:
    return make_engine(settings.effective_database_url, echo=settings.log_sql)


class _Readers:
    """Per engine: each thread's own SQLite connection for single-statement reads."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.generation = 0  # bumped by Engine.dispose(): older connections are closed


_READERS: weakref.WeakKeyDictionary[Engine, _Readers] = weakref.WeakKeyDictionary()


def _readers(engine: Engine) -> _Readers:
    readers = _READERS.get(engine)
    if readers is None:
        readers = _READERS.setdefault(engine, _Readers())
    return readers


@contextmanager
def _sqlite_read(engine: Engine) -> Iterator[Connection]:
    """A single-statement read on this thread's own connection, kept between reads.

    Checking a connection out of the pool and back costs about as much as the read itself. The
    kept connection is detached from the pool (the pool opens another in its place) and is in
    autocommit mode with no transaction between reads, so it holds no snapshot and no lock: a
    WAL reader sees every commit made before its statement starts. A thread already inside a
    read (re-entry) or whose connection failed gets a pooled connection as before.
    """
    readers = _readers(engine)
    local = readers.local
    conn: Connection | None = getattr(local, "conn", None)
    if getattr(local, "busy", False):
        with engine.connect() as pooled:
            yield pooled
        return
    if conn is not None and (conn.closed or conn.invalidated or local.gen != readers.generation):
        conn.close()
        conn = None
    if conn is None:
        conn = engine.connect()
        conn.detach()
        local.conn, local.gen = conn, readers.generation
    local.busy = True
    try:
        yield conn
    except DBAPIError:
        local.conn = None
        conn.close()
        raise
    finally:
        local.busy = False
        if local.conn is conn and conn.in_transaction():
            conn.rollback()  # autobegun by SQLAlchemy; the driver never sent BEGIN


# Checks a write's unit of work runs after its last statement and before it commits.
_CHECKS: weakref.WeakKeyDictionary[Connection, list[Callable[[], None]]] = (
    weakref.WeakKeyDictionary()
)


def before_commit(conn: Connection, check: Callable[[], None]) -> None:
    """Run ``check`` when ``conn``'s unit of work has done everything but commit (its index
    rows on their way: ``check`` must not use ``conn``); an exception it raises rolls the unit
    back instead. It also runs when the unit fails first, and its exception then replaces the
    failure: what the pool of validation workers (:mod:`dhr.fhir.validate_pool`) found invalid
    explains whatever followed from it. Waiting that late lets the write overlap the check."""
    _CHECKS.setdefault(conn, []).append(check)


def _wait_quietly(landed: Callable[[], None]) -> None:
    """Wait for the index rows' write, whose failure the check's exception explains."""
    with suppress(Exception):
        landed()


def _run_checks(conn: Connection) -> None:
    for check in _CHECKS.pop(conn, ()):
        check()


@contextmanager
def unit_of_work(
    engine: Engine, write: bool, single_statement: bool = False
) -> Iterator[Connection]:
    """One transaction: commit when the block succeeds, roll back on any exception.

    A read that runs exactly one statement (read, vread) skips BEGIN/COMMIT altogether: one
    statement is its own consistent snapshot, and on PostgreSQL that saves two round trips.
    """
    autocommit = single_statement and not write
    token = _TXN_MODE.set("write" if write else "none" if autocommit else "read")
    try:
        if autocommit and engine.dialect.name == "sqlite":
            # SQLite's driver already runs in autocommit mode here (BEGIN is ours to send).
            with _sqlite_read(engine) as conn:
                yield conn
        elif autocommit:  # PostgreSQL's driver always runs in autocommit mode (BEGIN is ours)
            with engine.connect() as conn:
                yield conn
        else:
            with engine.begin() as conn:
                try:
                    try:
                        yield conn
                        landed = start_flush(conn)  # queued index rows land before the commit
                    except Exception:
                        _run_checks(conn)  # a failed check explains whatever followed
                        raise
                    try:
                        _run_checks(conn)  # while the server inserts the index rows
                    except BaseException:  # even an interrupt: no COPY may outlive the rollback
                        _wait_quietly(landed)
                        raise
                    landed()
                finally:
                    discard_pending(conn)
                    _CHECKS.pop(conn, None)
    finally:
        _TXN_MODE.reset(token)
