"""Compartments: which resources belong to one Patient's record.

https://hl7.org/fhir/R4/compartmentdefinition.html and
https://hl7.org/fhir/R4/patient.html#compartment. The official Patient CompartmentDefinition is
vendored as ``dhr/data/compartment-patient.json`` (derived by ``scripts/derive_compartment.py``):
for each resource type, the reference search parameters that put a resource in the compartment
of the Patient they point at. A resource is in ``Patient/123``'s compartment when any of its
type's parameters references ``Patient/123`` (as indexed in ``ix_reference``); the Patient
itself is in its own compartment. Compartment search (https://hl7.org/fhir/R4/http.html#search,
``GET Patient/123/Observation?...``) is an ordinary search with that membership as one more
criterion; ``$everything`` builds on :func:`member_keys`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from importlib import resources

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    FromClause,
    Select,
    and_,
    exists,
    false,
    or_,
    select,
    union,
)

from dhr.errors import bad_request
from dhr.search.sql.aliases import alias_of
from dhr.search.sql.dialect import any_of
from dhr.search.sql.predicate import statement_index_table
from dhr.store.models import ResourceRow

RESOURCE = ResourceRow.__table__
SUPPORTED = ("Patient",)


@dataclass(frozen=True)
class InCompartment:
    """Search criterion: the resource is in the compartment ``comp_type/comp_id``."""

    comp_type: str
    comp_id: str
    codes: tuple[str, ...]  # the searched type's membership parameters


@dataclass(frozen=True)
class Compartment:
    """One CompartmentDefinition: member types and their membership parameters."""

    code: str
    members: dict[str, tuple[str, ...]]

    def params(self, res_type: str) -> tuple[str, ...]:
        return self.members.get(res_type, ())

    def by_code(self, types: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Membership parameter code to the types (of ``types``) that use it."""
        out: dict[str, list[str]] = {}
        for t in types:
            for code in self.members.get(t, ()):
                out.setdefault(code, []).append(t)
        return {code: tuple(ts) for code, ts in sorted(out.items())}


@cache
def _load(code: str) -> Compartment:
    name = f"data/compartment-{code.lower()}.json"
    data = json.loads(resources.files("dhr").joinpath(name).read_text("utf-8"))
    members = {t: tuple(ps) for t, ps in data["resource"].items()}
    return Compartment(data["code"], members)


def compartment(comp_type: str) -> Compartment:
    """The compartment definition for ``comp_type`` (400 for one this server does not have)."""
    if comp_type not in SUPPORTED:
        raise bad_request(
            f"{comp_type[:40]!r} is not a compartment this server supports (only Patient)",
            "unknown-compartment",
        )
    return _load(comp_type)


def criterion(comp_type: str, comp_id: str, res_type: str) -> InCompartment:
    """The criterion of ``GET [comp_type]/[comp_id]/[res_type]`` (400 for a non-member type)."""
    comp = compartment(comp_type)
    codes = comp.params(res_type)
    if not codes and res_type != comp_type:
        raise bad_request(
            f"{res_type} resources are never in a {comp_type} compartment", "not-in-compartment"
        )
    return InCompartment(comp_type, comp_id, codes)


Cond = Callable[[FromClause], ColumnElement[bool]]


def member_conditions(res_type: str, c: InCompartment) -> tuple[Cond, Cond]:
    """``res`` (of ``res_type``) is in the compartment of ``c``, two ways: as the driving
    ``res.key IN (...)`` over ``ix_reference (target_id, target_type)``, and as a probe of one
    candidate's own reference rows (``ix_reference (resource_key, param, ...)``)."""
    ref = statement_index_table("reference")
    owner = alias_of(RESOURCE)
    to_owner = [ref.c.target_type == c.comp_type, ref.c.target_id == c.comp_id]
    is_owner = res_type == c.comp_type
    keys: list[Select[tuple[int]]] = []
    if c.codes:
        keys.append(
            select(ref.c.resource_key).where(
                ref.c.res_type == res_type, ref.c.param.in_(c.codes), *to_owner
            )
        )
    if is_owner:
        keys.append(
            select(owner.c.key).where(owner.c.res_type == c.comp_type, owner.c.res_id == c.comp_id)
        )

    def drive(res: FromClause) -> ColumnElement[bool]:
        if not keys:
            return false()
        return any_of(res.c.key, keys[0] if len(keys) == 1 else union(*keys))

    def probe(res: FromClause) -> ColumnElement[bool]:
        alternatives: list[ColumnElement[bool]] = []
        if c.codes:
            alternatives.append(
                exists().where(ref.c.resource_key == res.c.key, ref.c.param.in_(c.codes), *to_owner)
            )
        if is_owner:
            alternatives.append(res.c.res_id == c.comp_id)
        return or_(*alternatives) if alternatives else false()

    return drive, probe


def member_keys(comp_type: str, comp_id: str | None) -> CompoundSelect[tuple[int]]:
    """``SELECT key`` of every resource (any type, possibly deleted) in the compartment of
    ``comp_type/comp_id``, the owner included; ``comp_id=None``: in any such compartment."""
    comp = compartment(comp_type)
    ref = statement_index_table("reference")
    by_param = [
        and_(ref.c.param == code, ref.c.res_type.in_(types))
        for code, types in comp.by_code(comp.members).items()
    ]
    where = [ref.c.target_type == comp_type, or_(*by_param)]
    owner = alias_of(RESOURCE)
    owner_where = [owner.c.res_type == comp_type]
    if comp_id is not None:
        where.append(ref.c.target_id == comp_id)
        owner_where.append(owner.c.res_id == comp_id)
    referrers = select(ref.c.resource_key.label("key")).where(*where)
    return referrers.union(select(owner.c.key).where(*owner_where))
