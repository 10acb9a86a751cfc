"""the patient key: each resource row names the Patient whose record it belongs to

ARCHITECTURE.md "Storage"; see ``dhr/store/patient_key.py``. The column's default ``*`` means
"several, or not worked out", which the consent decision reads in full from the references, so
a row the backfill misses is still judged correctly. The backfill works the key out for every
live resource from its stored reference index rows, as the write path does from new ones.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from dhr.search import compartment
from dhr.store.patient_key import OWNER, SEVERAL, membership_params

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _backfill() -> None:
    resource = sa.table(
        "resource",
        sa.column("key", sa.Integer),
        sa.column("res_type", sa.String),
        sa.column("res_id", sa.String),
        sa.column("deleted", sa.Boolean),
        sa.column("patient_key", sa.String),
    )
    ref = sa.table(
        "ix_reference",
        sa.column("key", sa.Integer),
        sa.column("resource_key", sa.Integer),
        sa.column("param", sa.String),
        sa.column("target_type", sa.String),
        sa.column("target_id", sa.String),
        sa.column("url", sa.String),
    )
    types = sorted({*compartment.compartment(OWNER).members, OWNER})
    for res_type in types:
        params = sorted(membership_params(res_type))
        refs = sa.and_(
            ref.c.resource_key == resource.c.key,
            ref.c.param.in_(params),
            ref.c.target_type == OWNER,
            ref.c.target_id.is_not(None),
        )
        if res_type == OWNER:
            others = sa.func.count(sa.case((ref.c.target_id != resource.c.res_id, 1)))
            key: sa.ColumnElement[str | None] = sa.case(
                (sa.and_(sa.func.count(ref.c.url) == 0, others == 0), resource.c.res_id),
                else_=sa.literal(SEVERAL),
            )
        else:
            key = sa.case(
                (sa.func.count(ref.c.key) == 0, sa.null()),
                (
                    sa.and_(
                        sa.func.count(ref.c.url) == 0,
                        sa.func.count(sa.distinct(ref.c.target_id)) == 1,
                    ),
                    sa.func.min(ref.c.target_id),
                ),
                else_=sa.literal(SEVERAL),
            )
        found = sa.select(key).where(refs).scalar_subquery()
        op.execute(
            resource.update()
            .where(resource.c.res_type == res_type, resource.c.deleted == sa.false())
            .values(patient_key=found)
        )
    op.execute(resource.update().where(resource.c.res_type.not_in(types)).values(patient_key=None))


def upgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.add_column(
            sa.Column("patient_key", sa.String(length=64), nullable=True, server_default=SEVERAL)
        )
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("resource") as batch:
        batch.drop_column("patient_key")
