"""initial schema: resources, versions, search index tables

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_resource")),
        sa.UniqueConstraint("res_type", "res_id", name=op.f("uq_resource_res_type_res_id")),
    )
    op.create_table(
        "ix_date",
        sa.Column("low", sa.BigInteger(), nullable=False),
        sa.Column("high", sa.BigInteger(), nullable=False),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_date_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_date")),
    )
    with op.batch_alter_table("ix_date", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_date_res_type_param_high"),
            ["res_type", "param", "high"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_date_res_type_param_low"), ["res_type", "param", "low"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ix_date_resource_key"), ["resource_key"], unique=False)

    op.create_table(
        "ix_number",
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_number_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_number")),
    )
    with op.batch_alter_table("ix_number", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_number_res_type_param_value"),
            ["res_type", "param", "value"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_number_resource_key"), ["resource_key"], unique=False
        )

    op.create_table(
        "ix_quantity",
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("unit", sa.String(length=255), nullable=True),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_quantity_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_quantity")),
    )
    with op.batch_alter_table("ix_quantity", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_quantity_res_type_param_code_value"),
            ["res_type", "param", "code", "value"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_quantity_resource_key"), ["resource_key"], unique=False
        )

    op.create_table(
        "ix_reference",
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("target_version", sa.String(length=64), nullable=True),
        sa.Column("url", sa.String(length=512), nullable=True),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_reference_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_reference")),
    )
    with op.batch_alter_table("ix_reference", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_reference_res_type_param_target_id_target_type"),
            ["res_type", "param", "target_id", "target_type"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_reference_res_type_param_url"),
            ["res_type", "param", "url"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_reference_resource_key"), ["resource_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ix_reference_target_id_target_type"),
            ["target_id", "target_type"],
            unique=False,
        )

    op.create_table(
        "ix_string",
        sa.Column("norm", sa.String(length=255), nullable=False),
        sa.Column("exact", sa.String(length=255), nullable=False),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_string_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_string")),
    )
    with op.batch_alter_table("ix_string", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_string_res_type_param_norm"),
            ["res_type", "param", "norm"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_string_resource_key"), ["resource_key"], unique=False
        )

    op.create_table(
        "ix_token",
        sa.Column("system", sa.String(length=255), nullable=True),
        sa.Column("code", sa.String(length=255), nullable=True),
        sa.Column("text", sa.String(length=255), nullable=True),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_token_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_token")),
    )
    with op.batch_alter_table("ix_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_token_res_type_param_code_system"),
            ["res_type", "param", "code", "system"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ix_token_resource_key"), ["resource_key"], unique=False
        )

    op.create_table(
        "ix_uri",
        sa.Column("uri", sa.String(length=512), nullable=False),
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=100), nullable=False),
        sa.Column("grp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("comp", sa.SmallInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["resource_key"], ["resource.key"], name=op.f("fk_ix_uri_resource_key_resource")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ix_uri")),
    )
    with op.batch_alter_table("ix_uri", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ix_uri_res_type_param_uri"), ["res_type", "param", "uri"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ix_uri_resource_key"), ["resource_key"], unique=False)

    op.create_table(
        "resource_version",
        sa.Column(
            "key",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "resource_key", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("res_type", sa.String(length=64), nullable=False),
        sa.Column("res_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["resource_key"],
            ["resource.key"],
            name=op.f("fk_resource_version_resource_key_resource"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_resource_version")),
        sa.UniqueConstraint(
            "resource_key", "version_id", name=op.f("uq_resource_version_resource_key_version_id")
        ),
    )
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resource_version_last_updated"), ["last_updated"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_resource_version_res_type_key"), ["res_type", "key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("resource_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resource_version_res_type_key"))
        batch_op.drop_index(batch_op.f("ix_resource_version_last_updated"))

    op.drop_table("resource_version")
    with op.batch_alter_table("ix_uri", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_uri_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_uri_res_type_param_uri"))

    op.drop_table("ix_uri")
    with op.batch_alter_table("ix_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_token_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_token_res_type_param_code_system"))

    op.drop_table("ix_token")
    with op.batch_alter_table("ix_string", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_string_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_string_res_type_param_norm"))

    op.drop_table("ix_string")
    with op.batch_alter_table("ix_reference", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_reference_target_id_target_type"))
        batch_op.drop_index(batch_op.f("ix_ix_reference_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_reference_res_type_param_url"))
        batch_op.drop_index(batch_op.f("ix_ix_reference_res_type_param_target_id_target_type"))

    op.drop_table("ix_reference")
    with op.batch_alter_table("ix_quantity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_quantity_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_quantity_res_type_param_code_value"))

    op.drop_table("ix_quantity")
    with op.batch_alter_table("ix_number", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_number_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_number_res_type_param_value"))

    op.drop_table("ix_number")
    with op.batch_alter_table("ix_date", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ix_date_resource_key"))
        batch_op.drop_index(batch_op.f("ix_ix_date_res_type_param_low"))
        batch_op.drop_index(batch_op.f("ix_ix_date_res_type_param_high"))

    op.drop_table("ix_date")
    op.drop_table("resource")
