"""Table aliases kept from one search statement to the next instead of being made anew.

A search statement (https://hl7.org/fhir/R4/search.html, compiled as ADR 0005 describes) names
the ``resource`` and index tables through aliases, one per use, so that every subquery reads its
own rows. SQLAlchemy makes an alias's columns the first time they are used, each a copy of the
table's column with its foreign keys and events: 100-300 µs an alias on this machine, and a
search page with a reference criterion used three or four (more than half of building its
statement, which took 2 ms).

Inside :func:`one_statement`, :func:`alias_of` hands out the first, second, third... alias of a
table for the statement being built, each made once for the process and then shared: distinct
within the statement, as fresh aliases were, and the same objects for the next statement. So
whatever is built inside must be used only by the statement built there: nothing built inside
may be kept for a later statement (the consent decision's fragments, which are kept, use
:func:`dhr.search.sql.predicate.index_table` and never this). Outside it, :func:`alias_of`
makes a fresh alias as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from sqlalchemy.sql.expression import FromClause

_TAKEN: ContextVar[dict[FromClause, int] | None] = ContextVar("dhr_statement_aliases", default=None)
_KEPT: dict[tuple[FromClause, int], FromClause] = {}
MAX_KEPT = 64  # aliases of one table kept; a statement needing more makes the rest fresh


@contextmanager
def one_statement() -> Iterator[None]:
    """Build one statement (or several executed together) with kept aliases; nested calls
    belong to the outer statement."""
    if _TAKEN.get() is not None:
        yield
        return
    token = _TAKEN.set({})
    try:
        yield
    finally:
        _TAKEN.reset(token)


def alias_of(table: FromClause) -> FromClause:
    """An alias of ``table`` that no other call has had in this statement."""
    taken = _TAKEN.get()
    if taken is None:
        return table.alias()
    n = taken[table] = taken.get(table, 0) + 1
    if n > MAX_KEPT:
        return table.alias()
    found = _KEPT.get((table, n))
    if found is None:
        found = table.alias()
        _ = found.c  # its columns are made before another thread can see it
        _KEPT[(table, n)] = found
    return found
