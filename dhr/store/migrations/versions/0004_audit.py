"""audit: chained AuditEvents and signed checkpoints

See ``dhr/store/audit_models.py`` and ``dhr/audit`` (https://profiles.ihe.net/ITI/BALP/).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoint",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("chain_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoint")),
    )
    op.create_table(
        "audit_event",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("patient", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("subtype", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=True),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("event_hash", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("chain_hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_event_event_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_event_seq")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_event_agent_recorded"), ["agent", "recorded"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_event_patient_recorded"), ["patient", "recorded"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_audit_event_recorded"), ["recorded"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_recorded"))
        batch_op.drop_index(batch_op.f("ix_audit_event_patient_recorded"))
        batch_op.drop_index(batch_op.f("ix_audit_event_agent_recorded"))

    op.drop_table("audit_event")
    op.drop_table("audit_checkpoint")
