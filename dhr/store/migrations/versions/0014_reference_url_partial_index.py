"""the reference index by absolute URL holds only the rows that have one

A reference row has ``target_type``/``target_id`` for a relative reference, ``url`` for an
absolute one (https://hl7.org/fhir/R4/search.html#reference). The (type, param, url) index held
every row, NULL urls included, though only a search by absolute URL (``url = ...``, which implies
``url IS NOT NULL``) reads it; with ingested data nearly every row is relative, so each insert
paid for an index entry no query could use. Both engines use a partial index for ``url = ...``.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NAME = "ix_ix_reference_res_type_param_url"
HAS_URL = "url IS NOT NULL"


def upgrade() -> None:
    op.drop_index(NAME, table_name="ix_reference")
    op.create_index(
        NAME,
        "ix_reference",
        ["res_type", "param", "url"],
        postgresql_where=sa.text(HAS_URL),
        sqlite_where=sa.text(HAS_URL),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="ix_reference")
    op.create_index(NAME, "ix_reference", ["res_type", "param", "url"])
