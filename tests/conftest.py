"""Shared fixtures: a real database (SQLite, or PostgreSQL when ``DHR_TEST_DATABASE_URL`` names
one), a real DHR server on a loopback port, and an HTTP client that talks to it.

Each test session gets its own PostgreSQL database (dropped afterwards), so parallel runs and
xdist workers never share state. Every test starts from empty tables.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from dhr.app import create_app
from dhr.config import Settings
from dhr.store import db
from dhr.store.models import Base

ENV_URL = "DHR_TEST_DATABASE_URL"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database for this test session."""
    base = os.environ.get(ENV_URL, "").strip()
    if not base:
        path = tmp_path_factory.mktemp("db") / "dhr-test.sqlite"
        yield f"sqlite:///{path}"
        return
    name = f"dhr_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def engine_name(engine: Engine) -> str:
    return engine.dialect.name


def empty_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """A real uvicorn server in a background thread."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.app = create_app(settings, engine, migrate=False)
        config = uvicorn.Config(
            self.app, host=settings.host, port=settings.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base(self) -> str:
        return self.settings.fhir_base

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def make_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    port = _free_port()
    values: dict[str, object] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "port": port,
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "max_body_bytes": 2 * 1024 * 1024,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def live_server(
    engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = LiveServer(make_settings(database_url, tmp_path_factory.mktemp("data")), engine)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(live_server: LiveServer, engine: Engine) -> LiveServer:
    """The live server, with empty tables for this test."""
    empty_tables(engine)
    return live_server


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client whose base URL is the server's FHIR base (``/fhir/``)."""
    with httpx.Client(base_url=server.base + "/", timeout=30) as http:
        yield http


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(ENV_URL, "").strip()
    return f"DHR test database: {'PostgreSQL ' + url if url else 'SQLite (embedded)'}"
