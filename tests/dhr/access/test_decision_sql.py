"""A compiled decision shares its rendered SQL only with statements that hold the same decision.

:class:`dhr.access.decision_sql.Decision` gives SQLAlchemy's SQL cache a short key for a large
condition. Getting that key wrong would run one requester's decision in place of another's, so
these statements run on the real engine, one after another, sharing its cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, bindparam, insert, or_, select
from sqlalchemy.sql.elements import Grouping

from dhr.access.decision_sql import Decision
from dhr.store.db import unit_of_work

_names = itertools.count()


@pytest.fixture
def table(engine: Engine) -> Iterator[Table]:
    meta = MetaData()
    made = Table(f"decision_probe_{next(_names)}", meta, Column("v", Integer, primary_key=True))
    with unit_of_work(engine, write=True) as conn:  # a write transaction (see test_policy_literals)
        meta.create_all(conn)
        conn.execute(insert(made), [{"v": v} for v in range(1, 6)])
    yield made
    with unit_of_work(engine, write=True) as conn:
        meta.drop_all(conn)


def visible(engine: Engine, table: Table, decision: Decision) -> list[int]:
    with unit_of_work(engine, write=False) as conn:
        stmt = select(table.c.v).where(decision).order_by(table.c.v)
        return [int(v) for v in conn.scalars(stmt)]


def test_two_decisions_of_the_same_shape_each_run_their_own_values(
    engine: Engine, table: Table
) -> None:
    # Same SQL text but for the bound value: the cache must not hand one the other's values.
    small, large = Decision(table.c.v <= 2), Decision(table.c.v >= 4)
    equal_shape = Decision(table.c.v <= 3)
    for _ in range(2):  # the second round runs from the cache
        assert visible(engine, table, small) == [1, 2]
        assert visible(engine, table, large) == [4, 5]
        assert visible(engine, table, equal_shape) == [1, 2, 3]


def test_statements_holding_one_decision_share_a_cache_key_and_others_do_not(
    table: Table,
) -> None:
    decision, other = Decision(table.c.v <= 2), Decision(table.c.v <= 2)
    first = select(table.c.v).where(decision)._generate_cache_key()
    again = select(table.c.v).where(decision)._generate_cache_key()
    elsewhere = select(table.c.v).where(other)._generate_cache_key()
    assert first is not None
    assert again is not None
    assert elsewhere is not None
    assert first.key == again.key
    assert first.key != elsewhere.key


def test_a_decision_renders_as_its_condition_in_parentheses(engine: Engine, table: Table) -> None:
    condition = (table.c.v > 1) & (table.c.v < 4)
    plain = str(select(table.c.v).where(Grouping(condition)).compile(engine))
    wrapped = str(select(table.c.v).where(Decision(condition)).compile(engine))
    assert wrapped == plain


def test_a_decision_that_is_an_or_keeps_its_meaning_inside_an_and(
    engine: Engine, table: Table
) -> None:
    # v = 1 OR v = 5, and then v > 2: only 5. Unparenthesised, "v > 2 AND v = 1 OR v = 5" would
    # still give 5, so the OR comes first: "v = 1 OR v = 5 AND v > 2" gave 1 as well.
    decision = Decision(or_(table.c.v == 1, table.c.v == 5))
    with unit_of_work(engine, write=False) as conn:
        stmt = select(table.c.v).where(decision, table.c.v > 2).order_by(table.c.v)
        assert [int(v) for v in conn.scalars(stmt)] == [5]


def test_values_bound_when_the_statement_runs_are_read_each_time(
    engine: Engine, table: Table
) -> None:
    # The request's patient sets are such parameters (policy_sql.id_set): one decision, cached
    # once, must see each request's own values.
    limit = [2]
    decision = Decision(table.c.v <= bindparam("limit", callable_=lambda: limit[0]))
    assert visible(engine, table, decision) == [1, 2]
    limit[0] = 4
    assert visible(engine, table, decision) == [1, 2, 3, 4]


def test_a_decision_judges_the_row_it_is_put_on_without_joining_it_again(
    engine: Engine, table: Table
) -> None:
    # Built once on one alias (the policy's row), asked about the search's own row: the
    # statement reads the table once, and each alias gets its own answer.
    row = table.alias("policy_row")
    decision = Decision(or_(row.c.v == 1, row.c.v >= 4), row)
    here, there = table.alias(), table.alias()
    stmt = select(here.c.v).where(decision.on(here)).order_by(here.c.v)
    assert " policy_row" not in str(stmt.compile(engine))
    nested = (
        select(here.c.v)
        .where(
            decision.on(here),
            select(there.c.v).where(there.c.v == here.c.v + 1, decision.on(there)).exists(),
        )
        .order_by(here.c.v)
    )
    with unit_of_work(engine, write=False) as conn:
        for _ in range(2):  # the second round runs from the cache
            assert [int(v) for v in conn.scalars(stmt)] == [1, 4, 5]
            assert [int(v) for v in conn.scalars(nested)] == [4]
