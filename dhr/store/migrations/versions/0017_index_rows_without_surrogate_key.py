"""search index rows have no surrogate key

Each index table had a ``key`` column, its primary key, filled from a sequence. Nothing reads
it: a resource's rows are found, and deleted, by ``resource_key`` (each table's
``(resource_key, param, ...)`` index), and a search by its other index. On PostgreSQL each of
the ~16 rows a resource writes still drew a sequence value and added a B-tree entry: without
them the ingest benchmark ran 8% faster (``bench/ingest.py``, ADR 0005). SQLite keeps its
implicit rowid, as before under the alias.

PostgreSQL needs a replica identity to publish a table's deletes for logical replication; a
table without a primary key gets ``REPLICA IDENTITY FULL`` (the whole old row is logged, only
under ``wal_level = logical``).

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLES = ("ix_token", "ix_string", "ix_date", "ix_number", "ix_quantity", "ix_reference", "ix_uri")
# SQLite rebuilds each table (batch mode); its one partial index is written back as it was.
PARTIAL = ("ix_ix_reference_res_type_param_url", "ix_reference", ["res_type", "param", "url"])
HAS_URL = "url IS NOT NULL"


def _partial_index_again() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    name, table, columns = PARTIAL
    op.drop_index(name, table_name=table)
    op.create_index(name, table, columns, sqlite_where=sa.text(HAS_URL))


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgresql:
            op.execute(f"ALTER TABLE {table} DROP COLUMN key")  # its constraint and sequence too
            op.execute(f"ALTER TABLE {table} REPLICA IDENTITY FULL")
            continue
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.drop_column("key")
    _partial_index_again()


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgresql:
            op.execute(f"ALTER TABLE {table} REPLICA IDENTITY DEFAULT")
            op.execute(f"ALTER TABLE {table} ADD COLUMN key BIGSERIAL")
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (key)")
            continue
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.add_column(sa.Column("key", sa.Integer(), nullable=True))
        # Number the rows as the rowid does, then make the column the rowid's alias again.
        op.execute(f"UPDATE {table} SET key = rowid")  # noqa: S608 - our own table names
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column("key", existing_type=sa.Integer(), nullable=False)
            batch.create_primary_key(f"pk_{table}", ["key"])
    _partial_index_again()
