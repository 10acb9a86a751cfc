"""``_include`` and ``_revinclude``: resources that a page's matches refer to, or that refer to
them. https://hl7.org/fhir/R4/search.html#include

Resolved per page, for that page's matches only, from ``ix_reference``:

* ``_include=Source:param[:Target]`` adds the resources that ``param`` of the page's ``Source``
  resources points at (``Source:*`` or ``*``: any reference parameter);
* ``_revinclude=Source:param[:Target]`` adds the ``Source`` resources whose ``param`` points at
  a page resource (``*``: any source and parameter);
* ``:iterate`` (R3: ``:recurse``) applies the parameter again to what the previous round added,
  for at most :data:`MAX_ROUNDS` rounds; a resource already in the Bundle is never added again,
  so cycles end.

Each round costs one SQL statement per include parameter that can apply to that round's
resources (it returns the rows with their JSON), whatever the page size: no N+1. References by
absolute URL count only when the URL is on this server's base. The statements are index-bound
(:func:`dhr.search.sql.dialect.any_of`): ``_revinclude`` looks the page's (type, id) pairs up as
constants in ``ix_reference (res_type, param, target_id, target_type)``, ``_include`` the page's
keys in ``ix_reference (resource_key, ...)``. The enforcing repository passes the principal's
allowances (:mod:`dhr.store.access_store`): an included resource must be one the principal may
read, and that condition is part of each statement, so nothing another patient owns leaks
through an include and the :data:`MAX_INCLUDED` cut counts only what is shown. At most
:data:`MAX_INCLUDED` resources are added to one page; more is reported as truncated (the caller
adds a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, FromClause, Row, Select, and_, or_, select

from dhr.search.params import Include
from dhr.search.sql.aliases import alias_of
from dhr.search.sql.dialect import any_of
from dhr.search.sql.predicate import statement_index_table
from dhr.store.access_store import Allowance, visible
from dhr.store.models import ResourceRow, VersionRow

Cond = Callable[[FromClause], ColumnElement[bool]]

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
MAX_ROUNDS = 4  # the first round plus up to three ``:iterate`` rounds
MAX_INCLUDED = 1000


class Reader(Protocol):
    """What include resolution needs of the enforcing repository."""

    def search(self, stmt: Select[Any]) -> list[Row[Any]]: ...


def resolve(
    repo: Reader,
    includes: Sequence[Include],
    matches: Sequence[Sequence[Any]],
    base: str,
    allowances: Sequence[Allowance] | None,
    policy: Cond | None = None,
) -> tuple[list[Sequence[Any]], bool]:
    """The rows ``(key, res_type, res_id, data, patient key)`` to include for ``matches``, and
    whether the result was cut at :data:`MAX_INCLUDED`. Rows are in round order, then key order;
    only rows ``allowances`` let through (None: every row) and the consent decision ``policy``
    permits."""
    seen = {int(row[0]) for row in matches}
    focus = [(int(row[0]), str(row[1]), str(row[2])) for row in matches]
    active = list(includes)
    out: list[Sequence[Any]] = []
    truncated = False
    for _ in range(MAX_ROUNDS):
        if not focus or not active:
            break
        added: list[Sequence[Any]] = []
        types = {t for _, t, _ in focus}
        for inc in active:
            if not applies(inc, types):
                continue
            wanted = [f for f in focus if inc.reverse or inc.source in (None, f[1])]
            room = MAX_INCLUDED - len(out) - len(added)
            rows = repo.search(statement(inc, wanted, base, room + 1, allowances, policy))
            truncated = truncated or len(rows) > room
            for row in rows[:room]:
                if int(row[0]) not in seen:
                    seen.add(int(row[0]))
                    added.append(row)
        out.extend(added)
        if truncated:
            break
        focus = [(int(row[0]), str(row[1]), str(row[2])) for row in added]
        active = [inc for inc in active if inc.iterate]
    return out, truncated


def applies(inc: Include, types: set[str]) -> bool:
    """Whether ``inc`` can find anything for resources of ``types`` (skips useless queries)."""
    if inc.reverse:
        return inc.target is None or inc.target in types
    return inc.source is None or inc.source in types


def statement(
    inc: Include,
    focus: Sequence[tuple[int, str, str]],
    base: str,
    limit: int,
    allowances: Sequence[Allowance] | None = None,
    policy: Cond | None = None,
) -> Select[Any]:
    """One round of one include parameter over the ``(key, type, id)`` resources ``focus``,
    as full rows."""
    ref = statement_index_table("reference")
    where: list[ColumnElement[bool]] = [_local(ref, base)]
    if inc.source is not None:
        where.append(ref.c.res_type == inc.source)
    if inc.param is not None:
        where.append(ref.c.param == inc.param.code)
    if inc.target is not None:
        where.append(ref.c.target_type == inc.target)
    if inc.reverse:  # sources whose reference points at one of ``focus``, by its type and id
        by_type: dict[str, list[str]] = {}
        for _, res_type, res_id in focus:
            by_type.setdefault(res_type, []).append(res_id)
        targets = [
            and_(ref.c.target_type == t, ref.c.target_id.in_(ids)) for t, ids in by_type.items()
        ]
        wanted = select(ref.c.resource_key).where(*where, or_(*targets))
    else:  # targets that a reference of one of ``focus`` points at
        other = alias_of(RESOURCE)
        joined = ref.join(
            other, and_(other.c.res_type == ref.c.target_type, other.c.res_id == ref.c.target_id)
        )
        keys = [key for key, _, _ in focus]
        wanted = select(other.c.key).select_from(joined).where(*where, ref.c.resource_key.in_(keys))
    return rows_for(wanted, limit, allowances, policy)


def rows_for(
    keys: Select[Any],
    limit: int,
    allowances: Sequence[Allowance] | None = None,
    policy: Cond | None = None,
) -> Select[Any]:
    """``(key, res_type, res_id, data, patient key)`` of the live resources whose key ``keys``
    selects (and that ``allowances`` let through)."""
    res = alias_of(RESOURCE)
    ver = alias_of(VERSION)
    conds = [any_of(res.c.key, keys), res.c.deleted.is_(False), res.c.version_id > 0]
    if allowances is not None:
        conds.append(visible(res, allowances))
    if policy is not None:
        conds.append(policy(res))
    return (
        select(res.c.key, res.c.res_type, res.c.res_id, ver.c.data, res.c.patient_key)
        .join(ver, and_(ver.c.resource_key == res.c.key, ver.c.version_id == res.c.version_id))
        .where(*conds)
        .order_by(res.c.key)
        .limit(limit)
    )


def _local(ref: FromClause, base: str) -> ColumnElement[bool]:
    """The reference is relative, or absolute on this server's base."""
    return or_(ref.c.url.is_(None), ref.c.url.startswith(base + "/", autoescape=True))
