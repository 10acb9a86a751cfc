"""ResourceRepository: the only place where resource SQL lives.

Create, read, vread, update, delete and history primitives over the schema in
:mod:`dhr.store.models`, with version stamping (https://hl7.org/fhir/R4/resource.html#Meta) and
index maintenance in the caller's transaction. Version ids are gapless: an update locks the
resource row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions are exclusive).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    CursorResult,
    Row,
    Select,
    bindparam,
    exists,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant, now_micros
from dhr.search.extract import extract
from dhr.store.index_writer import drop_index_rows, flush_index_rows, queue_index_rows
from dhr.store.models import ResourceRow, VersionRow


@dataclass(frozen=True)
class StoredVersion:
    """One stored version of a resource, as read back from the database."""

    key: int
    res_type: str
    res_id: str
    version_id: int
    last_updated: int
    method: str
    deleted: bool
    data: bytes | None

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


class StaleVersion(Exception):  # noqa: N818 - a condition, not a crash
    """``If-Match`` named a version that is not the current one."""

    def __init__(self, current: int | None) -> None:
        super().__init__(current)
        self.current = current


_VERSION_COLUMNS = (
    VersionRow.key,
    VersionRow.res_type,
    VersionRow.res_id,
    VersionRow.version_id,
    VersionRow.last_updated,
    VersionRow.method,
    VersionRow.deleted,
    VersionRow.data,
)


def _stored(row: Sequence[Any]) -> StoredVersion:
    return StoredVersion(*row)


# Statements built once; only their parameters change per call (compiled-cache friendly).
_READ_CURRENT = (
    select(*_VERSION_COLUMNS)
    .join(ResourceRow, VersionRow.resource_key == ResourceRow.key)
    .where(
        ResourceRow.res_type == bindparam("t"),
        ResourceRow.res_id == bindparam("i"),
        VersionRow.version_id == ResourceRow.version_id,
    )
)
_READ_VERSION = (
    select(*_VERSION_COLUMNS)
    .join(ResourceRow, VersionRow.resource_key == ResourceRow.key)
    .where(
        ResourceRow.res_type == bindparam("t"),
        ResourceRow.res_id == bindparam("i"),
        VersionRow.version_id == bindparam("v"),
    )
)
_INSERT_RESOURCE = (
    insert(ResourceRow)
    .values(
        {c: bindparam(c) for c in ("res_type", "res_id", "version_id", "deleted", "last_updated")}
    )
    .returning(ResourceRow.key)
)
_VERSION_FIELDS = (
    "resource_key",
    "res_type",
    "res_id",
    "version_id",
    "last_updated",
    "method",
    "deleted",
    "data",
)
_INSERT_VERSION = (
    insert(VersionRow).values({c: bindparam(c) for c in _VERSION_FIELDS}).returning(VersionRow.key)
)
_LOCK = (
    select(ResourceRow.key, ResourceRow.version_id, ResourceRow.deleted, ResourceRow.last_updated)
    .where(ResourceRow.res_type == bindparam("t"), ResourceRow.res_id == bindparam("i"))
    .with_for_update()
)
_SET_CURRENT = (
    update(ResourceRow)
    .where(ResourceRow.key == bindparam("k"))
    .values(version_id=bindparam("v"), deleted=bindparam("d"), last_updated=bindparam("lu"))
)


def stamp(body: dict[str, Any], res_id: str, version_id: int, last_updated: int) -> bytes:
    """The stored bytes: ``resourceType``, ``id`` and ``meta`` first, version and time filled in."""
    meta = dict(body.get("meta") or {})
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = format_instant(last_updated)
    out: dict[str, Any] = {"resourceType": body["resourceType"], "id": res_id, "meta": meta}
    for k, v in body.items():
        if k not in out:
            out[k] = v
    return jsonio.dumps(out)


_HOT: dict[str, Any] = {
    "read_current": _READ_CURRENT,
    "read_version": _READ_VERSION,
    "insert_resource": _INSERT_RESOURCE,
    "insert_version": _INSERT_VERSION,
    "lock": _LOCK,
    "set_current": _SET_CURRENT,
}


@cache
def _driver_sql(stmt_name: str, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """A hot statement compiled once per engine dialect to driver SQL and its parameter order."""
    compiled = _HOT[stmt_name].compile(dialect=dialect)
    if compiled.positiontup is not None:
        return str(compiled), tuple(compiled.positiontup)
    return str(compiled), ()


class ResourceRepository:
    """Storage primitives over one database connection (one unit of work)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    # -- reads ---------------------------------------------------------------------------

    def read_current(self, res_type: str, res_id: str) -> StoredVersion | None:
        """The current version (possibly a deletion), or None if the id was never used."""
        row = self._hot("read_current", {"t": res_type, "i": res_id})
        return _stored(row) if row else None

    def read_version(self, res_type: str, res_id: str, version_id: int) -> StoredVersion | None:
        row = self._hot("read_version", {"t": res_type, "i": res_id, "v": version_id})
        return _stored(row) if row else None

    def _exec(self, name: str, params: dict[str, Any]) -> CursorResult[Any]:
        """Run a hot statement as precompiled driver SQL (skips per-call statement processing)."""
        sql, order = _driver_sql(name, self.conn.dialect)
        args: Any = tuple(params[k] for k in order) if order else params
        return self.conn.exec_driver_sql(sql, args)

    def _hot(self, name: str, params: dict[str, Any]) -> Sequence[Any] | None:
        """A hot version read on the raw driver cursor, normalised across drivers.

        Reads are the most frequent request; skipping SQLAlchemy's result machinery here
        halves their cost on SQLite.
        """
        sql, order = _driver_sql(name, self.conn.dialect)
        args: Any = tuple(params[k] for k in order) if order else params
        cursor = self.conn.connection.cursor()
        try:
            cursor.execute(sql, args)
            row: Sequence[Any] | None = cursor.fetchone()
        finally:
            cursor.close()
        if row is None:
            return None
        # SQLite hands back 0/1 for booleans; PostgreSQL may hand back a memoryview for BYTEA.
        data = row[7]
        return (*row[:6], bool(row[6]), bytes(data) if data is not None else None)

    # -- writes --------------------------------------------------------------------------

    def create(
        self, res_type: str, res_id: str, body: dict[str, Any], method: str = "POST"
    ) -> StoredVersion:
        """Store version 1 of a new resource with a fresh id."""
        now = now_micros()
        values = {
            "res_type": res_type,
            "res_id": res_id,
            "version_id": 1,
            "deleted": False,
            "last_updated": now,
        }
        key = self._exec("insert_resource", values).scalar_one()
        return self._add_version(key, res_type, res_id, 1, now, method, body)

    def put(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        if_match: int | None = None,
        method: str = "PUT",
    ) -> tuple[StoredVersion, bool]:
        """Update (or create with this id). Returns the new version and whether it was created.

        Raises :class:`StaleVersion` when ``if_match`` is not the current version.
        """
        key, current, deleted, last = self._lock_or_insert(res_type, res_id)
        if if_match is not None and (if_match != current or deleted):
            raise StaleVersion(None if current == 0 else current)
        version_id = current + 1
        now = max(now_micros(), last + 1)
        self._exec("set_current", {"k": key, "v": version_id, "d": False, "lu": now})
        if current:
            drop_index_rows(self.conn, key)
        stored = self._add_version(key, res_type, res_id, version_id, now, method, body)
        return stored, current == 0 or deleted

    def delete(
        self, res_type: str, res_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        """Record a deletion as a new version; None when there was nothing live to delete."""
        locked = self._lock(res_type, res_id)
        if locked is None:
            if if_match is not None:
                raise StaleVersion(None)
            return None
        key, current, deleted, last = locked
        if if_match is not None and if_match != current:
            raise StaleVersion(current)
        if deleted:
            return None
        version_id = current + 1
        now = max(now_micros(), last + 1)
        self._exec("set_current", {"k": key, "v": version_id, "d": True, "lu": now})
        drop_index_rows(self.conn, key)
        values = {
            "resource_key": key,
            "res_type": res_type,
            "res_id": res_id,
            "version_id": version_id,
            "last_updated": now,
            "method": "DELETE",
            "deleted": True,
            "data": None,
        }
        vkey = self._exec("insert_version", values).scalar_one()
        return StoredVersion(vkey, res_type, res_id, version_id, now, "DELETE", True, None)

    def _add_version(
        self,
        key: int,
        res_type: str,
        res_id: str,
        version_id: int,
        now: int,
        method: str,
        body: dict[str, Any],
    ) -> StoredVersion:
        data = stamp(body, res_id, version_id, now)
        values = {
            "resource_key": key,
            "res_type": res_type,
            "res_id": res_id,
            "version_id": version_id,
            "last_updated": now,
            "method": method,
            "deleted": False,
            "data": data,
        }
        vkey = self._exec("insert_version", values).scalar_one()
        queue_index_rows(self.conn, key, res_type, extract(res_type, body))
        return StoredVersion(vkey, res_type, res_id, version_id, now, method, False, data)

    def _lock(self, res_type: str, res_id: str) -> tuple[int, int, bool, int] | None:
        row: Sequence[Any] | None = self._exec("lock", {"t": res_type, "i": res_id}).first()
        return (int(row[0]), int(row[1]), bool(row[2]), int(row[3])) if row else None

    def _lock_or_insert(self, res_type: str, res_id: str) -> tuple[int, int, bool, int]:
        """Lock the resource row, inserting a version-0 placeholder first if there is none.

        ``ON CONFLICT DO NOTHING`` makes two concurrent creators of one id queue on the row
        instead of one of them failing on the unique constraint.
        """
        locked = self._lock(res_type, res_id)
        if locked is not None:
            return locked
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        self.conn.execute(
            dialect_insert(ResourceRow)
            .values(res_type=res_type, res_id=res_id, version_id=0, deleted=False, last_updated=0)
            .on_conflict_do_nothing(index_elements=["res_type", "res_id"])
        )
        locked = self._lock(res_type, res_id)
        assert locked is not None  # inserted above or present already
        return locked

    # -- search (statements compiled by dhr.search.compile) -------------------------------

    def search(self, stmt: Select[Any]) -> list[Row[Any]]:
        """Run a compiled search statement and return its rows."""
        flush_index_rows(self.conn)
        return list(self.conn.execute(stmt).all())

    def count(self, stmt: Select[Any]) -> int:
        """Run a compiled count statement."""
        flush_index_rows(self.conn)
        return int(self.conn.execute(stmt).scalar_one())

    # -- history -------------------------------------------------------------------------

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: int | None,
        at: tuple[int, int] | None,
        count: int,
        before_key: int | None,
    ) -> list[StoredVersion]:
        """Versions newest first (by server-wide write order), ``count`` at most."""
        stmt = select(*_VERSION_COLUMNS)
        if res_type is not None:
            stmt = stmt.where(VersionRow.res_type == res_type)
        if res_id is not None:
            owner = select(ResourceRow.key).where(
                ResourceRow.res_type == res_type, ResourceRow.res_id == res_id
            )
            stmt = stmt.where(VersionRow.resource_key == owner.scalar_subquery())
        if since is not None:
            stmt = stmt.where(VersionRow.last_updated >= since)
        if at is not None:
            start, end = at
            later = VersionRow.__table__.alias("later")
            stmt = stmt.where(
                VersionRow.last_updated < end,
                ~exists().where(
                    later.c.resource_key == VersionRow.resource_key,
                    later.c.version_id == VersionRow.version_id + 1,
                    later.c.last_updated <= start,
                ),
            )
        if before_key is not None:
            stmt = stmt.where(VersionRow.key < before_key)
        rows = self.conn.execute(stmt.order_by(VersionRow.key.desc()).limit(count)).all()
        return [_stored(r) for r in rows]
