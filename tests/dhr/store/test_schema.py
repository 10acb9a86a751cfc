"""The migrations (``dhr db upgrade``, Alembic: https://alembic.sqlalchemy.org/) build exactly the
schema the models describe, on both engines: a table, column or index added to a model without
its migration (or the other way round) would work in a test database built one way and fail in a
production database built the other."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from dhr.store import audit_models, auth_models, policy_models, record_models
from dhr.store.models import Base

MODELS = (audit_models, auth_models, policy_models, record_models)  # every table, registered


def test_the_migrated_database_matches_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
