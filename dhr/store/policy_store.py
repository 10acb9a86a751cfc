"""The facts the consent decision reads, as SQL: care relationships, the national data opt-out,
access claims (break-glass, self-claimed relationships) and the patients' active Consents.

ARCHITECTURE.md "The policy layer". The facts:

* **care relationship** of an organisation (ODS code) with a patient: the Patient names the
  organisation as ``managingOrganization`` or ``generalPractitioner`` (the registered practice),
  or an ``in-progress`` Encounter of the patient has it as ``serviceProvider``, or an ``active``
  EpisodeOfCare of the patient has it as ``managingOrganization``; a source Patient record's
  registration counts for the master its ``link`` names (:func:`related_by_data`). Plus the
  requester's own self-claimed relationships in force (``access_claim`` kind ``relationship``);
* **national data opt-out**: Patients carrying an NHS number recorded in ``data_opt_out``, a
  subquery (:func:`opted_out_patients`) the statements probe;
* **break-glass**: the requester's break-glass declarations in force (``access_claim``).

Each request reads first, in one prepared statement (:func:`request_state`), the generations
its compiled policy depends on and the requester's claims in force. The relationships read from
the data are kept per organisation and "relationship generation" (the newest version key of the
types they come from: one index probe each), so they are read again only after one of those
types was written (:func:`related_ids`); the statements then take them as a parameter.

Active Consents (https://hl7.org/fhir/R4/consent.html) are read whole and parsed once per change:
:func:`active_consents` is cached per database and per "Consent generation" (the newest
``resource_version`` key of type Consent, one index probe), so a request pays for parsing only
after a Consent was written.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    BindParameter,
    CompoundSelect,
    Connection,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
)

from consent.model import PatientConsent
from consent.provisions import parse_consent
from dhr.fhir import jsonio
from dhr.record.vocab import NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM
from dhr.search.sql.predicate import index_table
from dhr.store.arrangement_store import ARRANGEMENT
from dhr.store.conflict import insert_if_absent
from dhr.store.driver import fetch
from dhr.store.frozen import Frozen, frozen_once
from dhr.store.models import SEVERAL_LIVE, ResourceRow, VersionRow
from dhr.store.policy_models import AccessClaimRow, DataOptOutRow

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
OPT_OUT = cast(Table, DataOptOutRow.__table__)
CLAIM = cast(Table, AccessClaimRow.__table__)
BREAK_GLASS, RELATIONSHIP = "break-glass", "relationship"


def _live(alias: Any, res_type: str) -> list[Any]:
    return [alias.c.res_type == res_type, alias.c.deleted.is_(False), alias.c.version_id > 0]


def _identified(res_type: str, system: str, code: Any, *more: Any) -> Select[tuple[str]]:
    """Ids of the live ``res_type`` resources with an identifier of ``system`` whose value
    meets ``code`` (a condition on the token row's ``code`` column)."""
    res = RESOURCE.alias()
    tok = index_table("token").alias()
    return (
        select(res.c.res_id)
        .join(tok, tok.c.resource_key == res.c.key)
        .where(
            *_live(res, res_type),
            tok.c.res_type == res_type,
            tok.c.param == "identifier",
            tok.c.system == system,
            code(tok.c.code),
            *(m(res) for m in more),
        )
    )


def organisations(ods: str | BindParameter[str]) -> Select[tuple[str]]:
    """Ids of the Organizations identified by ODS code ``ods`` (a value or a placeholder)."""
    return _identified("Organization", ODS_CODE_SYSTEM, lambda code: code == ods)


def _to_organisation(res_type: str, params: Sequence[str], orgs: Any) -> tuple[Any, Any, list[Any]]:
    """``(reference alias, FROM clause, conditions)``: references of ``res_type`` resources
    through ``params`` to one of the Organizations ``orgs`` (a CTE of their ids), flat (the
    result sits inside other subqueries, and SQLite's parser has a bounded stack)."""
    ref = index_table("reference").alias()
    conds = [
        ref.c.res_type == res_type,
        ref.c.param.in_(list(params)),
        ref.c.target_type == "Organization",
        ref.c.target_id.in_(select(orgs.c.res_id)),
    ]
    return ref, ref, conds


def _patients_by(res_type: str, params: Sequence[str], orgs: Any, status: str) -> Select[Any]:
    """Patients of ``res_type`` resources in ``status`` that name one of ``orgs``."""
    ref, joined, conds = _to_organisation(res_type, params, orgs)
    state = index_table("token").alias()
    who = index_table("reference").alias()
    joined = joined.join(state, state.c.resource_key == ref.c.resource_key).join(
        who, who.c.resource_key == ref.c.resource_key
    )
    return (
        select(who.c.target_id)
        .select_from(joined)
        .where(
            *conds,
            state.c.res_type == res_type,
            state.c.param == "status",
            state.c.code == status,
            who.c.param.in_(["patient", "subject"]),
            who.c.target_type == "Patient",
        )
    )


def related_by_data(ods: str | BindParameter[str]) -> CompoundSelect[tuple[str]]:
    """Ids of the patients organisation ``ods`` cares for, as the data says (registration, an
    in-progress Encounter, an active EpisodeOfCare; not the self-claimed relationships).

    The organisation's ids come first, as a materialised CTE (PostgreSQL otherwise starts from
    every Encounter's ``serviceProvider`` and checks each one's organisation)."""
    orgs = organisations(ods).cte("policy_orgs").prefix_with("MATERIALIZED", dialect="postgresql")
    registration = ("organization", "general-practitioner")
    ref, joined, conds = _to_organisation("Patient", registration, orgs)
    pat = RESOURCE.alias()
    registered = (
        select(pat.c.res_id)
        .select_from(joined.join(pat, pat.c.key == ref.c.resource_key))
        .where(*conds)
    )
    ref2, joined2, conds2 = _to_organisation("Patient", registration, orgs)
    link = index_table("reference").alias()
    masters = (
        select(link.c.target_id)
        .select_from(joined2.join(link, link.c.resource_key == ref2.c.resource_key))
        .where(*conds2, link.c.param == "link", link.c.target_type == "Patient")
    )
    return registered.union_all(
        masters,
        _patients_by("Encounter", ("service-provider",), orgs, "in-progress"),
        _patients_by("EpisodeOfCare", ("organization",), orgs, "active"),
    )


def opted_out_patients(patient_id: str | None = None) -> Select[tuple[str]]:
    """Ids of the Patients whose NHS number has a national data opt-out (``patient_id``: only
    that one, if so)."""
    only = [lambda res: res.c.res_id == patient_id] if patient_id is not None else []
    return _identified(
        "Patient",
        NHS_NUMBER_SYSTEM,
        lambda code: code.in_(select(OPT_OUT.c.nhs_number)),
        *only,
    )


# -- the national data opt-out registry ------------------------------------------------------


def record_opt_out(conn: Connection, nhs_number: str, by: str, now: int) -> bool:
    """Record an opt-out; False when one was already recorded."""
    return insert_if_absent(
        conn, OPT_OUT, {"nhs_number": nhs_number, "recorded": now, "recorded_by": by}
    )


def withdraw_opt_out(conn: Connection, nhs_number: str) -> bool:
    """Remove an opt-out; False when none was recorded."""
    done = conn.execute(delete(OPT_OUT).where(OPT_OUT.c.nhs_number == nhs_number))
    return bool(done.rowcount)


def opt_outs(conn: Connection) -> list[tuple[str, int, str]]:
    """Every recorded opt-out: (NHS number, recorded, recorded by), by NHS number."""
    rows = conn.execute(select(OPT_OUT).order_by(OPT_OUT.c.nhs_number)).all()
    return [(str(r.nhs_number), int(r.recorded), str(r.recorded_by)) for r in rows]


def is_opted_out(conn: Connection, patient_id: str) -> bool:
    """Whether the Patient ``patient_id`` carries an opted-out NHS number."""
    return conn.execute(opted_out_patients(patient_id).limit(1)).first() is not None


# -- access claims -----------------------------------------------------------------------------


def record_claim(conn: Connection, values: dict[str, Any]) -> int:
    """Record an access claim (columns of :class:`AccessClaimRow`); its key."""
    return int(conn.execute(CLAIM.insert().values(**values).returning(CLAIM.c.key)).scalar_one())


def claims_for_patient(conn: Connection, patient_id: str) -> list[Any]:
    """Every claim about one patient, newest first (for the patient and the privacy officer)."""
    return list(
        conn.execute(
            select(CLAIM).where(CLAIM.c.patient_id == patient_id).order_by(CLAIM.c.key.desc())
        ).all()
    )


def in_force(conn: Connection, kind: str, subject: str, patient_id: str, now: int) -> bool:
    """Whether ``subject`` has a claim of ``kind`` about ``patient_id`` in force at ``now``."""
    row = conn.execute(
        select(CLAIM.c.key)
        .where(
            CLAIM.c.kind == kind,
            CLAIM.c.subject == subject,
            CLAIM.c.patient_id == patient_id,
            CLAIM.c.expires > now,
        )
        .limit(1)
    ).first()
    return row is not None


# -- active Consents ---------------------------------------------------------------------------

_CACHE: dict[str, tuple[int, dict[str, tuple[PatientConsent, ...]]]] = {}
_LOCK = threading.Lock()
# The types a care relationship is read from (:func:`related_by_data`).
RELATIONSHIP_TYPES = ("Patient", "Organization", "Encounter", "EpisodeOfCare")


def _newest(res_type: str) -> Any:
    """The newest version key of ``res_type`` (one probe of the ``(res_type, key)`` index)."""
    return select(func.max(VERSION.c.key)).where(VERSION.c.res_type == res_type).scalar_subquery()


def state_columns() -> list[Any]:
    """The columns of :class:`RequestState` (:func:`state_of` reads them back), for a statement
    of their own or beside another's (a read's: ``RequestPolicy.read_confirming``): the newest
    Consent version, the arrangement's version, the newest version of each relationship type,
    and the subject's claims in force as ``"kind patient,kind patient"``. Bind ``subject`` and
    ``now`` (microseconds)."""
    claims = (
        select(func.aggregate_strings(CLAIM.c.kind + literal(" ") + CLAIM.c.patient_id, ","))
        .where(
            CLAIM.c.subject == bindparam("subject", ""),
            CLAIM.c.expires > bindparam("now", 0, BigInteger()),
        )
        .scalar_subquery()
    )
    return [
        _newest("Consent"),
        select(func.max(ARRANGEMENT.c.version)).scalar_subquery(),
        *(_newest(t) for t in RELATIONSHIP_TYPES),
        claims,
    ]


STATE_WIDTH = 3 + len(RELATIONSHIP_TYPES)  # the columns of state_columns()
_FROZEN_STATE: dict[str, Frozen] = {}


@dataclass(frozen=True)
class RequestState:
    """What a request's compiled policy depends on, read in one prepared statement."""

    consent_generation: int  # the newest Consent version's key
    arrangement_version: int  # the joint-controller arrangement's version
    # the newest version key among RELATIONSHIP_TYPES: the care relationships read from the
    # data are the same while it is
    relationship_generation: int
    glass_broken: frozenset[str]  # patients ``subject`` has broken the glass for, in force
    claimed: frozenset[str]  # patients ``subject`` claimed a relationship with, in force


def state_of(values: Sequence[Any]) -> RequestState:
    """The :class:`RequestState` in ``values``, the columns of :func:`state_columns`."""
    claims = [c.split(" ", 1) for c in str(values[-1] or "").split(",") if " " in c]
    return RequestState(
        int(values[0] or 0),
        int(values[1] or 0),
        max(int(g or 0) for g in values[2 : 2 + len(RELATIONSHIP_TYPES)]),
        frozenset(p for kind, p in claims if kind == BREAK_GLASS),
        frozenset(p for kind, p in claims if kind == RELATIONSHIP),
    )


def request_state(conn: Connection, subject: str, now: int) -> RequestState:
    """:class:`RequestState` for ``subject`` at ``now`` (microseconds)."""
    frozen = frozen_once(_FROZEN_STATE, conn, lambda: select(*state_columns()), ("subject", "now"))
    return state_of(frozen.rows(conn, prepare=True, subject=subject, now=now)[0])


# -- rows of several patients --------------------------------------------------------------

# constants only: the type is a bound parameter
_SEVERAL_SQL = f"SELECT 1 FROM resource WHERE res_type = {{}} AND {SEVERAL_LIVE} LIMIT 1"  # noqa: S608


def has_several(conn: Connection, res_type: str) -> bool:
    """Whether any live ``res_type`` row has the patient key ``*`` (several patients, or not
    worked out): one probe of the partial index ``ix_resource_several_patients``, whose
    predicate the statement repeats word for word (SQLite uses a partial index only then)."""
    pg = conn.dialect.name == "postgresql"
    sql = _SEVERAL_SQL.format("$1" if pg else "?")
    return bool(fetch(conn, sql, (res_type,), prepare=True, native=pg))


# -- care relationships read from the data, kept per relationship generation -------------------

_RELATED: dict[tuple[str, str, str, int], frozenset[str]] = {}
_RELATED_LOCK = threading.Lock()
_MAX_RELATED = 256


_FROZEN_RELATED: dict[str, Frozen] = {}


def _related_statement(conn: Connection) -> Frozen:
    """:func:`related_by_data` rendered once per dialect, the ODS code its one placeholder
    (building the union of subqueries cost 10 ms of Python a time: after every write of a
    Patient, Encounter or EpisodeOfCare, the next request of each organisation paid it)."""
    ods = bindparam("ods", "X", type_=String)
    return frozen_once(_FROZEN_RELATED, conn, lambda: related_by_data(ods), ("ods",))


def related_ids(conn: Connection, ods: str, base: str, generation: int) -> frozenset[str]:
    """The patients organisation ``ods`` has a care relationship with in the data
    (:func:`related_by_data`), read again only when the relationship ``generation``
    (:class:`RequestState`) moved on."""
    key = (str(conn.engine.url), ods, base, generation)
    with _RELATED_LOCK:
        found = _RELATED.get(key)
    if found is not None:
        return found
    found = frozenset(str(r[0]) for r in _related_statement(conn).rows(conn, prepare=True, ods=ods))
    with _RELATED_LOCK:
        if len(_RELATED) >= _MAX_RELATED:
            _RELATED.clear()
        _RELATED[key] = found
    return found


def forget_consents() -> None:
    """Drop the parsed Consents and relationships kept per generation (see
    :func:`active_consents` and :func:`related_ids`)."""
    with _LOCK:
        _CACHE.clear()
    with _RELATED_LOCK:
        _RELATED.clear()


def active_consents(
    conn: Connection, base: str, generation: int
) -> dict[str, tuple[PatientConsent, ...]]:
    """Every patient's active ``patient-privacy`` and ``research`` Consents, by patient id
    (``Consent.patient`` a local reference: relative, or absolute on ``base``), as of the
    Consent ``generation`` (:func:`request_state`)."""
    key = f"{conn.engine.url}|{base}"
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None and cached[0] == generation:
        return cached[1]
    found = _load(conn, base)
    with _LOCK:
        _CACHE[key] = (generation, found)
    return found


def _load(conn: Connection, base: str) -> dict[str, tuple[PatientConsent, ...]]:
    res = RESOURCE.alias()
    ver = VERSION.alias()
    ref = index_table("reference").alias()
    rows = conn.execute(
        select(ref.c.target_id, ver.c.data)
        .select_from(res)
        .join(ver, and_(ver.c.resource_key == res.c.key, ver.c.version_id == res.c.version_id))
        .join(ref, ref.c.resource_key == res.c.key)
        .where(
            *_live(res, "Consent"),
            ref.c.param == "patient",
            ref.c.target_type == "Patient",
            or_(ref.c.url.is_(None), ref.c.url.startswith(base + "/", autoescape=True)),
        )
    ).all()
    out: dict[str, list[PatientConsent]] = {}
    for patient_id, data in rows:
        parsed = parse_consent(jsonio.loads(bytes(data))) if data is not None else None
        if parsed is not None:
            out.setdefault(str(patient_id), []).append(parsed)
    return {pid: tuple(sorted(cs, key=lambda c: c.consent_id)) for pid, cs in out.items()}
