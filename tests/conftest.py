"""Shared fixtures: a real database (SQLite, or PostgreSQL when ``DHR_TEST_DATABASE_URL`` names
one), a real DHR server on a loopback port, and HTTP clients that talk to it.

Each test session gets its own PostgreSQL database (dropped afterwards), so parallel runs and
xdist workers never share state. Every test starts from empty FHIR tables; the authorisation
tables (clients, keys, revocations...) are kept for the session.

The FHIR API needs a bearer token (SMART App Launch 2.2). ``client`` carries one for a system
principal with ``system/*.cruds``, obtained the way an EHR supplier's system would: a Backend
Services client registered once per session, ``client_credentials`` with a ``private_key_jwt``
assertion (https://hl7.org/fhir/smart-app-launch/backend-services.html), renewed when less than
a minute remains. ``anonymous_client`` has no token; ``issue_token`` mints real tokens with the
server's own signing key for any scope and launch context.
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

from dhr.access.policy import forget_compiled_policies
from dhr.app import create_app
from dhr.auth.service import AuthServer
from dhr.config import Settings
from dhr.store import db
from dhr.store.auth_models import AUTH_TABLES
from dhr.store.models import Base
from tests.helpers import BackendClient, TokenIssuer

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
    """Delete every row of the FHIR tables (the authorisation tables are left alone), and
    forget the consent policy's compiled forms: they are kept by the newest Consent version's
    key, which starts again from nothing in emptied tables."""
    forget_compiled_policies()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name not in AUTH_TABLES]
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
    # The session's server serves the tests of everything but the consent policy, so it runs the
    # direct-care implicit policy (no care relationship needed; consent, labels, controllers and
    # opt-outs still apply in every statement). tests/dhr/consent runs the default on its own.
    # Its transactions and imports of two or more resources are validated in the worker pool
    # (dhr.fhir.validate_pool; the server's default is 64), so every transaction and $import test
    # checks that the pool answers exactly as in-line validation does.
    settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("data"),
        consent_implicit="direct-care",
        validation_workers=1,
        validation_pool_min=2,
    )
    yield from running(settings, engine)


def running(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    """A started live server, stopped when the caller's fixture ends."""
    server = LiveServer(settings, engine)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(live_server: LiveServer, engine: Engine) -> LiveServer:
    """The live server, with empty tables for this test."""
    empty_tables(engine)
    return live_server


@pytest.fixture(scope="session")
def system_backend(live_server: LiveServer, engine: Engine) -> BackendClient:
    """A Backend Services client allowed ``system/*.cruds``, registered once per session."""
    return BackendClient(engine, live_server.settings, scope="system/*.cruds")


@pytest.fixture
def client(server: LiveServer, system_backend: BackendClient) -> Iterator[httpx.Client]:
    """An HTTP client at the FHIR base (``/fhir/``) carrying a ``system/*.cruds`` bearer token
    obtained through ``client_credentials``."""
    with httpx.Client(base_url=server.base + "/", timeout=30, auth=system_backend) as http:
        yield http


@pytest.fixture(scope="session")
def policy_live_server(
    engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A second live server with the default consent policy (care relationship needed)."""
    yield from running(make_settings(database_url, tmp_path_factory.mktemp("policy")), engine)


@pytest.fixture
def policy_server(policy_live_server: LiveServer, engine: Engine) -> LiveServer:
    """The default-policy server, with empty tables for this test."""
    empty_tables(engine)
    return policy_live_server


@pytest.fixture(scope="session")
def policy_backend(policy_live_server: LiveServer, engine: Engine) -> BackendClient:
    """A Backend Services client of the default-policy server (``system/*.cruds``, acting for
    the test organisation)."""
    return BackendClient(engine, policy_live_server.settings, scope="system/*.cruds")


@pytest.fixture
def policy_client(
    policy_server: LiveServer, policy_backend: BackendClient
) -> Iterator[httpx.Client]:
    """An HTTP client at the default-policy server's FHIR base, as :func:`client`."""
    with httpx.Client(base_url=policy_server.base + "/", timeout=30, auth=policy_backend) as http:
        yield http


@pytest.fixture
def anonymous_client(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client at the FHIR base without any token."""
    with httpx.Client(base_url=server.base + "/", timeout=30) as http:
        yield http


@pytest.fixture
def issue_token(server: LiveServer) -> TokenIssuer:
    """Mints real access tokens signed by the live server (any scope, patient, lifetime)."""
    auth: AuthServer = server.app.state.auth
    return TokenIssuer(auth)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``make test`` runs the suite once per engine; a test marked ``database_free`` learns
    nothing from the PostgreSQL pass (it never opens a connection), so it runs in the SQLite
    pass only and the PostgreSQL pass reports it as deselected."""
    if not os.environ.get(ENV_URL, "").strip():
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if item.get_closest_marker("database_free") else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get(ENV_URL, "").strip()
    return f"DHR test database: {'PostgreSQL ' + url if url else 'SQLite (embedded)'}"
