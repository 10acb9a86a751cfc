"""SQL for the source-system registry (:mod:`dhr.record.sources`). Nothing here commits."""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, select, update

from dhr.record.sources import Source
from dhr.store.conflict import insert_if_absent
from dhr.store.driver import fetch_one
from dhr.store.record_models import SourceSystemRow

SOURCE = cast(Table, SourceSystemRow.__table__)


def _source(row: Row[Any]) -> Source:
    m = row._mapping
    return Source(
        source_id=m["source_id"],
        name=m["name"],
        supplier=m["supplier"],
        ods_code=m["ods_code"],
        client_id=m["client_id"],
        identifier_systems=tuple(json.loads(m["identifier_systems"] or "[]")),
        active=bool(m["active"]),
    )


def insert_source(conn: Connection, source: Source, created: int) -> bool:
    """Store a new source; False when its id or its client is already registered."""
    values = {
        "source_id": source.source_id,
        "name": source.name,
        "supplier": source.supplier,
        "ods_code": source.ods_code,
        "client_id": source.client_id,
        "identifier_systems": json.dumps(list(source.identifier_systems)),
        "active": source.active,
        "created": created,
    }
    return insert_if_absent(conn, SOURCE, values)


def get_source(conn: Connection, source_id: str) -> Source | None:
    row = conn.execute(select(SOURCE).where(SOURCE.c.source_id == source_id)).first()
    return _source(row) if row is not None else None


# Asked once per write request (is the writer a source?), so it runs as driver SQL.
_BY_CLIENT = (
    "SELECT source_id, name, supplier, ods_code, client_id, identifier_systems, active "
    "FROM source_system WHERE client_id = {c} AND active"
)


def source_for_client(conn: Connection, client_id: str) -> Source | None:
    """The active source a client authenticates as, or None."""
    if conn.dialect.name == "sqlite":
        row = fetch_one(conn, _BY_CLIENT.format(c="?"), (client_id,))
    else:
        row = fetch_one(conn, _BY_CLIENT.format(c="%(c)s"), {"c": client_id}, prepare=True)
    if row is None:
        return None
    sid, name, supplier, ods, client, systems, active = row
    return Source(
        sid, name, supplier, ods, client, tuple(json.loads(systems or "[]")), bool(active)
    )


def source_by_client(conn: Connection, client_id: str) -> Source | None:
    """The source bound to a client, active or not (one source per client), or None."""
    row = conn.execute(select(SOURCE).where(SOURCE.c.client_id == client_id)).first()
    return _source(row) if row is not None else None


def list_sources(conn: Connection) -> list[Source]:
    return [_source(r) for r in conn.execute(select(SOURCE).order_by(SOURCE.c.source_id))]


def set_source_active(conn: Connection, source_id: str, active: bool) -> bool:
    """Activate or deactivate a source; False when there is no such source."""
    stmt = update(SOURCE).where(SOURCE.c.source_id == source_id).values(active=active)
    return (conn.execute(stmt).rowcount or 0) > 0
