"""Fixtures of the store's tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from dhr.store import db
from tests.conftest import ENV_URL


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def private_engine(tmp_path: Path) -> Iterator[Engine]:
    """A database of its own, not migrated: a SQLite file, or a throwaway PostgreSQL database
    when ``DHR_TEST_DATABASE_URL`` names a server."""
    base = os.environ.get(ENV_URL, "").strip()
    if not base:
        engine = db.make_engine(f"sqlite:///{tmp_path / 'migrate.sqlite'}")
        yield engine
        engine.dispose()
        return
    name = f"dhr_test_migrate_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = db.make_engine(make_url(base).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(_libpq(base), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
