"""the reference probe index covers ``url``: a compartment check reads no table row

The consent decision checks, for every candidate row of a search, the row's references to
Patients that are local to this server (``url`` NULL, or on the server's base): see
``dhr/access/policy_sql.py``. With ``url`` outside the ``(resource_key, param, target_type,
target_id)`` index, each check read the reference's table row as well (PostgreSQL at 191k
resources: 7 µs of a 10 µs check). The index gains ``url`` as its last column and replaces the
old one, so writes maintain as many indexes as before.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "ix_reference"
OLD = ["resource_key", "param", "target_type", "target_id"]
NEW = [*OLD, "url"]


def _name(columns: list[str]) -> str:
    return f"ix_{TABLE}_{'_'.join(columns)}"


def upgrade() -> None:
    op.create_index(_name(NEW), TABLE, NEW)
    op.drop_index(_name(OLD), table_name=TABLE)


def downgrade() -> None:
    op.create_index(_name(OLD), TABLE, OLD)
    op.drop_index(_name(NEW), table_name=TABLE)
