"""Migrations 0014, 0015 and 0017 on a database holding rows: the reference index by absolute
URL becomes partial (only rows with a url), the index tables stop checking each row against the
resource table, and they lose their surrogate key; the rows, every index and the partial
index's condition survive, and the downgrades bring the old schema back.

Run on a database of its own (a SQLite file, or a throwaway PostgreSQL database when
``DHR_TEST_DATABASE_URL`` names a server).
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, Engine, inspect, text

from dhr.store import db

TABLES = ("ix_token", "ix_string", "ix_date", "ix_number", "ix_quantity", "ix_reference", "ix_uri")
URL_INDEX = "ix_ix_reference_res_type_param_url"


def foreign_keys(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {t: [fk["referred_table"] for fk in found.get_foreign_keys(t)] for t in TABLES}


def primary_keys(engine: Engine) -> dict[str, list[str]]:
    found = inspect(engine)
    return {t: list(found.get_pk_constraint(t)["constrained_columns"] or []) for t in TABLES}


def indexes(engine: Engine) -> dict[str, set[str]]:
    found = inspect(engine)
    return {t: {str(i["name"]) for i in found.get_indexes(t)} for t in TABLES}


def url_index_condition(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        sql = "SELECT sql FROM sqlite_master WHERE name = :n"
    else:
        sql = "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
    return str(conn.execute(text(sql), {"n": URL_INDEX}).scalar_one())


def stored(conn: Connection) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "SELECT resource_key, param, target_type, target_id, url FROM ix_reference "
                "ORDER BY param"
            )
        )
    ]


def test_index_tables_lose_their_foreign_keys_and_keep_rows_and_indexes(
    private_engine: Engine,
) -> None:
    config = db.alembic_config(private_engine)
    command.upgrade(config, "0013")
    before = indexes(private_engine)
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource (key, res_type, res_id, version_id, deleted, last_updated) "
                "VALUES (1, 'Observation', 'o', 1, false, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO ix_reference (resource_key, res_type, param, grp, comp, "
                "target_type, target_id, url) VALUES "
                "(1, 'Observation', 'subject', 0, 0, 'Patient', 'p', NULL), "
                "(1, 'Observation', 'performer', 0, 0, NULL, NULL, 'https://x.example/P/1')"
            )
        )
        rows = stored(conn)
    assert all(refs == ["resource"] for refs in foreign_keys(private_engine).values())
    assert all(pk == ["key"] for pk in primary_keys(private_engine).values())

    command.upgrade(config, "head")
    assert all(refs == [] for refs in foreign_keys(private_engine).values())
    assert all(pk == [] for pk in primary_keys(private_engine).values())
    if private_engine.dialect.name == "postgresql":  # deletes can still be replicated
        with private_engine.connect() as conn:
            identity = "SELECT relreplident FROM pg_class WHERE relname = :t"
            assert {conn.execute(text(identity), {"t": t}).scalar_one() for t in TABLES} == {"f"}
    assert indexes(private_engine) == before
    with private_engine.begin() as conn:
        assert stored(conn) == rows
        assert "url IS NOT NULL" in url_index_condition(conn)
        # Nothing checks the key any more: the store alone writes these rows.
        conn.execute(
            text(
                "INSERT INTO ix_token (resource_key, res_type, param, grp, comp, code) "
                "VALUES (99, 'Observation', 'code', 0, 0, 'x')"
            )
        )
        conn.execute(text("DELETE FROM ix_token WHERE resource_key = 99"))

    command.downgrade(config, "0013")
    assert all(refs == ["resource"] for refs in foreign_keys(private_engine).values())
    assert all(pk == ["key"] for pk in primary_keys(private_engine).values())
    assert indexes(private_engine) == before
    with private_engine.begin() as conn:
        assert stored(conn) == rows
        assert "url IS NOT NULL" not in url_index_condition(conn)
        # The key numbers new rows again, after those kept.
        conn.execute(
            text(
                "INSERT INTO ix_reference (resource_key, res_type, param, grp, comp, target_id) "
                "VALUES (1, 'Observation', 'encounter', 0, 0, 'e')"
            )
        )
        keys = [r[0] for r in conn.execute(text("SELECT key FROM ix_reference ORDER BY key"))]
        assert len(set(keys)) == 3
        assert None not in keys
