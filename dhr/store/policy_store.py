"""The facts the consent decision reads, as SQL: care relationships, the national data opt-out,
access claims (break-glass, self-claimed relationships) and the patients' active Consents.

ARCHITECTURE.md "The policy layer". Each fact is a subquery of patient ids (``SELECT id``) that
:mod:`dhr.access.policy_sql` puts into a search as ``pid IN (...)``:

* **care relationship** of an organisation (ODS code) with a patient: the Patient names the
  organisation as ``managingOrganization`` or ``generalPractitioner`` (the registered practice),
  or an ``in-progress`` Encounter of the patient has it as ``serviceProvider``, or an ``active``
  EpisodeOfCare of the patient has it as ``managingOrganization``; a source Patient record's
  registration counts for the master its ``link`` names. Plus the requester's own self-claimed
  relationships in force (``access_claim`` kind ``relationship``);
* **national data opt-out**: Patients carrying an NHS number recorded in ``data_opt_out``;
* **break-glass**: the requester's break-glass declarations in force (``access_claim``).

Active Consents (https://hl7.org/fhir/R4/consent.html) are read whole and parsed once per change:
:func:`active_consents` is cached per database and per "Consent generation" (the newest
``resource_version`` key of type Consent, one index probe), so a request pays for parsing only
after a Consent was written.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
)

from consent.model import PatientConsent
from consent.provisions import parse_consent
from dhr.fhir import jsonio
from dhr.fhir.instant import now_micros
from dhr.record.vocab import NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM
from dhr.search.sql.predicate import index_table
from dhr.store.arrangement_store import ARRANGEMENT
from dhr.store.conflict import insert_if_absent
from dhr.store.models import ResourceRow, VersionRow
from dhr.store.policy_models import AccessClaimRow, DataOptOutRow

RESOURCE = ResourceRow.__table__
VERSION = VersionRow.__table__
OPT_OUT = cast(Table, DataOptOutRow.__table__)
CLAIM = cast(Table, AccessClaimRow.__table__)
BREAK_GLASS, RELATIONSHIP = "break-glass", "relationship"


def _live(alias: Any, res_type: str) -> list[Any]:
    return [alias.c.res_type == res_type, alias.c.deleted.is_(False), alias.c.version_id > 0]


def organisations(ods: str) -> Select[tuple[str]]:
    """Ids of the Organizations identified by ODS code ``ods``."""
    org = RESOURCE.alias()
    tok = index_table("token").alias()
    return (
        select(org.c.res_id)
        .join(tok, tok.c.resource_key == org.c.key)
        .where(
            *_live(org, "Organization"),
            tok.c.res_type == "Organization",
            tok.c.param == "identifier",
            tok.c.system == ODS_CODE_SYSTEM,
            tok.c.code == ods,
        )
    )


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


def related_patients(ods: str, subject: str, now: int | None) -> CompoundSelect[tuple[str]]:
    """Ids of the patients organisation ``ods`` (and requester ``subject``) cares for.

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
        _claimed(RELATIONSHIP, subject, now),
    )


def claimed_patients(subject: str, now: int | None) -> Select[tuple[str]]:
    """Ids of the patients ``subject`` claimed a relationship with (no organisation needed)."""
    return _claimed(RELATIONSHIP, subject, now)


def _claimed(kind: str, subject: str, now: int | None) -> Select[tuple[str]]:
    """``now`` None: the time the statement runs (the subquery can then be kept and reused)."""
    moment: Any = now if now is not None else bindparam(None, callable_=now_micros)
    return select(CLAIM.c.patient_id).where(
        CLAIM.c.subject == subject, CLAIM.c.kind == kind, CLAIM.c.expires > moment
    )


def glass_broken_patients(subject: str, now: int | None) -> Select[tuple[str]]:
    """Ids of the patients ``subject`` has a break-glass declaration in force for."""
    return _claimed(BREAK_GLASS, subject, now)


def opted_out_patients(patient_id: str | None = None) -> Select[tuple[str]]:
    """Ids of the Patients whose NHS number has a national data opt-out (``patient_id``: only
    that one, if so)."""
    pat = RESOURCE.alias()
    tok = index_table("token").alias()
    only = [pat.c.res_id == patient_id] if patient_id is not None else []
    return (
        select(pat.c.res_id)
        .join(tok, tok.c.resource_key == pat.c.key)
        .where(
            *_live(pat, "Patient"),
            tok.c.res_type == "Patient",
            tok.c.param == "identifier",
            tok.c.system == NHS_NUMBER_SYSTEM,
            tok.c.code.in_(select(OPT_OUT.c.nhs_number)),
            *only,
        )
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
_GENERATIONS = select(
    select(func.max(VERSION.c.key)).where(VERSION.c.res_type == "Consent").scalar_subquery(),
    select(func.max(ARRANGEMENT.c.version)).scalar_subquery(),
)


def generations(conn: Connection) -> tuple[int, int]:
    """(the newest Consent version's key, the arrangement's version): what a compiled policy
    depends on besides the request, read in one statement."""
    row = conn.execute(_GENERATIONS).one()
    return int(row[0] or 0), int(row[1] or 0)


def forget_consents() -> None:
    """Drop the parsed Consents kept per generation (see :func:`active_consents`)."""
    with _LOCK:
        _CACHE.clear()


def active_consents(
    conn: Connection, base: str, generation: int
) -> dict[str, tuple[PatientConsent, ...]]:
    """Every patient's active ``patient-privacy`` and ``research`` Consents, by patient id
    (``Consent.patient`` a local reference: relative, or absolute on ``base``), as of the
    Consent ``generation`` (:func:`generations`)."""
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
