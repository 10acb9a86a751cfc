"""``INSERT ... ON CONFLICT`` on both engines.

SQLite (https://www.sqlite.org/lang_upsert.html) and PostgreSQL
(https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT) share the clause, and
SQLAlchemy's two dialect ``insert`` constructs share its API; this module picks the right one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def insert_for(conn: Connection, table: Table) -> Any:
    """The dialect's ``insert(table)``, which has ``on_conflict_do_nothing``/``_do_update``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def insert_if_absent(conn: Connection, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when the row was inserted.

    RETURNING tells the two apart (an INSERT's rowcount is not reliable across drivers).
    """
    key = next(iter(table.primary_key.columns))
    stmt = insert_for(conn, table).values(**values).on_conflict_do_nothing().returning(key)
    return len(conn.execute(stmt).fetchall()) == 1
