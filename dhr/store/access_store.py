"""SQL of access control: what a principal may see, as conditions the search statements AND in.

Searches are never filtered after paging (ARCHITECTURE.md, "the decision compiles into the SQL"),
so pages are full and totals true. The restrictions SMART scopes put on what a principal sees
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html) become:

* :class:`PatientRecord`: the resource is in the Patient compartment
  (https://hl7.org/fhir/R4/compartmentdefinition-patient.html) of the launch patient, through a
  *local* reference (relative, or absolute on this server's base: a reference to another server's
  ``Patient/123`` does not put a resource in this server's ``Patient/123`` record);
* :class:`AnyOf`: at least one alternative holds (several granular scopes for one type,
  ``Observation.rs?category=laboratory`` and ``Observation.rs?category=vital-signs``, are OR-ed);
* :func:`visible`: the same for resources of any type at once (``_include``, ``$everything``,
  history), from :class:`Allowance` values, one per granted scope.

:func:`visible_ids` checks known resources (a read, the result of a write) against the criteria
of one type; :func:`history` is the repository's history with a visibility filter, and
:class:`EverythingSet` the set of ``Patient/$everything``
(https://hl7.org/fhir/R4/patient-operation-everything.html) with one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    FromClause,
    Select,
    and_,
    exists,
    false,
    func,
    or_,
    select,
    true,
    union,
)

from dhr.search import compartment
from dhr.search.compile import Cond, Term, matching_keys, probes
from dhr.search.params import Criterion
from dhr.search.sql.dialect import any_of
from dhr.search.sql.predicate import index_table
from dhr.store.index_writer import flush_index_rows
from dhr.store.models import ResourceRow, VersionRow
from dhr.store.repository import StoredVersion

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
OWNER = "Patient"


def _local(ref: FromClause, base: str) -> ColumnElement[bool]:
    return or_(ref.c.url.is_(None), ref.c.url.startswith(base + "/", autoescape=True))


def _codes(res_type: str) -> tuple[str, ...]:
    return compartment.compartment(OWNER).params(res_type)


@dataclass(frozen=True)
class PatientRecord:
    """Criterion: the resource is in ``Patient/{patient_id}``'s compartment (local references)."""

    patient_id: str
    base: str

    def parts(self, res_type: str) -> tuple[int | None, Cond, Cond]:
        codes = _codes(res_type)
        is_owner = res_type == OWNER
        if not codes and not is_owner:
            never: Cond = lambda res: false()  # noqa: E731
            return 0, never, never
        ref = index_table("reference")
        to_owner = [
            ref.c.param.in_(codes),
            ref.c.target_type == OWNER,
            ref.c.target_id == self.patient_id,
            _local(ref, self.base),
        ]
        keys: list[Select[Any]] = []
        if codes:
            keys.append(select(ref.c.resource_key).where(ref.c.res_type == res_type, *to_owner))
        if is_owner:
            owner = RESOURCE.alias()
            keys.append(
                select(owner.c.key).where(
                    owner.c.res_type == OWNER, owner.c.res_id == self.patient_id
                )
            )
        found = keys[0] if len(keys) == 1 else union(*keys)

        def drive(res: FromClause) -> ColumnElement[bool]:
            return any_of(res.c.key, found)

        def probe(res: FromClause) -> ColumnElement[bool]:
            alternatives: list[ColumnElement[bool]] = []
            if codes:
                alternatives.append(exists().where(ref.c.resource_key == res.c.key, *to_owner))
            if is_owner:
                alternatives.append(res.c.res_id == self.patient_id)
            return or_(*alternatives)

        return 1, drive, probe

    def keys(self) -> CompoundSelect[tuple[int]]:
        """``SELECT key`` of every resource, of any type, in the record (the owner included)."""
        comp = compartment.compartment(OWNER)
        ref = index_table("reference")
        by_param = [
            and_(ref.c.param == code, ref.c.res_type.in_(types))
            for code, types in comp.by_code(comp.members).items()
        ]
        referrers = select(ref.c.resource_key.label("key")).where(
            ref.c.target_type == OWNER,
            ref.c.target_id == self.patient_id,
            or_(*by_param),
            _local(ref, self.base),
        )
        owner = RESOURCE.alias()
        return referrers.union(
            select(owner.c.key).where(owner.c.res_type == OWNER, owner.c.res_id == self.patient_id)
        )


@dataclass(frozen=True)
class AnyOf:
    """Criterion: every criterion of at least one alternative holds."""

    alternatives: tuple[tuple[Criterion | Term, ...], ...]

    def parts(self, res_type: str) -> tuple[int | None, Cond, Cond]:
        alts = self.alternatives

        def probe(res: FromClause) -> ColumnElement[bool]:
            return or_(*(and_(true(), *probes(res, res_type, alt)) for alt in alts))

        keys = union(*(matching_keys(res_type, alt) for alt in alts))

        def drive(res: FromClause) -> ColumnElement[bool]:
            return any_of(res.c.key, keys)

        return 5, drive, probe


@dataclass(frozen=True)
class Allowance:
    """What one granted scope lets through: resources of ``types`` (None: every type), in
    ``record`` if set, matching the criteria of their type if ``criteria`` is set (types it
    does not list are not allowed)."""

    types: frozenset[str] | None
    record: PatientRecord | None = None
    criteria: Mapping[str, tuple[Criterion | Term, ...]] | None = None

    @property
    def type_only(self) -> bool:
        return self.record is None and self.criteria is None


def _allowed(res: FromClause, a: Allowance) -> ColumnElement[bool]:
    conds: list[ColumnElement[bool]] = []
    if a.types is not None:
        conds.append(res.c.res_type.in_(sorted(a.types)))
    if a.record is not None:
        conds.append(any_of(res.c.key, a.record.keys()))
    if a.criteria is not None:
        conds.append(
            or_(
                false(),
                *(
                    and_(res.c.res_type == t, *probes(res, t, crit))
                    for t, crit in sorted(a.criteria.items())
                ),
            )
        )
    return and_(true(), *conds)


def visible(res: FromClause, allowances: Sequence[Allowance]) -> ColumnElement[bool]:
    """``res`` (a ``resource`` alias of any type) is let through by some allowance."""
    return or_(false(), *(_allowed(res, a) for a in allowances))


def visible_ids(
    conn: Connection, res_type: str, res_ids: Sequence[str], criteria: Sequence[Criterion | Term]
) -> set[str]:
    """Which of the live ``res_type`` resources ``res_ids`` match every criterion."""
    flush_index_rows(conn)
    res = RESOURCE.alias()
    stmt = select(res.c.res_id).where(
        res.c.res_type == res_type,
        res.c.res_id.in_(list(res_ids)),
        res.c.deleted.is_(False),
        res.c.version_id > 0,
        *probes(res, res_type, criteria),
    )
    return {str(row[0]) for row in conn.execute(stmt)}


_VERSION_COLUMNS = (
    VERSION.c.key,
    VERSION.c.res_type,
    VERSION.c.res_id,
    VERSION.c.version_id,
    VERSION.c.last_updated,
    VERSION.c.method,
    VERSION.c.deleted,
    VERSION.c.data,
)


def _version_filter(allowances: Sequence[Allowance]) -> ColumnElement[bool] | None:
    """The versions of resources the allowances let through (None: every version)."""
    if any(a.type_only and a.types is None for a in allowances):
        return None
    plain = sorted({t for a in allowances if a.type_only for t in a.types or ()})
    restricted = [a for a in allowances if not a.type_only]
    conds: list[ColumnElement[bool]] = []
    if plain:
        conds.append(VERSION.c.res_type.in_(plain))
    if restricted:
        res = RESOURCE.alias()
        conds.append(VERSION.c.resource_key.in_(select(res.c.key).where(visible(res, restricted))))
    return or_(false(), *conds)


def history(
    conn: Connection,
    res_type: str | None,
    res_id: str | None,
    since: int | None,
    at: tuple[int, int] | None,
    count: int,
    before_key: int | None,
    allowances: Sequence[Allowance] | None,
    policy: Cond | None = None,
) -> list[StoredVersion]:
    """Versions newest first, ``count`` at most, of resources the allowances let through (as they
    are now: a deleted resource has no index rows, so restricted allowances leave it out) and
    the consent decision ``policy`` permits as they are now."""
    stmt = select(*_VERSION_COLUMNS)
    if res_type is not None:
        stmt = stmt.where(VERSION.c.res_type == res_type)
    if res_id is not None:
        owner = select(RESOURCE.c.key).where(
            RESOURCE.c.res_type == res_type, RESOURCE.c.res_id == res_id
        )
        stmt = stmt.where(VERSION.c.resource_key == owner.scalar_subquery())
    if since is not None:
        stmt = stmt.where(VERSION.c.last_updated >= since)
    if at is not None:
        start, end = at
        later = VERSION.alias("later")
        stmt = stmt.where(
            VERSION.c.last_updated < end,
            ~exists().where(
                later.c.resource_key == VERSION.c.resource_key,
                later.c.version_id == VERSION.c.version_id + 1,
                later.c.last_updated <= start,
            ),
        )
    if before_key is not None:
        stmt = stmt.where(VERSION.c.key < before_key)
    if allowances is not None:
        cond = _version_filter(allowances)
        if cond is not None:
            flush_index_rows(conn)
            stmt = stmt.where(cond)
    if policy is not None:
        flush_index_rows(conn)
        res = RESOURCE.alias()
        stmt = stmt.where(VERSION.c.resource_key.in_(select(res.c.key).where(policy(res))))
    rows = conn.execute(stmt.order_by(VERSION.c.key.desc()).limit(count)).all()
    return [
        StoredVersion(int(r[0]), r[1], r[2], int(r[3]), int(r[4]), r[5], bool(r[6]), _bytes(r[7]))
        for r in rows
    ]


def _bytes(data: Any) -> bytes | None:
    return bytes(data) if data is not None else None


class EverythingSet:
    """The conditions on a ``resource`` alias that put it in a ``$everything`` answer.

    The set is one key list, ``members UNION referenced`` (``members`` a CTE, read once), that
    drives the statement through the primary key: the compartment's references are found by
    ``ix_reference (target_id, target_type)`` and what the members refer to by
    ``ix_reference (resource_key, ...)``, so a page costs the size of one Patient's record, not of
    the database. ``allowances`` (None: everything) keep what the principal may read.
    """

    def __init__(
        self,
        patient_id: str | None,
        types: Sequence[str] | None,
        since: int | None,
        base: str,
        allowances: Sequence[Allowance] | None,
        policy: Cond | None = None,
    ) -> None:
        self.members = compartment.member_keys(OWNER, patient_id).cte("members")
        ref = index_table("reference").alias()
        target = RESOURCE.alias()
        joined = ref.join(
            target,
            and_(target.c.res_type == ref.c.target_type, target.c.res_id == ref.c.target_id),
        )
        member_keys = select(self.members.c.key)
        referenced = (
            select(target.c.key)
            .select_from(joined)
            .where(
                any_of(ref.c.resource_key, member_keys),
                ref.c.target_type.is_not(None),
                _local(ref, base),
            )
        )
        self.keys = union(member_keys, referenced)
        self.types = types
        self.since = since
        self.allowances = allowances
        self.policy = policy

    def where(self, res: FromClause) -> list[ColumnElement[bool]]:
        where = [any_of(res.c.key, self.keys), res.c.deleted.is_(False), res.c.version_id > 0]
        if self.types is not None:
            where.append(res.c.res_type.in_(list(self.types)))
        if self.since is not None:
            where.append(res.c.last_updated >= self.since)
        if self.allowances is not None:
            where.append(visible(res, self.allowances))
        if self.policy is not None:
            where.append(self.policy(res))
        return where

    def page(self, after: int | None, limit: int) -> Select[Any]:
        """``(key, res_type, res_id, data, member, patient key)`` in key order after ``after``."""
        res = RESOURCE.alias()
        ver = VERSION.alias()
        conds = self.where(res)
        if after is not None:
            conds.append(res.c.key > after)
        return (
            select(
                res.c.key,
                res.c.res_type,
                res.c.res_id,
                ver.c.data,
                res.c.key.in_(select(self.members.c.key)).label("member"),
                res.c.patient_key,
            )
            .join(ver, and_(ver.c.resource_key == res.c.key, ver.c.version_id == res.c.version_id))
            .where(*conds)
            .order_by(res.c.key)
            .limit(limit)
        )

    def count(self) -> Select[Any]:
        res = RESOURCE.alias()
        return select(func.count()).select_from(res).where(*self.where(res))
