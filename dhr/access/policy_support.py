"""The rows a compiled consent decision can permit at most, as a set a search can be driven by.

ARCHITECTURE.md "The policy layer" (the decision is compiled into the SQL; pages are full and
totals true). A search with no criterion an index can drive (``Condition?_total=accurate``,
``Observation?_sort=-date``) judges every live row of its type, about 1.4 µs a row on SQLite: a
clinician's count of 4,546 Conditions at 191k resources spent 13 ms judging them to find 176.

Yet a clinician's decision rarely permits a row of a patient it knows nothing about. For the
implicit policy it reads ``GlassBroken or ControllerIn(own) or (Related and not LabelIn(...))``:
whatever the data, a row it permits is a row of a patient the requester cares for or broke the
glass for, or a row its own organisation controls. When that holds (:func:`bound`: the formula
is FALSE once :class:`~consent.formula.Related`, :class:`~consent.formula.GlassBroken`,
:class:`~consent.formula.PatientIs` and :class:`~consent.formula.ControllerIn` are assumed
false), the keys of those rows (:func:`support_keys`: the type's rows of those patients through
``resource (res_type, patient_key)``, of no patient, of several, and the rows tagged with those
controllers through the ``_tag`` index) are a superset of what it permits. A search with nothing
better to drive it is then driven by that set and judges only its rows (13 ms -> 1.1 ms for the
count above); the decision itself still judges every row, so the set only has to be a superset.

A decision that permits rows of any patient (research with a Consent or an arrangement, the
``direct-care`` implicit policy, a patient's Consent whose provisions do not depend on those
atoms) is not bounded, and its searches are driven as before. A Consent holder whose own
formula is not bounded joins the set by id. A request whose set holds more than
:data:`MAX_PATIENTS` patients is driven as before too. ADR 0010 item 14.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, Select, select, union_all

from consent import formula as f
from consent.simplify import atoms_of
from dhr.access.policy_sql import PatientSets, is_in, is_text, sql_text
from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.search.sql.predicate import index_table
from dhr.store.models import ResourceRow
from dhr.store.patient_key import SEVERAL

RESOURCE = ResourceRow.__table__
# After the rank of every search parameter's value (dhr.search.compile._rank: 1 to 6): the
# support drives a search only when no criterion can.
SUPPORT_RANK = 7
# Above this many patients (related, break-glass and named) the set is not worth reading first: a
# page in key order stops after its rows, where the union is read whole (an organisation caring
# for most patients judges each row as before; the count then keeps most of what it judges).
MAX_PATIENTS = 2000
_BOUNDING = (f.Related, f.GlassBroken, f.PatientIs, f.ControllerIn)


@dataclass(frozen=True)
class Support:
    """Beyond the requester's related and break-glass patients and the rows of no patient:
    the patients (ids) and the controllers (ODS codes) whose rows the decision may permit."""

    patients: frozenset[str]
    controllers: frozenset[str]


def worth_driving(patients: int) -> bool:
    """Whether a bound of ``patients`` patients is small enough to drive a search by."""
    return patients <= MAX_PATIENTS


def _assumed_false(atom: f.Atom) -> bool | None:
    return False if isinstance(atom, _BOUNDING) else None


def _bounded(formula: f.Formula) -> bool:
    """Whether ``formula`` permits nothing unless one of the bounding atoms holds."""
    return f.assume(formula, _assumed_false) == f.FALSE


def bound(
    implicit: f.Formula, groups: tuple[tuple[tuple[str, ...], f.Formula], ...]
) -> Support | None:
    """The :class:`Support` of the decision ``implicit`` (every patient without Consents)
    with ``groups`` (Consent holders and their formulas), or None when it is not bounded."""
    if not _bounded(implicit):
        return None
    patients: set[str] = set()
    controllers: set[str] = set()

    def collect(formula: f.Formula) -> None:
        for atom in atoms_of(formula):
            if isinstance(atom, f.PatientIs):
                patients.add(atom.patient_id)
            elif isinstance(atom, f.ControllerIn):
                controllers.update(atom.codes)

    collect(implicit)
    for pids, formula in groups:
        if _bounded(formula):
            collect(formula)
        else:
            patients.update(pids)
    return Support(frozenset(patients), frozenset(controllers))


def support_keys(
    support: Support, res_type: str, sets: PatientSets, several: bool
) -> CompoundSelect[tuple[int]]:
    """``SELECT key`` of the ``res_type`` rows the decision may permit (``several``: rows of
    several patients exist): a union of index range reads; the search judges what it returns."""
    res = RESOURCE.alias("support_row")
    kind = sql_text(res_type)

    def rows(condition: Any) -> Select[tuple[int]]:
        return select(res.c.key).where(res.c.res_type == kind, condition)

    parts = [rows(res.c.patient_key.is_(None))]
    if sets.related is not None:
        parts.append(rows(res.c.patient_key.in_(sets.related)))
    if sets.glass_broken is not None:
        parts.append(rows(res.c.patient_key.in_(sets.glass_broken)))
    if support.patients:
        parts.append(rows(is_in(res.c.patient_key, support.patients)))
    if several:
        parts.append(rows(res.c.patient_key == sql_text(SEVERAL)))
    if support.controllers:
        tok = index_table("token").alias("support_tag")
        parts.append(
            select(tok.c.resource_key.label("key")).where(
                tok.c.res_type == kind,
                is_text(tok.c.param, "_tag"),
                is_text(tok.c.system, CONTROLLER_SYSTEM),
                is_in(tok.c.code, support.controllers),
            )
        )
    return union_all(*parts)
