"""A private database for the audit core's tests, plus helpers to build and insert events.

The audit tests need a chain nobody else appends to: the shared test database's live server runs
its own chainer (with its own signing key), which would chain these tests' rows too. So they get
a database of their own (SQLite file, or a throwaway PostgreSQL database when
``DHR_TEST_DATABASE_URL`` names a server), created once per process and dropped at exit.
"""

from __future__ import annotations

import atexit
import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from dhr.audit.events import build_event
from dhr.audit.model import Action, AuditRecord
from dhr.auth.model import Principal
from dhr.config import Settings
from dhr.store import audit_store, db
from tests.conftest import ENV_URL

_STATE: dict[str, Engine] = {}
BASE = "http://dhr.test/fhir"
START = 1_764_000_000_000_000  # µs: 2025-11-24T16:00:00Z
USER = Principal(
    subject="user-1",
    client_id="app-1",
    fhir_user="Practitioner/p1",
    roles=("R8000",),
    organisation="A81001",
)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def audit_engine() -> Engine:
    """The private engine, migrated (created on first use)."""
    engine = _STATE.get("engine")
    if engine is not None:
        return engine
    base = os.environ.get(ENV_URL, "").strip()
    if not base:
        directory = Path(tempfile.mkdtemp(prefix="dhr-audit-test-"))
        url = f"sqlite:///{directory / 'audit.sqlite'}"
    else:
        name = f"dhr_test_audit_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(_libpq(base), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = make_url(base).set(database=name).render_as_string(hide_password=False)

        def _drop() -> None:
            engine.dispose()
            with psycopg.connect(_libpq(base), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        atexit.register(_drop)
    engine = db.make_engine(url)
    db.upgrade(engine)
    _STATE["engine"] = engine
    return engine


def reset(engine: Engine) -> None:
    """Empty the audit tables (and restart the keys)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("TRUNCATE audit_event, audit_checkpoint RESTART IDENTITY"))
        else:
            conn.execute(text("DELETE FROM audit_event"))
            conn.execute(text("DELETE FROM audit_checkpoint"))


def settings_for(engine: Engine, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": engine.url.render_as_string(hide_password=False),
        "data_dir": data_dir,
        "base_url": BASE,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def record(
    n: int,
    *,
    patient: str | None = "pat-1",
    action: Action = "R",
    subtype: str = "read",
    recorded: int | None = None,
    principal: Principal = USER,
    entities: Sequence[str] = (),
) -> AuditRecord:
    return build_event(
        event_id=f"evt-{n:06d}",
        recorded=START + n * 1_000_000 if recorded is None else recorded,
        subtype=subtype,
        action=action,
        outcome="0",
        principal=principal,
        request_id=f"req-{n}",
        patient=patient,
        entities=list(entities) or [f"Observation/o{n}"],
        query=None,
        outcome_desc=None,
        purpose="TREAT",
        break_glass=False,
        server=BASE,
    )


def insert(engine: Engine, first: int, count: int) -> list[AuditRecord]:
    """Insert events ``first`` .. ``first + count - 1`` unchained, in one transaction."""
    records = [record(n) for n in range(first, first + count)]
    with db.unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, records)
    return records
