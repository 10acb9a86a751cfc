"""SQL of the unified record's own tables (:mod:`dhr.store.record_models`). Nothing here commits.

Source identities (a source's own keys for the resources it sent), master Patients (one per NHS
number, claimed with ``INSERT ... ON CONFLICT DO NOTHING`` so that two concurrent ingests of one
person agree on one master), patient links and their event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import Connection, Row, Table, insert, select, update

from dhr.store.conflict import insert_for
from dhr.store.driver import fetch
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


# The keys of every type a Bundle holds in one statement (a round trip per type was an eighth
# of a PostgreSQL transaction; on SQLite, building a statement per type cost as much): each
# wanted (type, value) is an index lookup of the unique (source_id, res_type, local_key), or
# of (res_type, res_id). SQLite reads the pairs from a JSON array (json_each); CROSS JOIN keeps
# them the outer loop.
_KEYS_SQL = {
    "postgresql": (
        "SELECT i.res_type, i.local_key, i.res_id FROM source_identity AS i "
        "JOIN unnest(%(types)b::varchar[], %(values)b::varchar[]) AS w(t, v) "
        "ON i.source_id = %(source)s AND i.res_type = w.t AND i.local_key = w.v"
    ),
    "sqlite": (
        "SELECT i.res_type, i.local_key, i.res_id FROM json_each(?) AS w "
        "CROSS JOIN source_identity AS i ON i.source_id = ? "
        "AND i.res_type = json_extract(w.value, '$[0]') "
        "AND i.local_key = json_extract(w.value, '$[1]')"
    ),
}
_OWNED_SQL = {
    "postgresql": (
        "SELECT DISTINCT i.res_type, i.res_id FROM source_identity AS i "
        "JOIN unnest(%(types)b::varchar[], %(values)b::varchar[]) AS w(t, v) "
        "ON i.res_type = w.t AND i.res_id = w.v AND i.source_id = %(source)s"
    ),
    "sqlite": (
        "SELECT DISTINCT i.res_type, i.res_id FROM json_each(?) AS w "
        "CROSS JOIN source_identity AS i ON i.res_type = json_extract(w.value, '$[0]') "
        "AND i.res_id = json_extract(w.value, '$[1]') AND i.source_id = ?"
    ),
}


def _pairs_query(
    conn: Connection, sql: dict[str, str], source_id: str, wanted: Mapping[str, Sequence[str]]
) -> list[Sequence[Any]]:
    pairs = sorted({(t, v) for t, values in wanted.items() for v in values})
    if not pairs:
        return []
    if conn.dialect.name == "postgresql":
        types, values = [t for t, _ in pairs], [v for _, v in pairs]
        params: Any = {"types": types, "values": values, "source": source_id}
        return fetch(conn, sql["postgresql"], params)
    return fetch(conn, sql["sqlite"], (orjson.dumps(pairs).decode(), source_id))


def lookup_keys(
    conn: Connection, source_id: str, wanted: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, str]]:
    """``type -> local key -> server id`` for the keys of each type this source already used
    (every type of ``wanted`` is in the answer)."""
    out: dict[str, dict[str, str]] = {t: {} for t in wanted}
    for res_type, key, res_id in _pairs_query(conn, _KEYS_SQL, source_id, wanted):
        out[str(res_type)][str(key)] = str(res_id)
    return out


def source_owns(
    conn: Connection, source_id: str, wanted: Mapping[str, Sequence[str]]
) -> dict[str, set[str]]:
    """``type -> ids``: which of the wanted ids of each type this source sent (it has keys for
    them)."""
    out: dict[str, set[str]] = {t: set() for t in wanted}
    for res_type, res_id in _pairs_query(conn, _OWNED_SQL, source_id, wanted):
        out[str(res_type)].add(str(res_id))
    return out


# Driver-level: SQLAlchemy's executemany compiled parameters per row (a sixth of the ingest's
# bookkeeping after the writes); one row is (source_id, res_type, local_key, res_id, record_id).
# PostgreSQL: one statement over binary arrays, one per column (an executemany ran one INSERT
# per row on the server: 5% of a transaction pass).
_PG_INSERT_KEYS = (
    "INSERT INTO source_identity (source_id, res_type, local_key, res_id, record_id) "
    "SELECT * FROM unnest(%b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], "
    "%b::varchar[]) ON CONFLICT DO NOTHING"
)
_SQLITE_INSERT_KEYS = (
    "INSERT INTO source_identity (source_id, res_type, local_key, res_id, record_id) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
IdentityRow = tuple[str, str, str, str, str | None]


def insert_keys(conn: Connection, rows: Sequence[IdentityRow]) -> None:
    """New source identities (``source_id, res_type, local_key, res_id, record_id``); keys
    already held are left as they are."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        columns = tuple(list(column) for column in zip(*rows, strict=True))
        fetch(conn, _PG_INSERT_KEYS, columns, prepare=True)
        return
    conn.exec_driver_sql(_SQLITE_INSERT_KEYS, list(rows))


def resources_about(conn: Connection, record_id: str) -> list[tuple[str, str]]:
    """``(type, id)`` of everything sources sent about the Patient record ``record_id``."""
    rows = conn.execute(
        select(IDENTITY.c.res_type, IDENTITY.c.res_id)
        .where(IDENTITY.c.record_id == record_id)
        .distinct()
    )
    return sorted((str(t), str(i)) for t, i in rows)


# --- master Patients -------------------------------------------------------------------------


def claim_masters(
    conn: Connection, wanted: Mapping[str, str], now: int
) -> dict[str, tuple[str, bool]]:
    """``NHS number -> (master Patient id, created)`` for each number of ``wanted``: its
    existing master, or else the new id ``wanted`` offers for it (then True).

    One insert per 500 numbers, in number order (two ingests claiming overlapping numbers
    take the rows' locks in one order), then one read of the masters that already existed.
    """
    made: dict[str, str] = {}
    for part in _chunks(sorted(wanted)):
        stmt = (
            insert_for(conn, MASTER)
            .values([{"nhs_number": n, "res_id": wanted[n], "created": now} for n in part])
            .on_conflict_do_nothing()
            .returning(MASTER.c.nhs_number, MASTER.c.res_id)
        )
        made.update({str(n): str(i) for n, i in conn.execute(stmt)})
    found = masters_of(conn, [n for n in wanted if n not in made])
    return {n: (made[n], True) if n in made else (found[n], False) for n in wanted}


def _where_in(conn: Connection, query: str, column: str, wanted: Sequence[str]) -> list[Any]:
    """The rows of ``query`` (a driver SQL ``SELECT ... FROM table``) whose ``column`` is one
    of ``wanted``: one statement, however many (an array on PostgreSQL, a JSON array read by
    ``json_each`` on SQLite). Names are our own constants, never input."""
    values = sorted(set(wanted))
    if not values:
        return []
    if conn.dialect.name == "postgresql":
        return fetch(conn, f"{query} WHERE {column} = ANY(%(v)b::varchar[])", {"v": values})
    sql = f"{query} WHERE {column} IN (SELECT value FROM json_each(?))"  # noqa: S608
    return fetch(conn, sql, (orjson.dumps(values).decode(),))


def _master_pairs(conn: Connection, key: str, value: str, wanted: Sequence[str]) -> dict[str, str]:
    """``key -> value`` (two columns of ``master_patient``) for the ``wanted`` keys found."""
    rows = _where_in(conn, f"SELECT {key}, {value} FROM master_patient", key, wanted)  # noqa: S608
    return {str(k): str(v) for k, v in rows}


def masters_of(conn: Connection, nhs_numbers: Sequence[str]) -> dict[str, str]:
    """``NHS number -> master id`` for the numbers that have a master."""
    return _master_pairs(conn, "nhs_number", "res_id", nhs_numbers)


def master_nhs_numbers(conn: Connection, master_ids: Sequence[str]) -> dict[str, str]:
    """``master id -> NHS number`` for the ids that are masters."""
    return _master_pairs(conn, "res_id", "nhs_number", master_ids)


# --- links -------------------------------------------------------------------------------------


class LinkRow(NamedTuple):
    """A row of ``patient_link``."""

    record_id: str
    source_id: str | None
    nhs_number: str | None
    master_id: str | None
    registered_at: int
    updated: int


_LINKS = (
    "SELECT record_id, source_id, nhs_number, master_id, registered_at, updated FROM patient_link"
)


def link_rows(conn: Connection, record_ids: Sequence[str]) -> dict[str, LinkRow]:
    """The link rows of the records of ``record_ids`` that have one."""
    rows = (LinkRow(*row) for row in _where_in(conn, _LINKS, "record_id", record_ids))
    return {row.record_id: row for row in rows}


def records_of_masters(conn: Connection, master_ids: Sequence[str]) -> dict[str, list[LinkRow]]:
    """The link rows of the records linked to each of ``master_ids`` (by record id)."""
    out: dict[str, list[LinkRow]] = {m: [] for m in master_ids}
    rows = sorted(LinkRow(*row) for row in _where_in(conn, _LINKS, "master_id", master_ids))
    for row in rows:
        out[str(row.master_id)].append(row)
    return out


def save_link(
    conn: Connection,
    record_id: str,
    source_id: str | None,
    nhs_number: str | None,
    master_id: str | None,
    registered_at: int,
    now: int,
) -> None:
    """Change the link row of ``record_id``, or add it."""
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


def add_links(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add link rows of records that had none (each a mapping of every column), in one
    statement."""
    if rows:
        conn.execute(insert(LINK), list(rows))


def add_link_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
    """Log link changes (each: ``record_id``, ``action``, ``master_id``,
    ``previous_master_id``, ``actor``, ``reason``, ``at``), in order, in one statement."""
    if events:
        conn.execute(insert(LINK_EVENT), list(events))


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
    """Log one link change (an administrator's link or unlink)."""
    add_link_events(
        conn,
        [
            {
                "record_id": record_id,
                "action": action,
                "master_id": master_id,
                "previous_master_id": previous_master_id,
                "actor": actor,
                "reason": reason,
                "at": now,
            }
        ],
    )


def link_events(conn: Connection, record_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(LINK_EVENT).where(LINK_EVENT.c.record_id == record_id).order_by(LINK_EVENT.c.key)
        )
    )
