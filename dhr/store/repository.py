"""ResourceRepository: the only place where resource SQL lives.

Create, read, vread, update, delete and history primitives over the schema in
:mod:`dhr.store.models`, with version stamping (https://hl7.org/fhir/R4/resource.html#Meta) and
index maintenance in the caller's transaction. Version ids are gapless: an update locks the
resource row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions are exclusive).

The fixed statements of reads and writes run as driver SQL (:mod:`dhr.store.driver`); on
PostgreSQL they are prepared once per connection, and a single create, update or delete stores
the version, moves the resource's current pointer and replaces its index rows in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    Select,
    bindparam,
    exists,
    false,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant, now_micros
from dhr.search.extract import extract
from dhr.search.rows import IndexRow
from dhr.store.controller_codes import UNKNOWN, controller_codes
from dhr.store.driver import fetch, fetch_one
from dhr.store.index_writer import (
    drop_index_rows,
    flush_index_rows,
    forget_queued,
    pg_drop_ctes,
    pg_insert_ctes,
    pg_row_arrays,
    queue_index_rows,
)
from dhr.store.models import ResourceRow, VersionRow
from dhr.store.patient_key import SEVERAL, patient_key


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
    # The resource row's patient key (dhr/store/patient_key.py) when the statement read it with
    # a current version or wrote it (the audit then names the patient without parsing the
    # content); SEVERAL when not read, or when it says several patients or not worked out.
    patient: str | None = SEVERAL

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


VERSION_COLUMNS = _VERSION_COLUMNS
"""The columns of a :class:`StoredVersion`, in order (for statements built elsewhere that read
a version, such as a read and its consent decision in one: :mod:`dhr.access.policy`)."""


def version_from_driver_row(row: Sequence[Any], patient: str | None = SEVERAL) -> StoredVersion:
    """A :class:`StoredVersion` from the first eight columns of a driver row
    (:data:`VERSION_COLUMNS`), of the current version's ``patient`` key if read with it:
    SQLite hands back 0/1 for booleans, PostgreSQL may hand back a memoryview for BYTEA."""
    key, res_type, res_id, version_id, last_updated, method, deleted, data = row[:8]
    return StoredVersion(
        key,
        res_type,
        res_id,
        version_id,
        last_updated,
        method,
        bool(deleted),
        bytes(data) if data is not None else None,
        patient,
    )


# A new resource to insert: type, id, time, stored bytes, patient key, controllers.
_NewRow = tuple[str, str, int, bytes, str | None, str | None]


def _first_int(row: Sequence[Any] | None) -> int:
    """The first column of a row a statement must return (``RETURNING key``)."""
    assert row is not None
    return int(row[0])


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
        {
            c: bindparam(c)
            for c in (
                "res_type",
                "res_id",
                "version_id",
                "deleted",
                "last_updated",
                "patient_key",
                "controllers",
            )
        }
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
    .values(
        version_id=bindparam("v"),
        deleted=bindparam("d"),
        last_updated=bindparam("lu"),
        patient_key=bindparam("pk"),
        controllers=bindparam("ctl"),
    )
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


def _resource_values(
    res_type: str, res_id: str, now: int, key: str | None, controllers: str | None
) -> dict[str, Any]:
    return {
        "res_type": res_type,
        "res_id": res_id,
        "version_id": 1,
        "deleted": False,
        "last_updated": now,
        "patient_key": key,
        "controllers": controllers,
    }


def _version_values(
    key: int,
    res_type: str,
    res_id: str,
    now: int,
    method: str,
    data: bytes | None,
    version_id: int = 1,
) -> dict[str, Any]:
    """The column values of one version row; no bytes means the version is a deletion."""
    return {
        "resource_key": key,
        "res_type": res_type,
        "res_id": res_id,
        "version_id": version_id,
        "last_updated": now,
        "method": method,
        "deleted": data is None,
        "data": data,
    }


# Many new resources at once. PostgreSQL: one statement, one array per column; the resource
# keys come back with (type, id) so each version row finds its owner whatever the row order.
# Arrays go as binary parameters (``%b``): the server reads bytea and integers as sent, instead
# of parsing a text array of hex digits (and the driver writing one).
_PG_INSERT_NEW = """
WITH input AS (
    SELECT * FROM unnest(
        %(t)b::varchar[], %(i)b::varchar[], %(lu)b::bigint[], %(d)b::bytea[], %(pk)b::varchar[],
        %(ctl)b::varchar[]
    ) WITH ORDINALITY AS u(res_type, res_id, last_updated, data, patient_key, controllers, n)
), r AS (
    INSERT INTO resource
        (res_type, res_id, version_id, deleted, last_updated, patient_key, controllers)
    SELECT res_type, res_id, 1, false, last_updated, patient_key, controllers
    FROM input ORDER BY n
    RETURNING key, res_type, res_id
), v AS (
    INSERT INTO resource_version
        (resource_key, res_type, res_id, version_id, last_updated, method, deleted, data)
    SELECT r.key, input.res_type, input.res_id, 1, input.last_updated, %(m)s, false, input.data
    FROM input JOIN r ON r.res_type = input.res_type AND r.res_id = input.res_id
    ORDER BY input.n
    RETURNING key, resource_key, res_type, res_id
)
SELECT resource_key, key, res_type, res_id FROM v
"""
# PostgreSQL, one new resource: its resource row, its version and its index rows (CTEs that
# read the new key from ``r``) in one statement, prepared per set of index tables.
_PG_CREATE_ONE = (
    "r AS (INSERT INTO resource (res_type, res_id, version_id, deleted, last_updated, "
    "patient_key, controllers) VALUES (%(t)s::varchar, %(i)s::varchar, 1, false, "
    "%(lu)s::bigint, %(pk)s::varchar, %(ctl)s::varchar) RETURNING key, res_type)"
)
_PG_CREATE_VERSION = (
    "INSERT INTO resource_version (resource_key, res_type, res_id, version_id, last_updated, "
    "method, deleted, data) SELECT r.key, r.res_type, %(i)s::varchar, 1, %(lu)s::bigint, "
    "%(m)s::varchar, false, %(d)s::bytea FROM r RETURNING resource_key, key"
)
# PostgreSQL update or delete of a locked resource: point it at the new version, drop the old
# version's index rows (when there was one), insert the new version and its index rows (CTEs
# that read the owner from ``s``), as one statement.
_PG_SET_CURRENT = (
    "s AS (UPDATE resource SET version_id = %(version_id)s, deleted = %(deleted)s, "
    "last_updated = %(last_updated)s, patient_key = %(patient_key)s, "
    "controllers = %(controllers)s "
    "WHERE key = %(resource_key)s RETURNING key, res_type)"
)
_PG_ADD_VERSION = (
    "INSERT INTO resource_version (resource_key, res_type, res_id, version_id, last_updated, "
    "method, deleted, data) VALUES (%(resource_key)s, %(res_type)s, %(res_id)s, %(version_id)s, "
    "%(last_updated)s, %(method)s, %(deleted)s, %(data)s) RETURNING key"
)
_PG_DROPS = pg_drop_ctes("resource_key")
# SQLite: keys numbered by the writer (see create_many).
_SQLITE_MAX_KEY = "SELECT max(key) FROM resource"
_SQLITE_MAX_VERSION_KEY = "SELECT max(key) FROM resource_version"
_SQLITE_INSERT_RESOURCE = (
    "INSERT INTO resource (key, res_type, res_id, version_id, deleted, last_updated, patient_key, "
    "controllers) VALUES (?, ?, ?, 1, 0, ?, ?, ?)"
)
_SQLITE_INSERT_VERSION = (
    "INSERT INTO resource_version (key, resource_key, res_type, res_id, version_id, "
    "last_updated, method, deleted, data) VALUES (?, ?, ?, ?, 1, ?, ?, 0, ?)"
)


def _claim(dialect_insert: Any) -> Any:
    """A version-0 placeholder row for a new id; no row back when the id exists already."""
    return (
        dialect_insert(ResourceRow)
        .values(
            res_type=bindparam("t"),
            res_id=bindparam("i"),
            version_id=literal_column("0"),
            deleted=false(),
            last_updated=literal_column("0"),
        )
        .on_conflict_do_nothing(index_elements=["res_type", "res_id"])
        .returning(ResourceRow.key)
    )


_HOT: dict[str, Any] = {
    "read_current": _READ_CURRENT,
    "read_version": _READ_VERSION,
    "insert_resource": _INSERT_RESOURCE,
    "insert_version": _INSERT_VERSION,
    "lock": _LOCK,
    "set_current": _SET_CURRENT,
    "claim_pg": _claim(postgresql.insert),
    "claim_sqlite": _claim(sqlite.insert),
}


@cache
def _driver_sql(stmt_name: str, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """A hot statement compiled once per engine dialect to driver SQL and its parameter order."""
    compiled = _HOT[stmt_name].compile(dialect=dialect)
    if compiled.positiontup is not None:
        return str(compiled), tuple(compiled.positiontup)
    return str(compiled), ()


@cache
def _pg_create_one(names: tuple[str, ...]) -> str:
    """One new resource with index rows in the tables ``names``."""
    ctes = ", ".join((_PG_CREATE_ONE, pg_insert_ctes(names, "r")) if names else (_PG_CREATE_ONE,))
    return f"WITH {ctes} {_PG_CREATE_VERSION}"


@cache
def _pg_new_version(names: tuple[str, ...], replace: bool) -> str:
    """A new version of a locked resource, its index rows in ``names``; ``replace`` drops the
    rows of the version before."""
    ctes = [_PG_SET_CURRENT]
    if replace:
        ctes.append(_PG_DROPS)
    if names:
        ctes.append(pg_insert_ctes(names, "s"))
    return f"WITH {', '.join(ctes)} {_PG_ADD_VERSION}"


class ResourceRepository:
    """Storage primitives over one database connection (one unit of work)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    # -- reads ---------------------------------------------------------------------------

    def read_current(self, res_type: str, res_id: str) -> StoredVersion | None:
        """The current version (possibly a deletion), or None if the id was never used."""
        return self._hot("read_current", {"t": res_type, "i": res_id})

    def read_version(self, res_type: str, res_id: str, version_id: int) -> StoredVersion | None:
        return self._hot("read_version", {"t": res_type, "i": res_id, "v": version_id})

    def _exec(self, name: str, params: dict[str, Any]) -> Sequence[Any] | None:
        """Run a hot statement as precompiled driver SQL; its first row, if any.

        A lookup by unique key or a single-row write plans the same whatever the values, so
        PostgreSQL keeps it prepared.
        """
        sql, order = _driver_sql(name, self.conn.dialect)
        args: Any = tuple(params[k] for k in order) if order else params
        return fetch_one(self.conn, sql, args, prepare=True)

    def _hot(self, name: str, params: dict[str, Any]) -> StoredVersion | None:
        """A hot version read on the raw driver cursor, normalised across drivers.

        Reads are the most frequent request; skipping SQLAlchemy's result machinery here
        halves their cost on SQLite.
        """
        row = self._exec(name, params)
        return version_from_driver_row(row) if row is not None else None

    # -- writes --------------------------------------------------------------------------

    def create(
        self, res_type: str, res_id: str, body: dict[str, Any], method: str = "POST"
    ) -> StoredVersion:
        """Store version 1 of a new resource with a fresh id."""
        return self.create_many([(res_type, res_id, body)], method)[0]

    def create_many(
        self, items: Sequence[tuple[str, str, dict[str, Any]]], method: str = "POST"
    ) -> list[StoredVersion]:
        """Store version 1 of each new ``(type, id, body)``, in order, with few statements.

        PostgreSQL inserts every resource and version row in one statement; SQLite numbers the
        rows itself (the write transaction holds the database's only write lock, so
        ``max(key) + 1`` is what SQLite would choose) and inserts them with one
        ``executemany`` per table.
        """
        rows: list[_NewRow] = []
        indexed: list[list[IndexRow]] = []
        for res_type, res_id, body in items:
            now = now_micros()
            found = extract(res_type, body)
            pkey = patient_key(res_type, res_id, found)
            ctl = controller_codes(found)
            rows.append((res_type, res_id, now, stamp(body, res_id, 1, now), pkey, ctl))
            indexed.append(found)
        if not rows:
            return []
        if self.dialect == "postgresql" and len(rows) == 1:
            return [self._create_one_pg(rows[0], indexed[0], method)]
        if self.dialect == "postgresql":
            keys = self._insert_new_pg(rows, method)
        elif len(rows) == 1:
            res_type, res_id, now, data, pkey, ctl = rows[0]
            values = _resource_values(res_type, res_id, now, pkey, ctl)
            key = _first_int(self._exec("insert_resource", values))
            values = _version_values(key, res_type, res_id, now, method, data)
            keys = [(key, _first_int(self._exec("insert_version", values)))]
        else:
            keys = self._insert_new_sqlite(rows, method)
        out: list[StoredVersion] = []
        for (res_type, res_id, now, data, pkey, _), (key, vkey), found in zip(
            rows, keys, indexed, strict=True
        ):
            queue_index_rows(self.conn, key, res_type, found)
            out.append(StoredVersion(vkey, res_type, res_id, 1, now, method, False, data, pkey))
        return out

    def _create_one_pg(self, new: _NewRow, found: list[IndexRow], method: str) -> StoredVersion:
        """PostgreSQL: resource, version and index rows in one prepared statement."""
        res_type, res_id, now, data, pkey, ctl = new
        names, params = pg_row_arrays(found)
        params.update({"t": res_type, "i": res_id, "lu": now, "m": method, "d": data})
        params.update({"pk": pkey, "ctl": ctl})
        row = fetch_one(self.conn, _pg_create_one(names), params, prepare=True)
        assert row is not None
        return StoredVersion(int(row[1]), res_type, res_id, 1, now, method, False, data, pkey)

    def _insert_new_pg(self, rows: list[_NewRow], method: str) -> list[tuple[int, int]]:
        types, ids, times, datas, pkeys, ctls = (list(c) for c in zip(*rows, strict=True))
        params: dict[str, Any] = {"t": types, "i": ids, "lu": times, "d": datas, "m": method}
        params |= {"pk": pkeys, "ctl": ctls}
        # Not prepared: joining the returned keys back plans best knowing how many rows come.
        found = {
            (t, i): (int(k), int(vk)) for k, vk, t, i in fetch(self.conn, _PG_INSERT_NEW, params)
        }
        return [found[t, i] for t, i, _, _, _, _ in rows]

    def _insert_new_sqlite(self, rows: list[_NewRow], method: str) -> list[tuple[int, int]]:
        first = int(self.conn.exec_driver_sql(_SQLITE_MAX_KEY).scalar() or 0) + 1
        vfirst = int(self.conn.exec_driver_sql(_SQLITE_MAX_VERSION_KEY).scalar() or 0) + 1
        keys = [(first + n, vfirst + n) for n in range(len(rows))]
        self.conn.exec_driver_sql(
            _SQLITE_INSERT_RESOURCE,
            [
                (k, t, i, now, pk, ctl)
                for (k, _), (t, i, now, _, pk, ctl) in zip(keys, rows, strict=True)
            ],
        )
        self.conn.exec_driver_sql(
            _SQLITE_INSERT_VERSION,
            [
                (vk, k, t, i, now, method, data)
                for (k, vk), (t, i, now, data, _, _) in zip(keys, rows, strict=True)
            ],
        )
        return keys

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
        found = extract(res_type, body)
        facts = (patient_key(res_type, res_id, found), controller_codes(found))
        if self.dialect == "postgresql":
            stored = self._put_pg(
                key, res_type, res_id, version_id, now, method, body, current, found, facts
            )
            return stored, current == 0 or deleted
        current_values = {"k": key, "v": version_id, "d": False, "lu": now}
        self._exec("set_current", current_values | {"pk": facts[0], "ctl": facts[1]})
        if current:
            drop_index_rows(self.conn, key)
        data = stamp(body, res_id, version_id, now)
        values = _version_values(key, res_type, res_id, now, method, data, version_id)
        vkey = _first_int(self._exec("insert_version", values))
        queue_index_rows(self.conn, key, res_type, found)
        stored = StoredVersion(
            vkey, res_type, res_id, version_id, now, method, False, data, facts[0]
        )
        return stored, current == 0 or deleted

    def _put_pg(
        self,
        key: int,
        res_type: str,
        res_id: str,
        version_id: int,
        now: int,
        method: str,
        body: dict[str, Any],
        current: int,
        found: list[IndexRow],
        facts: tuple[str | None, str | None],
    ) -> StoredVersion:
        """PostgreSQL: the new current version, old index rows replaced, in one round trip."""
        data = stamp(body, res_id, version_id, now)
        names, params = pg_row_arrays(found)
        params.update(_version_values(key, res_type, res_id, now, method, data, version_id))
        params["patient_key"], params["controllers"] = facts
        if current:
            forget_queued(self.conn, key)
        sql = _pg_new_version(names, bool(current))
        vkey = _first_int(fetch_one(self.conn, sql, params, prepare=True))
        return StoredVersion(vkey, res_type, res_id, version_id, now, method, False, data, facts[0])

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
        values = _version_values(key, res_type, res_id, now, "DELETE", None, version_id)
        # A deletion has no references left to read: "several" keeps the decision on a deleted
        # resource what it was before the key existed (the references, now none).
        if self.dialect == "postgresql":
            forget_queued(self.conn, key)
            sql = _pg_new_version((), replace=True)
            params = {**values, "patient_key": SEVERAL, "controllers": UNKNOWN}
            vkey = _first_int(fetch_one(self.conn, sql, params, prepare=True))
        else:
            gone = {"pk": SEVERAL, "ctl": UNKNOWN}
            self._exec("set_current", {"k": key, "v": version_id, "d": True, "lu": now} | gone)
            drop_index_rows(self.conn, key)
            vkey = _first_int(self._exec("insert_version", values))
        return StoredVersion(vkey, res_type, res_id, version_id, now, "DELETE", True, None)

    def _lock(self, res_type: str, res_id: str) -> tuple[int, int, bool, int] | None:
        row = self._exec("lock", {"t": res_type, "i": res_id})
        return (int(row[0]), int(row[1]), bool(row[2]), int(row[3])) if row else None

    def _lock_or_insert(self, res_type: str, res_id: str) -> tuple[int, int, bool, int]:
        """Lock the resource row, inserting a version-0 placeholder first if there is none.

        ``ON CONFLICT DO NOTHING`` makes two concurrent creators of one id queue on the row
        instead of one of them failing on the unique constraint.
        """
        locked = self._lock(res_type, res_id)
        if locked is not None:
            return locked
        claim = "claim_pg" if self.dialect == "postgresql" else "claim_sqlite"
        row = self._exec(claim, {"t": res_type, "i": res_id})
        if row is not None:  # inserted by this transaction, so no one else can hold it
            return int(row[0]), 0, False, 0
        locked = self._lock(res_type, res_id)
        assert locked is not None  # inserted meanwhile by a transaction that committed
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
