"""an index on ``resource (res_type, key)``: a type's page is read in key order

A search page is ordered by ``resource.key`` (https://hl7.org/fhir/R4/search.html#sort: with no
``_sort``, DHR pages in storage order) and limited. With only ``(res_type, res_id)`` and the
primary key to choose from, the databases read a type's rows in key order by walking the
primary key through every type, testing each row: at 191k resources, a consent-enforced
``Condition?_count=50`` (176 of 4,546 Conditions visible) tested 49,926 rows to fill its page
(PostgreSQL, ``EXPLAIN ANALYZE``: 75 ms), and a page of a rare type would walk the whole table.
``(res_type, key)`` walks one type's rows in the page's order and stops when the page is full
(1.8 ms for the same page).

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLE = "resource"
COLUMNS = ["res_type", "key"]
NAME = f"ix_{TABLE}_{'_'.join(COLUMNS)}"


def upgrade() -> None:
    op.create_index(NAME, TABLE, COLUMNS)


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
