"""Alembic environment: migrations run on the engine handed over by :func:`dhr.store.db.upgrade`."""

from __future__ import annotations

from alembic import context

import dhr.store.audit_models  # registers the audit tables
import dhr.store.auth_models  # registers the authorisation tables
import dhr.store.policy_models
import dhr.store.record_models  # noqa: F401 - registers the unified-record tables
from dhr.store.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
