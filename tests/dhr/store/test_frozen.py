"""A frozen statement answers exactly what SQLAlchemy would, run after run.

:mod:`dhr.store.frozen` renders a statement once (lists expanded, PostgreSQL's own ``$n``
placeholders) and runs it as driver SQL, prepared on PostgreSQL. These tests pin what that
shortcut must keep: the same rows as ``conn.execute``, the run's own values in the slots, the
clock read again at every run, values with SQL metacharacters passed as data, and statements
that stay right after PostgreSQL has planned them once (https://www.postgresql.org/docs/15/sql-prepare.html).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    bindparam,
    insert,
    select,
)

from dhr.store.db import unit_of_work
from dhr.store.frozen import freeze

_names = itertools.count()


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    meta = MetaData()
    made = Table(
        f"frozen_probe_{next(_names)}",
        meta,
        Column("name", String(64), primary_key=True),
        Column("kind", String(16)),
        Column("expires", BigInteger),
    )
    with unit_of_work(engine, write=True) as conn:  # BEGIN IMMEDIATE: waits for the lock
        meta.create_all(conn)
        conn.execute(
            insert(made),
            [
                {"name": "amber", "kind": "a", "expires": 10},
                {"name": "birch", "kind": "b", "expires": 20},
                {"name": "cedar", "kind": "a", "expires": 3_000_000_000_000_000},
                {"name": "o'hara; DROP TABLE x --", "kind": "c", "expires": 40},
            ],
        )
    yield made
    with unit_of_work(engine, write=True) as conn:
        meta.drop_all(conn)


def _names_of(rows: object) -> set[str]:
    return {str(r[0]) for r in rows}  # type: ignore[attr-defined]


def test_frozen_rows_are_the_rows_sqlalchemy_returns(engine: Engine, table: Table) -> None:
    stmt = select(table.c.name).where(
        table.c.kind.in_(["a", "c"]), table.c.name != bindparam("skip", "")
    )
    frozen = freeze(stmt, engine.dialect, ("skip",))
    with unit_of_work(engine, write=False) as conn:
        for skip in ["amber", "cedar", "nobody", "o'hara; DROP TABLE x --"]:
            expected = _names_of(conn.execute(stmt, {"skip": skip}))
            assert _names_of(frozen.rows(conn, prepare=True, skip=skip)) == expected
    assert "IN" in frozen.sql
    assert "POSTCOMPILE" not in frozen.sql


def test_each_run_takes_its_own_slot_values(engine: Engine, table: Table) -> None:
    frozen = freeze(
        select(table.c.name).where(table.c.name == bindparam("wanted", "")),
        engine.dialect,
        ("wanted",),
    )
    with unit_of_work(engine, write=False) as conn:
        # More runs than PostgreSQL's five custom plans: the generic plan must answer the same.
        for _ in range(3):
            for name in ["amber", "birch", "o'hara; DROP TABLE x --", "missing"]:
                got = _names_of(frozen.rows(conn, prepare=True, wanted=name))
                assert got == ({name} if name != "missing" else set())


def test_the_clock_is_read_at_every_run(engine: Engine, table: Table) -> None:
    now = [0]
    stmt = select(table.c.name).where(
        table.c.expires > bindparam("now", callable_=lambda: now[0], type_=BigInteger())
    )
    frozen = freeze(stmt, engine.dialect)
    with unit_of_work(engine, write=False) as conn:
        assert len(frozen.rows(conn, prepare=True)) == 4
        now[0] = 15
        assert _names_of(frozen.rows(conn, prepare=True)) == {
            "birch",
            "cedar",
            "o'hara; DROP TABLE x --",
        }
        now[0] = 2_000_000_000_000_000  # microseconds since 1970: beyond 32-bit integers
        assert _names_of(frozen.rows(conn, prepare=True)) == {"cedar"}
