"""The consent decision as SQL: each atom of :mod:`consent.formula` as a condition on a resource.

ARCHITECTURE.md "The policy layer": searches are not filtered after paging; the decision compiles
into the SQL, so pages are full and totals true. :func:`condition` translates a formula for a
``resource`` alias ``res`` and a column ``pid`` holding the id of the data's patient:

* data atoms probe the resource's own index rows (``ix_token``, ``ix_date``) through their
  ``(resource_key, param, ...)`` indexes: the ``code`` parameter for codes, ``_security`` for
  security labels (https://hl7.org/fhir/R4/security-labels.html), ``_tag`` with the controller
  system for the joint controllers, the type's clinical date parameters (:data:`CLINICAL_DATES`)
  for a Consent's ``dataPeriod``;
* patient atoms are ``pid IN (uncorrelated subquery)`` over the patient facts
  (:class:`PatientSets`), which the database evaluates once per statement.

:func:`patient_data` wraps a per-patient condition so that it holds for *every* patient whose
record (https://hl7.org/fhir/R4/compartmentdefinition-patient.html) the resource belongs to, as
the compartment's local references say: a resource of no patient is not patient data and passes.
A Patient resource belongs to itself and, for a source record, to the master its ``link`` names.
The resource row's patient key (:mod:`dhr.store.patient_key`) names that one patient, or none,
so only a resource of several patients has its references read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    String,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from consent import formula as f
from consent.model import Period
from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.search import compartment
from dhr.search.registry import registry
from dhr.search.sql.predicate import index_table
from dhr.store.controller_codes import UNKNOWN, fits
from dhr.store.patient_key import SEVERAL

OWNER = "Patient"
# The parameters that carry a resource's clinical date, first found wins (a Consent's dataPeriod
# is compared with the start of that date).
CLINICAL_DATES = (
    "date",
    "onset-date",
    "recorded-date",
    "authoredon",
    "occurrence",
    "period",
    "issued",
    "created",
    "effective",
)


def clinical_date_param(res_type: str) -> str | None:
    """The parameter whose value is ``res_type``'s clinical date (None: it has none)."""
    params = registry().for_type(res_type)
    for code in CLINICAL_DATES:
        param = params.get(code)
        if param is not None and param.type == "date":
            return code
    return None


@dataclass(frozen=True)
class RequestSets:
    """The patient facts one request has already read, in memory (ids of Patients)."""

    related: frozenset[str]  # care relationships of the requester (data and claims)
    glass_broken: frozenset[str]  # the requester's break-glass declarations in force
    # each set as one statement parameter, made once (the same sets serve every request of a
    # requester while its request state stays the same: dhr.access.policy.last_policy)
    _encoded: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def encoded(self, name: str, pick: Callable[[RequestSets], frozenset[str]], pg: bool) -> str:
        """The set ``pick(self)`` (kept as ``name``) as a PostgreSQL array literal (``pg``) or
        a JSON array (SQLite's ``json_each``)."""
        found = self._encoded.get(name)
        if found is None:
            ids = sorted(pick(self))
            if pg:  # every element quoted: '{"a","b"}' (backslash and quote escaped)
                quoted = (i.replace("\\", "\\\\").replace('"', '\\"') for i in ids)
                found = "{" + ",".join(f'"{q}"' for q in quoted) + "}"
            else:
                found = orjson.dumps(ids).decode()
            self._encoded[name] = found
        return found


_REQUEST_SETS: ContextVar[RequestSets | None] = ContextVar("dhr_policy_sets", default=None)


def use_sets(sets: RequestSets) -> None:
    """The sets the statements this thread runs next read (:func:`id_set`)."""
    _REQUEST_SETS.set(sets)


def _current() -> RequestSets:
    found = _REQUEST_SETS.get()
    if found is None:  # a statement built for a request, run outside one: refuse (fail closed)
        raise RuntimeError("a consent statement ran without its request's patient facts")
    return found


def id_set(dialect: str, name: str, pick: Callable[[RequestSets], frozenset[str]]) -> Any:
    """``SELECT id`` over the request's set ``pick(sets)``, as ONE bound parameter read when
    the statement runs: a statement built (and cached) once serves every request, each with
    its own set, and the database plans a list, not the subqueries that found it."""
    if dialect == "postgresql":
        literal = bindparam(
            name, type_=String(), callable_=lambda: _current().encoded(name, pick, True)
        )
        return select(func.unnest(cast(literal, ARRAY(String()))).label("id"))
    text = bindparam(name, type_=String(), callable_=lambda: _current().encoded(name, pick, False))
    each = func.json_each(text).table_valued("value")
    return select(each.c.value.label("id"))


@dataclass(frozen=True)
class PatientSets:
    """The patient facts as subqueries of patient ids (``SELECT id``)."""

    related: Any  # None: no relationship at all
    opted_out: Any
    glass_broken: Any
    everyone_related: bool = False  # the implicit policy needs no relationship (direct-care)
    # True: the fields are subqueries (FROM clauses) probed for one patient
    # (``EXISTS (... WHERE id = pid)``, which the databases push down to index lookups), the form
    # for checking one resource; False: id sets evaluated once per statement, for searches.
    one_patient: bool = False


def _micros(day: str, end: bool) -> int:
    moment = datetime.fromisoformat(day[:10]).replace(tzinfo=UTC)
    micros = int(moment.timestamp()) * 1_000_000
    return micros + 86_400_000_000 - 1 if end else micros


# -- constants written into the statement ----------------------------------------------------
# A compiled policy's condition is built once and reused by every statement of every request, so
# its constants are SQL literals rather than bound parameters: SQLAlchemy then has no parameter
# to expand ("IN" lists) and process at each execution (measured: 0.25 ms a search).


def sql_text(value: str) -> ColumnElement[str]:
    """``value`` as an SQL string literal (quotes doubled, as both engines read them)."""
    return literal_column("'" + value.replace("'", "''") + "'", String())


def _texts(values: Iterable[str]) -> list[ColumnElement[str]]:
    # A NUL cannot be stored (FHIR strings exclude control characters; PostgreSQL text refuses
    # it), so a value containing one matches nothing and is left out.
    return [sql_text(v) for v in sorted(set(values)) if "\x00" not in v]


def is_in(column: ColumnElement[str], values: Iterable[str]) -> ColumnElement[bool]:
    """``column IN ('a', 'b')`` (FALSE for no values)."""
    texts = _texts(values)
    return column.in_(texts) if texts else false()


def not_in(column: ColumnElement[str], values: Iterable[str]) -> ColumnElement[bool]:
    """``column NOT IN ('a', 'b')`` (TRUE for no values)."""
    texts = _texts(values)
    return column.not_in(texts) if texts else true()


def is_text(column: ColumnElement[str], value: str) -> ColumnElement[bool]:
    return is_in(column, [value])


def _number(value: int) -> ColumnElement[int]:
    return literal_column(str(int(value)), BigInteger())


# One alias of each index table for every statement: the atoms are sibling subqueries (never
# nested in one another), so they can share it, and building a fresh alias per atom per request
# (SQLAlchemy proxies every column) cost more than the query itself.
_TOKEN = index_table("token")
_TAG = index_table("token")
_DATE = index_table("date")
_REF = index_table("reference")


def _tokens(res: FromClause, param: str, pairs: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    tok = _TOKEN
    if not pairs:
        return false()
    by_system: dict[str, set[str]] = {}
    for system, code in pairs:
        by_system.setdefault(system, set()).add(code)
    # grouped by system: short to plan, and the (resource_key, param, code) index narrows it
    match = or_(
        *(
            and_(is_in(tok.c.code, codes), is_text(tok.c.system, system))
            for system, codes in sorted(by_system.items())
        )
    )
    return (
        exists()
        .where(tok.c.resource_key == res.c.key, is_text(tok.c.param, param), match)
        .correlate_except(tok)
    )


def _controllers(res: FromClause, codes: frozenset[str], inside: bool) -> ColumnElement[bool]:
    """A controller of ``res`` is in ``codes`` (``inside``), or outside them: read from the
    row's ``controllers`` (:mod:`dhr.store.controller_codes`), or from its ``_tag`` index rows
    when that is unknown."""
    if inside and not codes:
        return false()
    tok = _TAG
    conds = [
        tok.c.resource_key == res.c.key,
        is_text(tok.c.param, "_tag"),
        is_text(tok.c.system, CONTROLLER_SYSTEM),
    ]
    if inside:
        conds.append(is_in(tok.c.code, codes))
    elif codes:
        conds.append(not_in(tok.c.code, codes))
    probe = exists().where(*conds).correlate_except(tok)
    ctl = res.c.controllers
    storable = sorted(c for c in codes if fits(c))  # no other code can be among a row's
    listed: ColumnElement[bool]
    if inside:
        # replace() compares as the index did, case-sensitively (SQLite's LIKE would not)
        listed = or_(
            false(), *(func.replace(ctl, sql_text(f" {c} "), sql_text("")) != ctl for c in storable)
        )
    elif codes:
        rest: ColumnElement[str] = ctl
        for c in storable:
            rest = func.replace(rest, sql_text(f" {c} "), sql_text(" "))
        listed = rest != sql_text(" ")
    else:
        listed = ctl.is_not(None)
    return or_(and_(ctl == sql_text(UNKNOWN), probe), and_(ctl != sql_text(UNKNOWN), listed))


def _date_in(res: FromClause, res_type: str | None, period: Period) -> ColumnElement[bool]:
    day = _DATE
    if res_type is not None:
        code = clinical_date_param(res_type)
        if code is None:
            return false()
        params: ColumnElement[bool] = is_text(day.c.param, code)
    else:
        params = is_in(day.c.param, CLINICAL_DATES)
    conds = [day.c.resource_key == res.c.key, params]
    try:
        if period.start is not None:
            conds.append(day.c.low >= _number(_micros(period.start, end=False)))
        if period.end is not None:
            conds.append(day.c.low <= _number(_micros(period.end, end=True)))
    except ValueError:  # an unreadable date in a Consent: the condition matches nothing
        return false()
    return exists().where(*conds).correlate_except(day)


def condition(
    formula: f.Formula,
    res: FromClause,
    res_type: str | None,
    pid: ColumnElement[str],
    sets: PatientSets,
) -> ColumnElement[bool]:
    """``formula`` for the resource ``res`` (of ``res_type``, None: any) of patient ``pid``."""

    def member(found: Any) -> ColumnElement[bool]:
        if sets.one_patient:
            return exists().where(found.c[0] == pid).correlate_except(found)
        return pid.in_(found)

    def sql(part: f.Formula) -> ColumnElement[bool]:
        match part:
            case f.Const(value):
                return true() if value else false()
            case f.TypeIn(types):
                return is_in(res.c.res_type, types)
            case f.CodeIn(codes):
                pairs = [tuple(c.split("|", 1)) for c in codes if "|" in c]
                return _tokens(res, "code", [(s, c) for s, c in pairs])
            case f.LabelIn(labels):
                return _tokens(res, "_security", [(x.system, x.code) for x in labels])
            case f.DateIn(period):
                return _date_in(res, res_type, period)
            case f.IdIn(refs):
                ids = [tuple(r.split("/", 1)) for r in sorted(refs) if "/" in r]
                return or_(
                    false(),
                    *(and_(is_text(res.c.res_type, t), is_text(res.c.res_id, i)) for t, i in ids),
                )
            case f.ControllerIn(codes):
                return _controllers(res, codes, inside=True)
            case f.ControllerOutside(codes):
                return _controllers(res, codes, inside=False)
            case f.Related():
                if sets.everyone_related:
                    return true()
                return false() if sets.related is None else member(sets.related)
            case f.OptedOut():
                return member(sets.opted_out)
            case f.GlassBroken():
                return member(sets.glass_broken)
            case f.PatientIs(patient_id):
                return is_text(pid, patient_id)
            case f.All(parts):
                return and_(true(), *(sql(p) for p in parts))
            case f.AnyOf(parts):
                return or_(false(), *(sql(p) for p in parts))
            case f.Not(inner):
                return not_(sql(inner))
        raise TypeError(f"not a formula: {part!r}")

    return sql(formula)


PerPatient = Callable[[ColumnElement[str]], ColumnElement[bool]]


def _local(ref: FromClause, base: str) -> ColumnElement[bool]:
    prefix = (base + "/").replace("/", "//").replace("%", "/%").replace("_", "/_")
    return or_(ref.c.url.is_(None), ref.c.url.like(sql_text(prefix + "%"), escape="/"))


def patient_data(
    res: FromClause,
    res_type: str | None,
    base: str,
    per_patient: PerPatient,
    several: bool = True,
) -> ColumnElement[bool]:
    """``per_patient(pid)`` holds for every patient whose record ``res`` belongs to (a resource
    of no patient passes). ``res_type`` None: ``res`` may be of any type. ``several`` False:
    rows whose key is ``*`` (several patients, or not worked out) are not judged but refused,
    for a statement that knows there are none (:meth:`RequestPolicy.visible`): their branch is
    most of what PostgreSQL spends planning the decision."""
    comp = compartment.compartment(OWNER)
    ref = _REF
    if res_type is not None:
        codes = list(comp.params(res_type)) + (["link"] if res_type == OWNER else [])
        if not codes:
            return true()
        by_param: ColumnElement[bool] = is_in(ref.c.param, codes)
    else:
        groups = comp.by_code(comp.members)
        # The resource's type is tested on ``res``, not on the index row (the same value): a
        # test on ``ref.res_type`` let PostgreSQL read every reference of those types through
        # the ``(res_type, param, ...)`` index instead of this resource's few (measured at
        # 191k resources: 14 s for one ``$everything`` page instead of milliseconds).
        by_param = and_(
            is_in(ref.c.param, [*groups, "link"]),
            or_(
                *(
                    and_(is_text(ref.c.param, c), is_in(res.c.res_type, types))
                    for c, types in groups.items()
                ),
                and_(is_text(ref.c.param, "link"), is_text(res.c.res_type, OWNER)),
            ),
        )
    others = ~exists().where(
        ref.c.resource_key == res.c.key,
        by_param,
        is_text(ref.c.target_type, OWNER),
        _local(ref, base),
        not_(per_patient(ref.c.target_id)),
    )
    if res_type == OWNER:
        in_full = and_(per_patient(res.c.res_id), others)
    elif res_type is None:
        in_full = and_(or_(res.c.res_type != OWNER, per_patient(res.c.res_id)), others)
    else:
        in_full = others
    # The row's patient key (dhr/store/patient_key.py) answers without reading its references
    # unless it says "several" (or was never worked out).
    key = res.c.patient_key
    one = or_(key.is_(None), and_(key != sql_text(SEVERAL), per_patient(key)))
    return or_(one, and_(key == sql_text(SEVERAL), in_full)) if several else one
