"""PostgreSQL compresses stored resource and AuditEvent JSON with LZ4 instead of pglz

A value over about 2 kB (most ingested resources, many AuditEvents) is compressed before it is
stored (https://www.postgresql.org/docs/15/storage-toast.html). pglz was the server's default
and showed in profiles of ingest as the server's costliest function after its B-trees; LZ4
(PostgreSQL 14 and later, ``ALTER TABLE ... SET COMPRESSION``) compresses several times faster
and reads back faster, for slightly larger values. New values only: rows already stored keep
what they were written with, and both methods read back the same bytes.

A server built without LZ4 refuses the method (``feature_not_supported``); it keeps pglz then.
SQLite stores the JSON as written: nothing to do.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = (("resource_version", "data"), ("audit_event", "data"))


def _set_compression(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in COLUMNS:
        op.execute(
            "DO $$ BEGIN "
            f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}; "
            "EXCEPTION WHEN feature_not_supported THEN NULL; END $$"
        )


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("default")
