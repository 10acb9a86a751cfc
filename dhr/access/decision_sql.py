"""A compiled policy's decision as one SQL element whose cache key is a serial number.

SQLAlchemy caches the SQL it renders for a statement under the statement's *cache key*, which
it works out anew for every execution by walking the whole expression
(https://docs.sqlalchemy.org/en/20/core/connections.html#sql-compilation-caching). A consent
decision is a large expression (every provision of every Consent in force, per patient group)
built once per compiled policy and resource type and put into every search of a request
(:meth:`dhr.access.policy.RequestPolicy.visible`): walking it cost a consent-on statement
348 µs at the median and 977 µs at p90 on every request, for a key that cannot change (125 and
262 µs with this element; ADR 0010 item 8).

:class:`Decision` stands for such an expression in a statement. Its key is a number drawn once
for the expression (never reused in a process, unlike ``id()``), so statements that hold the
same decision share their rendered SQL, and statements with another decision do not. The
expression must not change after it is wrapped: its literal values are rendered, or bound from
its own bind parameters (which read the request's patient sets when the statement runs,
:func:`dhr.access.policy_sql.id_set`), never taken from the cache key.
"""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnClause, ColumnElement
from sqlalchemy.sql.selectable import FromClause
from sqlalchemy.sql.visitors import replacement_traverse

_SERIALS = itertools.count(1)


class Decision(ColumnElement[bool]):
    """``condition`` (a boolean expression that will not change) under a short cache key."""

    __visit_name__ = "dhr_decision"
    inherit_cache = True
    type = Boolean()
    # A condition already (SQLite would otherwise get ``(<condition>) = 1``, which hides its
    # terms from the query planner).
    _is_implicitly_boolean = True

    def __init__(self, condition: ColumnElement[bool], row: FromClause | None = None) -> None:
        self.condition = condition
        self.row = row
        self.serial = next(_SERIALS)

    def on(self, res: FromClause) -> ColumnElement[bool]:
        """The decision about the row ``res`` instead of ``row`` (another alias of its table)."""
        assert self.row is not None
        return _OnRow(self, res)

    def _gen_cache_key(self, anon_map: Any, bindparams: list[Any]) -> tuple[Any, ...]:
        return (Decision, self.serial)

    @property
    def _from_objects(self) -> list[FromClause]:
        return list(self.condition._from_objects)


class _OnRow(ColumnElement[bool]):
    """``decision`` with its row's columns read from ``res``: the search's own row, so the
    database judges each candidate where it stands rather than joining it to itself. Rendered
    once per statement shape (SQLAlchemy's cache); the key is the decision's and ``res``'s."""

    __visit_name__ = "dhr_decision_on_row"
    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True

    def __init__(self, decision: Decision, res: FromClause) -> None:
        self.decision = decision
        self.res = res

    def _gen_cache_key(self, anon_map: Any, bindparams: list[Any]) -> tuple[Any, ...]:
        return (_OnRow, self.decision.serial, self.res._gen_cache_key(anon_map, bindparams))

    @property
    def _from_objects(self) -> list[FromClause]:
        return [self.res]

    def moved(self) -> ColumnElement[bool]:
        """The decision's condition with ``row``'s columns replaced by ``res``'s."""
        row, res = self.decision.row, self.res

        def replace(element: Any, **kw: Any) -> Any:
            if isinstance(element, ColumnClause) and element.table is row:
                return res.c[element.key]
            return None

        opts: dict[str, Any] = {}
        return replacement_traverse(self.decision.condition, opts, replace)


@compiles(Decision)
def _render(element: Decision, compiler: SQLCompiler, **kw: Any) -> str:
    # Always in parentheses: the statement sees one element and adds none, so an OR inside
    # would otherwise bind looser than the AND the decision sits in.
    return f"({compiler.process(element.condition, **kw)})"


@compiles(_OnRow)
def _render_on_row(element: _OnRow, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.moved(), **kw)})"
