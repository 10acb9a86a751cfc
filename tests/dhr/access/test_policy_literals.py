"""The consent condition writes its constants into the SQL; any text must stay data.

:mod:`dhr.access.policy_sql` renders a compiled policy's constants (codes from Consents,
patient ids, organisation codes) as SQL literals, not parameters, and sends a request's patient
sets as one encoded parameter each. Values with quotes, percent signs, backslashes, braces,
commas or SQL of their own must match exactly themselves on both engines.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select

from dhr.access.policy_sql import RequestSets, id_set, is_in, not_in, use_sets
from dhr.store.db import unit_of_work

AWKWARD = ["o'hara", "100%", "a_b", "back\\slash", "x'); DROP TABLE t; --", "plain", "%"]
IN_SETS = [*AWKWARD, 'say "hi"', "{a,b}", "NULL", " spaced "]
_names = itertools.count()


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    meta = MetaData()
    made = Table(f"literal_probe_{next(_names)}", meta, Column("v", String(64), primary_key=True))
    # In write transactions (SQLite: BEGIN IMMEDIATE, which waits for the lock): a deferred
    # DDL transaction that loses the race to a live server's audit chainer fails at once with
    # "database is locked" instead of waiting.
    with unit_of_work(engine, write=True) as conn:
        meta.create_all(conn)
        conn.execute(insert(made), [{"v": v} for v in [*AWKWARD, "other"]])
    yield made
    with unit_of_work(engine, write=True) as conn:
        meta.drop_all(conn)


@pytest.mark.parametrize("value", AWKWARD)
def test_a_literal_matches_exactly_itself(engine: Engine, table: Table, value: str) -> None:
    with unit_of_work(engine, write=False) as conn:
        found = conn.execute(select(table.c.v).where(is_in(table.c.v, [value]))).scalars()
        assert list(found) == [value]
        rest = conn.execute(select(table.c.v).where(not_in(table.c.v, [value]))).scalars()
        assert sorted(rest) == sorted(v for v in [*AWKWARD, "other"] if v != value)


def test_no_values_match_nothing_and_a_nul_matches_nothing(engine: Engine, table: Table) -> None:
    with unit_of_work(engine, write=False) as conn:
        assert conn.execute(select(table.c.v).where(is_in(table.c.v, []))).all() == []
        assert conn.execute(select(table.c.v).where(is_in(table.c.v, ["a\x00b"]))).all() == []
        everything = conn.execute(select(table.c.v).where(not_in(table.c.v, []))).all()
        assert len(everything) == len(AWKWARD) + 1


def test_a_request_set_is_exactly_its_members(engine: Engine) -> None:
    members = frozenset(IN_SETS)
    use_sets(RequestSets(members, frozenset()))
    related = id_set(engine.dialect.name, "probe_related", lambda sets: sets.related)
    glass = id_set(engine.dialect.name, "probe_glass", lambda sets: sets.glass_broken)
    with unit_of_work(engine, write=False) as conn:
        assert set(conn.execute(related).scalars()) == members
        assert conn.execute(glass).all() == []
