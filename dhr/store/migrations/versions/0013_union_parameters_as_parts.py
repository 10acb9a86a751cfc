"""Observation's combo- parameters are read through their parts' index rows

https://hl7.org/fhir/R4/observation.html#search: each ``combo-`` parameter is the union of the
Observation's own parameter and its components' one (``combo-code`` is ``code`` with
``component-code``). Their rows repeated their parts' rows value for value; the search now
reads the parts (``dhr/search/unions.py``), so the stored copies go. The downgrade writes them
back from the parts, numbering a component part's elements apart (``grp`` + 10000) so that a
composite never joins the Observation's own element with a component's.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (union code, its parts: (code, grp offset), index tables its rows are in), as of this revision.
UNIONS = {
    "combo-code": ((("code", 0), ("component-code", 0)), ("ix_token",)),
    "combo-data-absent-reason": (
        (("data-absent-reason", 0), ("component-data-absent-reason", 0)),
        ("ix_token",),
    ),
    "combo-value-concept": ((("value-concept", 0), ("component-value-concept", 0)), ("ix_token",)),
    "combo-value-quantity": (
        (("value-quantity", 0), ("component-value-quantity", 0)),
        ("ix_quantity",),
    ),
    "combo-code-value-concept": (
        (("code-value-concept", 0), ("component-code-value-concept", 10000)),
        ("ix_token",),
    ),
    "combo-code-value-quantity": (
        (("code-value-quantity", 0), ("component-code-value-quantity", 10000)),
        ("ix_token", "ix_quantity"),
    ),
}
VALUE_COLUMNS = {
    "ix_token": ("system", "code", "text"),
    "ix_quantity": ("value", "low", "high", "system", "code", "unit"),
}


def upgrade() -> None:
    for code, (_, tables) in UNIONS.items():
        for table in tables:
            op.execute(
                f"DELETE FROM {table} WHERE res_type = 'Observation' AND param = '{code}'"  # noqa: S608
            )


def downgrade() -> None:
    for code, (parts, tables) in UNIONS.items():
        for table in tables:
            values = ", ".join(VALUE_COLUMNS[table])
            for part, offset in parts:
                op.execute(
                    f"INSERT INTO {table} (resource_key, res_type, param, grp, comp, {values}) "  # noqa: S608
                    f"SELECT resource_key, res_type, '{code}', grp + {offset}, comp, {values} "
                    f"FROM {table} WHERE res_type = 'Observation' AND param = '{part}'"
                )
