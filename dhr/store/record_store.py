"""SQL of the unified record's own tables (:mod:`dhr.store.record_models`). Nothing here commits.

Source identities (a source's own keys for the resources it sent), master Patients (one per NHS
number, claimed with ``INSERT ... ON CONFLICT DO NOTHING`` so that two concurrent ingests of one
person agree on one master), patient links and their event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, insert, select, text, update

from dhr.store.conflict import insert_for
from dhr.store.record_models import (
    MasterPatientRow,
    PatientLinkEventRow,
    PatientLinkRow,
    SourceIdentityRow,
)

IDENTITY = cast(Table, SourceIdentityRow.__table__)
MASTER = cast(Table, MasterPatientRow.__table__)
LINK = cast(Table, PatientLinkRow.__table__)
LINK_EVENT = cast(Table, PatientLinkEventRow.__table__)
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i : i + _CHUNK]


# --- source identities -------------------------------------------------------------------


def lookup_keys(
    conn: Connection, source_id: str, res_type: str, keys: Sequence[str]
) -> dict[str, str]:
    """``local key -> server id`` for the keys of ``res_type`` this source already used."""
    out: dict[str, str] = {}
    unique = sorted(set(keys))
    for part in _chunks(unique):
        rows = conn.execute(
            select(IDENTITY.c.local_key, IDENTITY.c.res_id).where(
                IDENTITY.c.source_id == source_id,
                IDENTITY.c.res_type == res_type,
                IDENTITY.c.local_key.in_(part),
            )
        )
        out.update({str(k): str(v) for k, v in rows})
    return out


# PostgreSQL: the keys of every type in one round trip, each (type, key) an index lookup of
# the unique (source_id, res_type, local_key) constraint.
_PG_KEYS_OF_TYPES = text(
    "SELECT i.res_type, i.local_key, i.res_id FROM source_identity AS i "
    "JOIN unnest(CAST(:types AS varchar[]), CAST(:keys AS varchar[])) AS w(t, k) "
    "ON i.source_id = :source AND i.res_type = w.t AND i.local_key = w.k"
)
_PG_OWNED_OF_TYPES = text(
    "SELECT DISTINCT i.res_type, i.res_id FROM source_identity AS i "
    "JOIN unnest(CAST(:types AS varchar[]), CAST(:ids AS varchar[])) AS w(t, r) "
    "ON i.res_type = w.t AND i.res_id = w.r AND i.source_id = :source"
)


def _pairs(wanted: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    pairs = sorted({(t, v) for t, values in wanted.items() for v in values})
    return [t for t, _ in pairs], [v for _, v in pairs]


def lookup_keys_of_types(
    conn: Connection, source_id: str, wanted: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, str]]:
    """:func:`lookup_keys` for several types: ``type -> local key -> server id``. On
    PostgreSQL one statement for all of them (a Bundle holds a dozen types: a round trip each
    was an eighth of a transaction there)."""
    if conn.dialect.name != "postgresql":
        return {t: lookup_keys(conn, source_id, t, keys) for t, keys in wanted.items()}
    out: dict[str, dict[str, str]] = {t: {} for t in wanted}
    types, keys = _pairs(wanted)
    if keys:
        found = conn.execute(_PG_KEYS_OF_TYPES, {"types": types, "keys": keys, "source": source_id})
        for res_type, key, res_id in found:
            out[str(res_type)][str(key)] = str(res_id)
    return out


def source_owns_of_types(
    conn: Connection, source_id: str, wanted: Mapping[str, Sequence[str]]
) -> dict[str, set[str]]:
    """:func:`source_owns` for several types (``type -> ids``), on PostgreSQL in one statement."""
    if conn.dialect.name != "postgresql":
        return {t: source_owns(conn, source_id, t, ids) for t, ids in wanted.items()}
    out: dict[str, set[str]] = {t: set() for t in wanted}
    types, ids = _pairs(wanted)
    if ids:
        found = conn.execute(_PG_OWNED_OF_TYPES, {"types": types, "ids": ids, "source": source_id})
        for res_type, res_id in found:
            out[str(res_type)].add(str(res_id))
    return out


def source_owns(
    conn: Connection, source_id: str, res_type: str, res_ids: Sequence[str]
) -> set[str]:
    """Which of ``res_ids`` this source sent (it has keys for them)."""
    out: set[str] = set()
    for part in _chunks(sorted(set(res_ids))):
        rows = conn.execute(
            select(IDENTITY.c.res_id)
            .where(
                IDENTITY.c.res_type == res_type,
                IDENTITY.c.res_id.in_(part),
                IDENTITY.c.source_id == source_id,
            )
            .distinct()
        )
        out.update(str(r[0]) for r in rows)
    return out


def insert_keys(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """New source identities (``source_id, res_type, local_key, res_id, record_id``); keys
    already held are left as they are."""
    if not rows:
        return
    stmt = insert_for(conn, IDENTITY).on_conflict_do_nothing()
    for i in range(0, len(rows), _CHUNK):
        conn.execute(stmt, list(rows[i : i + _CHUNK]))


def resources_about(conn: Connection, record_id: str) -> list[tuple[str, str]]:
    """``(type, id)`` of everything sources sent about the Patient record ``record_id``."""
    rows = conn.execute(
        select(IDENTITY.c.res_type, IDENTITY.c.res_id)
        .where(IDENTITY.c.record_id == record_id)
        .distinct()
    )
    return sorted((str(t), str(i)) for t, i in rows)


# --- master Patients -------------------------------------------------------------------------


def claim_master(conn: Connection, nhs_number: str, new_id: str, now: int) -> tuple[str, bool]:
    """The master Patient id of ``nhs_number``: the existing one, or ``new_id`` (then True)."""
    stmt = (
        insert_for(conn, MASTER)
        .values(nhs_number=nhs_number, res_id=new_id, created=now)
        .on_conflict_do_nothing()
        .returning(MASTER.c.res_id)
    )
    if conn.execute(stmt).first() is not None:
        return new_id, True
    found = conn.execute(select(MASTER.c.res_id).where(MASTER.c.nhs_number == nhs_number)).first()
    assert found is not None
    return str(found[0]), False


def masters_of(conn: Connection, nhs_numbers: Sequence[str]) -> dict[str, str]:
    """``NHS number -> master id`` for the numbers that have a master."""
    out: dict[str, str] = {}
    for part in _chunks(sorted(set(nhs_numbers))):
        rows = conn.execute(
            select(MASTER.c.nhs_number, MASTER.c.res_id).where(MASTER.c.nhs_number.in_(part))
        )
        out.update({str(n): str(i) for n, i in rows})
    return out


def master_nhs_number(conn: Connection, master_id: str) -> str | None:
    found = conn.execute(select(MASTER.c.nhs_number).where(MASTER.c.res_id == master_id)).first()
    return str(found[0]) if found is not None else None


# --- links -------------------------------------------------------------------------------------


def link_rows(conn: Connection, record_ids: Sequence[str]) -> dict[str, Row[Any]]:
    out: dict[str, Row[Any]] = {}
    for part in _chunks(sorted(set(record_ids))):
        for row in conn.execute(select(LINK).where(LINK.c.record_id.in_(part))):
            out[str(row.record_id)] = row
    return out


def records_of_master(conn: Connection, master_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(select(LINK).where(LINK.c.master_id == master_id).order_by(LINK.c.record_id))
    )


def save_link(
    conn: Connection,
    record_id: str,
    source_id: str | None,
    nhs_number: str | None,
    master_id: str | None,
    registered_at: int,
    now: int,
) -> None:
    values = {
        "source_id": source_id,
        "nhs_number": nhs_number,
        "master_id": master_id,
        "registered_at": registered_at,
        "updated": now,
    }
    done = conn.execute(update(LINK).where(LINK.c.record_id == record_id).values(**values))
    if not done.rowcount:
        conn.execute(insert(LINK).values(record_id=record_id, **values))


def add_link_event(
    conn: Connection,
    record_id: str,
    action: str,
    master_id: str | None,
    previous_master_id: str | None,
    actor: str,
    reason: str | None,
    now: int,
) -> None:
    conn.execute(
        insert(LINK_EVENT).values(
            record_id=record_id,
            action=action,
            master_id=master_id,
            previous_master_id=previous_master_id,
            actor=actor,
            reason=reason,
            at=now,
        )
    )


def link_events(conn: Connection, record_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(LINK_EVENT).where(LINK_EVENT.c.record_id == record_id).order_by(LINK_EVENT.c.key)
        )
    )
