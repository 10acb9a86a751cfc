"""unified record: source systems, source identities, master patients, links, controllers

See ``dhr/store/record_models.py`` and ``dhr/record`` (ARCHITECTURE.md "The unified record").

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_arrangement",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recorded", sa.BigInteger(), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_controller_arrangement")),
    )
    op.create_table(
        "master_patient",
        sa.Column("nhs_number", sa.String(length=10), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nhs_number", name=op.f("pk_master_patient")),
        sa.UniqueConstraint("res_id", name=op.f("uq_master_patient_res_id")),
    )
    op.create_table(
        "patient_link",
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("nhs_number", sa.String(length=10), nullable=True),
        sa.Column("master_id", sa.String(length=64), nullable=True),
        sa.Column("registered_at", sa.BigInteger(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name=op.f("pk_patient_link")),
    )
    op.create_index(op.f("ix_patient_link_master_id"), "patient_link", ["master_id"], unique=False)
    op.create_table(
        "patient_link_event",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("master_id", sa.String(length=64), nullable=True),
        sa.Column("previous_master_id", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_patient_link_event")),
    )
    op.create_index(
        op.f("ix_patient_link_event_record_id_key"),
        "patient_link_event",
        ["record_id", "key"],
        unique=False,
    )
    op.create_table(
        "source_identity",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("local_key", sa.String(length=512), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_source_identity")),
        sa.UniqueConstraint(
            "source_id",
            "res_type",
            "local_key",
            name=op.f("uq_source_identity_source_id_res_type_local_key"),
        ),
    )
    op.create_index(
        op.f("ix_source_identity_record_id"), "source_identity", ["record_id"], unique=False
    )
    op.create_index(
        op.f("ix_source_identity_res_type_res_id"),
        "source_identity",
        ["res_type", "res_id"],
        unique=False,
    )
    op.create_table(
        "source_system",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("supplier", sa.String(length=32), nullable=False),
        sa.Column("ods_code", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("identifier_systems", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_system")),
        sa.UniqueConstraint("client_id", name=op.f("uq_source_system_client_id")),
    )


def downgrade() -> None:
    for table in (
        "source_system",
        "source_identity",
        "patient_link_event",
        "patient_link",
        "master_patient",
        "controller_arrangement",
    ):
        op.drop_table(table)
