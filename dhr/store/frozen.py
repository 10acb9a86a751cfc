"""SQLAlchemy statements compiled once to driver SQL and run many times as hot statements.

SQLAlchemy caches a statement's compiled form, but still does work on every execution that
grows with the statement: each ``IN (...)`` list is a "post-compile" parameter rendered anew,
and the parameters are rebuilt and processed. For a large statement that never changes apart
from a value or two (the consent decision for one resource: :mod:`dhr.access.policy`) that
work cost more than running it (0.3 ms a read on SQLite). :func:`freeze` renders such a
statement once, with its lists expanded, for the connection's dialect; :meth:`Frozen.rows`
runs it through :func:`dhr.store.driver.fetch`, where PostgreSQL may also keep it prepared
(parsed and planned once per connection: https://www.postgresql.org/docs/15/sql-prepare.html).

Parameters given a ``callable_`` (the clock) are evaluated again at every run; the slots named
to :func:`freeze` take the values given to :meth:`Frozen.rows`; every other value is fixed when
frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.sql.expression import ClauseElement

from dhr.store.driver import fetch

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class Frozen:
    """A statement rendered for one dialect: its SQL and how to build its parameters."""

    sql: str
    order: tuple[str, ...]  # the order of the positional parameters
    native: bool  # PostgreSQL's own ``$n`` placeholders (dhr.store.driver.fetch)
    fixed: dict[str, Any]
    clocks: tuple[tuple[str, Callable[[], Any]], ...]
    processors: dict[str, Processor]

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        """The driver parameters with ``values`` (and the clocks read now)."""
        params = dict(self.fixed)
        for name, value in values.items():
            params[name] = self._processed(name, value)
        for name, clock in self.clocks:
            params[name] = self._processed(name, clock())
        return tuple(params[name] for name in self.order)

    def _processed(self, name: str, value: Any) -> Any:
        processor = self.processors.get(name)
        return processor(value) if processor is not None and value is not None else value

    def rows(self, conn: Connection, prepare: bool = False, **values: Any) -> list[Sequence[Any]]:
        """Every row of the statement run on ``conn`` with ``values`` for its placeholders."""
        return fetch(conn, self.sql, self.parameters(values), prepare, self.native)


def frozen_once(
    kept: dict[str, Frozen],
    conn: Connection,
    build: Callable[[], ClauseElement],
    slots: Sequence[str] = (),
) -> Frozen:
    """The statement ``build()`` frozen for ``conn``'s dialect, built the first time only and
    kept in ``kept`` (by dialect name) for every later call."""
    name = conn.dialect.name
    found = kept.get(name)
    if found is None:
        found = kept[name] = freeze(build(), conn.dialect, slots)
    return found


def freeze(stmt: ClauseElement, dialect: Dialect, slots: Sequence[str] = ()) -> Frozen:
    """``stmt`` rendered for ``dialect``; ``slots`` name the bind parameters whose values
    :meth:`Frozen.rows` gives (declare them with an example value: rendering needs one)."""
    native = dialect.name == "postgresql"
    if native:  # positional ``$n`` (SQLite's dialect is positional already: ``?``)
        make: Any = type(dialect)
        dialect = make(paramstyle="numeric_dollar")
    compiled: Any = stmt.compile(
        dialect=dialect,
        compile_kwargs={"render_postcompile": True},
    )
    params: dict[str, Any] = dict(compiled.params)
    processors: dict[str, Processor] = {
        name: proc for name, proc in compiled._bind_processors.items() if callable(proc)
    }
    clocks = tuple(
        (name, bind.callable)
        for name, bind in compiled.binds.items()
        if bind.callable is not None and name in params
    )
    frozen = Frozen(compiled.string, tuple(compiled.positiontup), native, {}, clocks, processors)
    moving = {*slots, *(name for name, _ in clocks)}
    for name, value in params.items():
        if name not in moving:
            frozen.fixed[name] = frozen._processed(name, value)
    return frozen
