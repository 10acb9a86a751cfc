"""Two SQL constructs that render differently on SQLite and PostgreSQL, so plans stay index-bound.

* :func:`unindexed` is a column the SQLite planner must not drive a scan from: ``+col`` (the
  unary plus, https://www.sqlite.org/optoverview.html#manual_control_of_query_plans_using_unary_
  or https://www.sqlite.org/queryplanner-ng.html), so a search is driven by its selective
  criterion instead of by ``resource.res_type``. Other engines get
  the plain column (PostgreSQL plans from statistics).
* :func:`prefix` is "``col`` starts with ``text``" as a range ``text <= col < successor(text)`` in
  code point order (https://hl7.org/fhir/R4/search.html#string is a starts-with match), which a
  B-tree index answers directly. SQLite's default ``BINARY`` collation compares UTF-8 bytes, i.e.
  code points; on PostgreSQL the byte-wise ``text_pattern_ops`` operators ``~>=~``/``~<~`` are
  used (whatever the database collation), matching the ``text_pattern_ops`` indexes of
  migration 0002.
* :func:`any_of` is ``col IN (subquery)`` that is evaluated first, once, and then drives an index
  lookup. SQLite always does that with an uncorrelated ``IN`` (a "LIST SUBQUERY"). PostgreSQL
  would plan it as a join whose order depends on statistics, which are stale right after a bulk
  load (https://www.postgresql.org/docs/current/routine-vacuuming.html#VACUUM-FOR-STATISTICS);
  ``col = ANY(ARRAY(subquery))`` is an InitPlan whose result is an index condition
  (https://www.postgresql.org/docs/current/functions-subquery.html), so the plan stays
  index-bound whatever the statistics say.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, Select, String, and_, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import CompoundSelect

_MAX = 0x10FFFF


class _Unindexed(FunctionElement[str]):
    inherit_cache = True
    name = "unindexed"
    type = String()


class _Prefix(FunctionElement[bool]):
    inherit_cache = True
    name = "prefix"
    type = Boolean()
    _is_implicitly_boolean = True  # a comparison already: no ``= 1`` where booleans are ints


class _AnyOf(FunctionElement[bool]):
    inherit_cache = True
    name = "any_of"
    type = Boolean()
    _is_implicitly_boolean = True


def any_of(
    col: ColumnElement[Any], values: Select[Any] | CompoundSelect[Any]
) -> ColumnElement[bool]:
    """``col IN (values)``, ``values`` evaluated once up front (PostgreSQL ``ANY(ARRAY(...))``)."""
    return _AnyOf(col, values.scalar_subquery())


def unindexed(col: ColumnElement[str]) -> ColumnElement[str]:
    """``col`` that the database will not use an index for: SQLite ``+col``, PostgreSQL
    ``(col || '')``. A search driven by another criterion's keys then reads them through the
    primary key in key order and stops when its page is full, instead of through
    ``(res_type, key)`` with a sort of every candidate (ADR 0005)."""
    return _Unindexed(col)


def successor(text: str) -> str | None:
    """The least string greater than every string starting with ``text`` (None: no bound)."""
    while text and ord(text[-1]) == _MAX:
        text = text[:-1]
    return text[:-1] + chr(ord(text[-1]) + 1) if text else None


def prefix(col: ColumnElement[str], text: str) -> ColumnElement[bool]:
    """``col`` starts with ``text``, as an index range."""
    upper = successor(text)
    if upper is None:  # empty, or only U+10FFFF: nothing bounds it above
        return col.startswith(text, autoescape=True)
    low = bindparam(None, text, type_=String())
    high = bindparam(None, upper, type_=String())
    return _Prefix(col, low, high)


@compiles(_Unindexed)
def _unindexed_default(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Unindexed, "sqlite")
def _unindexed_sqlite(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


@compiles(_Unindexed, "postgresql")
def _unindexed_postgresql(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "(" + compiler.process(element.clauses, **kw) + " || '')"


@compiles(_Prefix)
def _prefix_default(element: _Prefix, compiler: SQLCompiler, **kw: Any) -> str:
    col, low, high = element.clauses.clauses
    return "(" + compiler.process(and_(col >= low, col < high), **kw) + ")"


@compiles(_Prefix, "postgresql")
def _prefix_postgresql(element: _Prefix, compiler: SQLCompiler, **kw: Any) -> str:
    col, low, high = element.clauses.clauses
    cond = and_(col.op("~>=~", is_comparison=True)(low), col.op("~<~", is_comparison=True)(high))
    return "(" + compiler.process(cond, **kw) + ")"


@compiles(_AnyOf)
def _any_of_default(element: _AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    col, values = element.clauses.clauses
    return f"{compiler.process(col, **kw)} IN {compiler.process(values, **kw)}"


@compiles(_AnyOf, "postgresql")
def _any_of_postgresql(element: _AnyOf, compiler: SQLCompiler, **kw: Any) -> str:
    col, values = element.clauses.clauses
    return f"{compiler.process(col, **kw)} = ANY(ARRAY{compiler.process(values, **kw)})"
