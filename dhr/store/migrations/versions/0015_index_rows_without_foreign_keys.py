"""search index rows are not checked against the resource table on insert

Every index row named its resource by a foreign key (``resource_key`` -> ``resource.key``), so
each of the ~15 rows a resource writes made the database look its resource up: on PostgreSQL a
referential-integrity trigger per row (a query of its own, inside COPY too), on SQLite a probe
of the resource table's key per row. The rows are only ever written by the store, in the unit
of work that writes their resource and with the key that insert returned, and dropped with it
(``dhr/store/index_writer.py``); no resource row is ever deleted. ADR 0005 records why the
check goes. The version rows keep theirs (one per write).

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TABLES = ("ix_token", "ix_string", "ix_date", "ix_number", "ix_quantity", "ix_reference", "ix_uri")
# SQLite rebuilds each table (batch mode); its one partial index is written back as it was.
PARTIAL = ("ix_ix_reference_res_type_param_url", "ix_reference", ["res_type", "param", "url"])
HAS_URL = "url IS NOT NULL"


def _fk(table: str) -> str:
    return f"fk_{table}_resource_key_resource"


def _partial_index_again() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    name, table, columns = PARTIAL
    op.drop_index(name, table_name=table)
    op.create_index(name, table, columns, sqlite_where=sa.text(HAS_URL))


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(_fk(table), type_="foreignkey")
    _partial_index_again()


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(_fk(table), "resource", ["resource_key"], ["key"])
    _partial_index_again()
