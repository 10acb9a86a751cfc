"""Engines, migrations and the unit of work (one request is one transaction).

SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` so two writers queue
on the busy timeout instead of failing on a lock upgrade. PostgreSQL runs READ COMMITTED with row
locks taken by the repository. Nothing outside :func:`unit_of_work` commits.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url

from dhr.config import Settings
from dhr.store.index_writer import discard_pending, flush_index_rows

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
    # No server-side prepared statements: a search's best plan depends on its values (one
    # patient vs the whole population), and PostgreSQL's generic plans after five executions
    # of a prepared statement lose that (measured: 3-4x growth with data size instead of 1.1x).
    return create_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        pool_recycle=1800,
        pool_use_lifo=True,
        connect_args={"prepare_threshold": None},
    )


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics (after a bulk load the old ones mislead it)."""
    if engine.dialect.name == "sqlite":
        with unit_of_work(engine, write=True) as conn:
            conn.exec_driver_sql("ANALYZE")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")


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
    def _on_begin(conn: Any) -> None:
        begin = _BEGIN.get(_TXN_MODE.get())
        if begin:
            conn.exec_driver_sql(begin)


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
        if autocommit:
            # SQLite's driver already runs in autocommit mode here (BEGIN is ours to send).
            options = {} if engine.dialect.name == "sqlite" else {"isolation_level": "AUTOCOMMIT"}
            with engine.connect().execution_options(**options) as conn:
                yield conn
        else:
            with engine.begin() as conn:
                try:
                    yield conn
                    flush_index_rows(conn)  # queued index rows land before the commit
                finally:
                    discard_pending(conn)
    finally:
        _TXN_MODE.reset(token)
