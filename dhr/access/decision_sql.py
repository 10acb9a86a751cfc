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
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

_SERIALS = itertools.count(1)


class Decision(ColumnElement[bool]):
    """``condition`` (a boolean expression that will not change) under a short cache key."""

    __visit_name__ = "dhr_decision"
    inherit_cache = True
    type = Boolean()
    # A condition already (SQLite would otherwise get ``(<condition>) = 1``, which hides its
    # terms from the query planner).
    _is_implicitly_boolean = True

    def __init__(self, condition: ColumnElement[bool]) -> None:
        self.condition = condition
        self.serial = next(_SERIALS)

    def _gen_cache_key(self, anon_map: Any, bindparams: list[Any]) -> tuple[Any, ...]:
        return (Decision, self.serial)

    @property
    def _from_objects(self) -> list[FromClause]:
        return list(self.condition._from_objects)


@compiles(Decision)
def _render(element: Decision, compiler: SQLCompiler, **kw: Any) -> str:
    # Always in parentheses: the statement sees one element and adds none, so an OR inside
    # would otherwise bind looser than the AND the decision sits in.
    return f"({compiler.process(element.condition, **kw)})"
