"""search indexes for index-bound plans: (resource_key, param, ...) probes, byte-wise prefixes

Searches are driven by their most selective criterion and probe each candidate's own index rows
for the others (see ``dhr/search/compile.py``; https://hl7.org/fhir/R4/search.html). Each index
table gets a ``(resource_key, param, value...)`` index for those probes (and for per-resource
sort values and includes); it replaces the single-column ``resource_key`` index, which it
covers, so writes maintain as many indexes as before. On PostgreSQL the string ``norm`` and
``uri`` indexes are rebuilt with ``text_pattern_ops`` so that starts-with (a byte-wise range,
``dhr/search/sql/dialect.py``) is an index range whatever the database collation.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PROBES = {
    "ix_token": ["resource_key", "param", "code", "system"],
    "ix_string": ["resource_key", "param", "norm"],
    "ix_date": ["resource_key", "param", "low", "high"],
    "ix_number": ["resource_key", "param", "value"],
    "ix_quantity": ["resource_key", "param", "value"],
    "ix_reference": ["resource_key", "param", "target_type", "target_id"],
    "ix_uri": ["resource_key", "param", "uri"],
}
PATTERN = {"ix_string": "norm", "ix_uri": "uri"}  # PostgreSQL: (res_type, param, <col>)


def _name(table: str, columns: list[str]) -> str:
    return f"ix_{table}_{'_'.join(columns)}"


def upgrade() -> None:
    for table, columns in PROBES.items():
        op.create_index(_name(table, columns), table, columns)
        op.drop_index(_name(table, ["resource_key"]), table_name=table)
    if op.get_bind().dialect.name == "postgresql":
        for table, col in PATTERN.items():
            columns = ["res_type", "param", col]
            op.drop_index(_name(table, columns), table_name=table)
            op.create_index(
                _name(table, columns),
                table,
                columns,
                postgresql_ops={col: "text_pattern_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, col in PATTERN.items():
            columns = ["res_type", "param", col]
            op.drop_index(_name(table, columns), table_name=table)
            op.create_index(_name(table, columns), table, columns)
    for table, columns in PROBES.items():
        op.create_index(_name(table, ["resource_key"]), table, ["resource_key"])
        op.drop_index(_name(table, columns), table_name=table)
