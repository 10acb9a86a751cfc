"""The decision as a formula over the data, so that the enforcing side can compile it into SQL.

ARCHITECTURE.md "The policy layer": searches are not filtered after paging; the decision compiles
into the SQL, so pages are full and totals are true. For one requester, the decision of
:func:`consent.pdp.decide` depends on the data (its type, codes, security labels, controllers,
date, id) and on a few facts about the data's patient (a care relationship with the requester's
organisation, a national data opt-out, a break-glass declaration by the requester, the patient's
Consents). :mod:`consent.compile` turns the decision, for one requester and one patient's
Consents, into a :data:`Formula` of the atoms below; ``dhr.access.policy_sql`` turns each atom
into an SQL condition, and :func:`holds` evaluates the same formula in Python (for one resource,
and for the property tests that check it agrees with ``decide``).

Atoms about the data: :class:`TypeIn`, :class:`CodeIn`, :class:`LabelIn`, :class:`DateIn`,
:class:`IdIn`, :class:`ControllerIn`, :class:`ControllerOutside`. Atoms about the patient (facts
the server establishes for the data's patient and the requester): :class:`Related`,
:class:`OptedOut`, :class:`GlassBroken`. Connectives :class:`All`, :class:`AnyOf`, :class:`Not`
and the constants :data:`TRUE` and :data:`FALSE`; the constructors :func:`all_of`,
:func:`any_of` and :func:`negate` fold constants, so a formula that cannot depend on the data
comes out as a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from consent.model import DataItem, Label, Period


@dataclass(frozen=True)
class Const:
    value: bool


TRUE = Const(True)
FALSE = Const(False)


@dataclass(frozen=True)
class TypeIn:
    """The data's resource type is one of ``types``."""

    types: frozenset[str]


@dataclass(frozen=True)
class CodeIn:
    """The data carries one of ``codes`` (``system|code``) in its ``code`` element."""

    codes: frozenset[str]


@dataclass(frozen=True)
class LabelIn:
    """The data carries one of ``labels`` in ``meta.security``."""

    labels: frozenset[Label]


@dataclass(frozen=True)
class DateIn:
    """The data's clinical date lies within ``period`` (data without a date does not)."""

    period: Period


@dataclass(frozen=True)
class IdIn:
    """The data is one of ``refs`` (``Type/id``)."""

    refs: frozenset[str]


@dataclass(frozen=True)
class ControllerIn:
    """One of the data's controllers is one of ``codes`` (ODS)."""

    codes: frozenset[str]


@dataclass(frozen=True)
class ControllerOutside:
    """One of the data's controllers is none of ``codes`` (ODS)."""

    codes: frozenset[str]


@dataclass(frozen=True)
class Related:
    """The requester's organisation has a care relationship with the data's patient."""


@dataclass(frozen=True)
class OptedOut:
    """The data's patient has a national data opt-out."""


@dataclass(frozen=True)
class GlassBroken:
    """The requester has an active break-glass declaration for the data's patient."""


@dataclass(frozen=True)
class PatientIs:
    """The data is ``patient_id``'s (a patient acting for themselves)."""

    patient_id: str


@dataclass(frozen=True)
class All:
    parts: tuple[Formula, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Formula, ...]


@dataclass(frozen=True)
class Not:
    part: Formula


Atom = (
    TypeIn
    | CodeIn
    | LabelIn
    | DateIn
    | IdIn
    | ControllerIn
    | ControllerOutside
    | Related
    | OptedOut
    | GlassBroken
    | PatientIs
)
Formula = Const | Atom | All | AnyOf | Not


def all_of(parts: Iterable[Formula]) -> Formula:
    """The conjunction of ``parts``, constants folded (empty: TRUE)."""
    kept: dict[Formula, None] = {}
    for part in parts:
        if part == FALSE:
            return FALSE
        if part == TRUE:
            continue
        for p in part.parts if isinstance(part, All) else (part,):
            kept.setdefault(p, None)
    if not kept:
        return TRUE
    return next(iter(kept)) if len(kept) == 1 else All(tuple(kept))


def any_of(parts: Iterable[Formula]) -> Formula:
    """The disjunction of ``parts``, constants folded (empty: FALSE)."""
    kept: dict[Formula, None] = {}
    for part in parts:
        if part == TRUE:
            return TRUE
        if part == FALSE:
            continue
        for p in part.parts if isinstance(part, AnyOf) else (part,):
            kept.setdefault(p, None)
    if not kept:
        return FALSE
    return next(iter(kept)) if len(kept) == 1 else AnyOf(tuple(kept))


def negate(part: Formula) -> Formula:
    if isinstance(part, Const):
        return FALSE if part.value else TRUE
    if isinstance(part, Not):
        return part.part
    return Not(part)


@dataclass(frozen=True)
class PatientFacts:
    """The patient-level facts for one requester and one patient (what the atoms
    :class:`Related`, :class:`OptedOut` and :class:`GlassBroken` stand for)."""

    related: bool = False
    opted_out: bool = False
    glass_broken: bool = False


def _within(period: Period, date: str | None) -> bool:
    if not date:
        return False
    day = date[:10]
    if period.start is not None and day < period.start[:10]:
        return False
    return period.end is None or day <= period.end[:10]


def evaluate(formula: Formula, atom: Callable[[Atom], bool]) -> bool:
    """Whether ``formula`` holds when each of its atoms has the value ``atom(a)`` (the
    connectives and constants; :func:`holds` gives atoms their meaning for one data item)."""
    match formula:
        case Const(value):
            return value
        case All(parts):
            return all(evaluate(p, atom) for p in parts)
        case AnyOf(parts):
            return any(evaluate(p, atom) for p in parts)
        case Not(part):
            return not evaluate(part, atom)
    return atom(formula)


def assume(formula: Formula, value: Callable[[Atom], bool | None]) -> Formula:
    """``formula`` with each atom ``a`` for which ``value(a)`` is not None replaced by that
    constant, and the constants folded (the other atoms stay): what the formula says in the
    cases where those atoms have those values."""
    match formula:
        case Const():
            return formula
        case All(parts):
            return all_of(assume(p, value) for p in parts)
        case AnyOf(parts):
            return any_of(assume(p, value) for p in parts)
        case Not(part):
            return negate(assume(part, value))
    known = value(formula)
    if known is None:
        return formula
    return TRUE if known else FALSE


def holds(formula: Formula, item: DataItem, facts: PatientFacts) -> bool:
    """Whether ``formula`` holds for the data ``item`` of a patient with ``facts``."""

    def atom(part: Atom) -> bool:
        match part:
            case TypeIn(types):
                return item.res_type in types
            case CodeIn(codes):
                return not item.codes.isdisjoint(codes)
            case LabelIn(labels):
                return not item.labels.isdisjoint(labels)
            case DateIn(period):
                return _within(period, item.date)
            case IdIn(refs):
                return f"{item.res_type}/{item.res_id}" in refs
            case ControllerIn(codes):
                return any(c in codes for c in item.controllers)
            case ControllerOutside(codes):
                return any(c not in codes for c in item.controllers)
            case Related():
                return facts.related
            case OptedOut():
                return facts.opted_out
            case GlassBroken():
                return facts.glass_broken
            case PatientIs(patient_id):
                return item.patient == patient_id
        raise TypeError(f"not a formula: {part!r}")

    return evaluate(formula, atom)
