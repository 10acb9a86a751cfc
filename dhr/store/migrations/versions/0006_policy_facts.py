"""policy facts: the national data opt-out registry and access claims (break-glass, self-claimed
care relationships)

See ``dhr/store/policy_models.py`` (ARCHITECTURE.md "The policy layer").

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_opt_out",
        sa.Column("nhs_number", sa.String(length=10), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("nhs_number", name=op.f("pk_data_opt_out")),
    )
    op.create_table(
        "access_claim",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=True),
        sa.Column("organisation", sa.String(length=16), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("started", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_access_claim")),
    )
    op.create_index(
        op.f("ix_access_claim_subject_kind_expires"),
        "access_claim",
        ["subject", "kind", "expires"],
        unique=False,
    )
    op.create_index(
        op.f("ix_access_claim_patient_id_started"),
        "access_claim",
        ["patient_id", "started"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_access_claim_patient_id_started"), table_name="access_claim")
    op.drop_index(op.f("ix_access_claim_subject_kind_expires"), table_name="access_claim")
    op.drop_table("access_claim")
    op.drop_table("data_opt_out")
