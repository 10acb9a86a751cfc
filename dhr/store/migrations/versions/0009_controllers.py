"""the controllers: each resource row lists its data controllers' ODS codes

See ``dhr/store/controller_codes.py`` (ADR 0010 item 11). The column's default ``*`` means "not
worked out", which the consent decision reads from the ``_tag`` index rows, so a row the backfill
misses is still judged correctly. The backfill works the value out for every live resource from
its stored ``_tag`` index rows, as the write path does from new ones.

Revision ID: 0009
Revises: 0008
"""

from itertools import groupby

import sqlalchemy as sa
from alembic import op

from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.search.rows import TokenRow
from dhr.store.controller_codes import UNKNOWN, controller_codes

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None
BATCH = 5000


def _backfill() -> None:
    conn = op.get_bind()
    resource = sa.table(
        "resource",
        sa.column("key", sa.Integer),
        sa.column("deleted", sa.Boolean),
        sa.column("controllers", sa.String),
    )
    tok = sa.table(
        "ix_token",
        sa.column("resource_key", sa.Integer),
        sa.column("param", sa.String),
        sa.column("system", sa.String),
        sa.column("code", sa.String),
    )
    conn.execute(resource.update().where(resource.c.deleted == sa.false()).values(controllers=None))
    tags = conn.execute(
        sa.select(tok.c.resource_key, tok.c.code)
        .where(tok.c.param == "_tag", tok.c.system == CONTROLLER_SYSTEM)
        .order_by(tok.c.resource_key)
    ).all()
    values = [
        {"k": key, "c": controller_codes(TokenRow("_tag", CONTROLLER_SYSTEM, c) for _, c in rows)}
        for key, rows in groupby(tags, key=lambda row: row[0])
    ]
    update = (
        resource.update()
        .where(resource.c.key == sa.bindparam("k"), resource.c.deleted == sa.false())
        .values(controllers=sa.bindparam("c"))
    )
    for start in range(0, len(values), BATCH):
        conn.execute(update, values[start : start + BATCH])


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(
            sa.Column("controllers", sa.String(length=255), nullable=True, server_default=UNKNOWN)
        )
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("controllers")
