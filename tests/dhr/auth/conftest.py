"""Fixtures for the authorisation server's tests: the live server's :class:`AuthServer`, an HTTP
client at the server root (``/auth``, ``/.well-known``), registered clients and a settable clock.

Tests register clients with unique ids and never rely on the auth tables being emptied (or
kept) between tests.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from dhr.auth.clients import Client, register_client
from dhr.auth.model import ClientKind
from dhr.auth.service import AuthServer
from dhr.store import db
from tests.conftest import LiveServer


@pytest.fixture
def auth(server: LiveServer) -> AuthServer:
    """The live server's own authorisation server (same keys, same revocation list).

    Its key ring re-reads the table first, so it agrees with rings other tests build.
    """
    svc: AuthServer = server.app.state.auth
    svc.keys.reload()
    return svc


@pytest.fixture
def root(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client whose base URL is the server root (the issuer)."""
    with httpx.Client(base_url=server.settings.issuer, timeout=30) as http:
        yield http


@dataclass
class Registered:
    client: Client
    secret: str | None

    @property
    def client_id(self) -> str:
        return self.client.client_id

    def basic(self) -> tuple[str, str]:
        assert self.secret is not None
        return (self.client.client_id, self.secret)


def register(
    engine: Engine,
    kind: ClientKind = ClientKind.CONFIDENTIAL_SYMMETRIC,
    *,
    origins: tuple[str, ...] = (),
    scopes: str = "openid fhirUser launch/patient offline_access patient/*.rs user/*.cruds",
) -> Registered:
    """A freshly registered user-facing client with a unique id."""
    client, secret = register_client(
        engine,
        client_id=f"test-{kind.value}-{uuid.uuid4().hex[:10]}",
        name="Test app",
        kind=kind,
        redirect_uris=("https://app.example.org/callback",),
        scopes=scopes,
        origins=origins,
    )
    return Registered(client, secret)


@pytest.fixture
def confidential(server: LiveServer, engine: Engine) -> Registered:
    return register(engine)


class Clock:
    """A clock tests move by hand; starts at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def isolated_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A database of its own (same engine kind as the suite's), for tests that move the clock
    and would otherwise disturb the live server's keys."""
    base = os.environ.get("DHR_TEST_DATABASE_URL", "").strip()
    if not base:
        path = tmp_path_factory.mktemp("isolated") / "dhr.sqlite"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        yield engine
        engine.dispose()
        return
    name = f"dhr_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = db.make_engine(make_url(base).set(database=name).render_as_string(hide_password=False))
    try:
        db.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
