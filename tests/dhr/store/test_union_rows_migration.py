"""Migration 0013 drops the stored rows of Observation's combo- parameters (their parts answer
them now: :mod:`dhr.search.unions`) and its downgrade writes them back from the parts.

Run on a database of its own (a SQLite file, or a throwaway PostgreSQL database when
``DHR_TEST_DATABASE_URL`` names a server).
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import Connection, Engine, text

from dhr.store import db

LOINC = "http://loinc.org"
# The token rows 0012's write path stored for a blood pressure Observation: its own code and
# the systolic component, each also under the combo parameters (grp: the element, comp: the
# component's position), with a whole-resource composite (grp 1) and the component's (grp 2).
TOKENS = [
    ("code", 0, 0, "85354-9"),
    ("component-code", 0, 0, "8480-6"),
    ("combo-code", 0, 0, "85354-9"),
    ("combo-code", 0, 0, "8480-6"),
    ("code-value-quantity", 1, 1, "85354-9"),
    ("component-code-value-quantity", 1, 1, "8480-6"),
    ("combo-code-value-quantity", 1, 1, "85354-9"),
    ("combo-code-value-quantity", 2, 1, "8480-6"),
]
QUANTITIES = [
    ("value-quantity", 0, 0, 7),
    ("component-value-quantity", 0, 0, 120),
    ("combo-value-quantity", 0, 0, 7),
    ("combo-value-quantity", 0, 0, 120),
    ("code-value-quantity", 1, 2, 7),
    ("component-code-value-quantity", 1, 2, 120),
    ("combo-code-value-quantity", 1, 2, 7),
    ("combo-code-value-quantity", 2, 2, 120),
]


def rows(conn: Connection) -> tuple[set[tuple[object, ...]], set[tuple[object, ...]]]:
    tokens = conn.execute(text("SELECT param, grp, comp, code FROM ix_token"))
    quantities = conn.execute(text("SELECT param, grp, comp, value FROM ix_quantity"))
    return {tuple(r) for r in tokens}, {(p, g, c, int(v)) for p, g, c, v in quantities}


def test_combo_rows_go_on_upgrade_and_come_back_apart_on_downgrade(
    private_engine: Engine,
) -> None:
    config = db.alembic_config(private_engine)
    command.upgrade(config, "0012")
    with private_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource (key, res_type, res_id, version_id, deleted, last_updated) "
                "VALUES (1, 'Observation', 'bp', 1, false, 0)"
            )
        )
        for param, grp, comp, code in TOKENS:
            conn.execute(
                text(
                    "INSERT INTO ix_token (resource_key, res_type, param, grp, comp, system, code)"
                    " VALUES (1, 'Observation', :p, :g, :c, :s, :code)"
                ),
                {"p": param, "g": grp, "c": comp, "s": LOINC, "code": code},
            )
        for param, grp, comp, value in QUANTITIES:
            conn.execute(
                text(
                    "INSERT INTO ix_quantity (resource_key, res_type, param, grp, comp, value, "
                    "low, high) VALUES (1, 'Observation', :p, :g, :c, :v, :v, :v)"
                ),
                {"p": param, "g": grp, "c": comp, "v": value},
            )
    command.upgrade(config, "head")
    with private_engine.connect() as conn:
        tokens, quantities = rows(conn)
    assert tokens == {r for r in TOKENS if not r[0].startswith("combo-")}
    assert quantities == {r for r in QUANTITIES if not r[0].startswith("combo-")}

    command.downgrade(config, "0012")
    with private_engine.connect() as conn:
        tokens, quantities = rows(conn)
    # The component's composite element is numbered apart from the Observation's own.
    assert tokens == {
        *(r for r in TOKENS if r[0] != "combo-code-value-quantity"),
        ("combo-code-value-quantity", 1, 1, "85354-9"),
        ("combo-code-value-quantity", 10001, 1, "8480-6"),
    }
    assert quantities == {
        *(r for r in QUANTITIES if r[0] != "combo-code-value-quantity"),
        ("combo-code-value-quantity", 1, 2, 7),
        ("combo-code-value-quantity", 10001, 2, 120),
    }
