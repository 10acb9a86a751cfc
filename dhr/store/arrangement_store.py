"""SQL for the versioned joint-controller arrangement (:mod:`dhr.record.arrangement`).

ARCHITECTURE.md "The unified record", Controllers: the arrangement is data, versioned. Each
recorded document gets the next version number and is never overwritten; the highest version is
in force, and version 0 is the packaged default (in force while none is recorded). Nothing here
commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, func, insert, select

from dhr.record.arrangement import Arrangement, load_default
from dhr.store.record_models import ControllerArrangementRow

ARRANGEMENT = cast(Table, ControllerArrangementRow.__table__)
DEFAULT_VERSION = 0


@dataclass(frozen=True)
class ArrangementVersion:
    """One recorded version: when (microseconds since the epoch), by whom, and the document."""

    version: int
    recorded: int
    recorded_by: str
    arrangement: Arrangement


def _version(row: Row[Any]) -> ArrangementVersion:
    m = row._mapping
    return ArrangementVersion(
        version=int(m["version"]),
        recorded=int(m["recorded"]),
        recorded_by=m["recorded_by"],
        arrangement=Arrangement.model_validate_json(m["document"]),
    )


def current_arrangement(conn: Connection) -> tuple[int, Arrangement]:
    """The arrangement in force and its version (0: the packaged default, none recorded)."""
    row = conn.execute(select(ARRANGEMENT).order_by(ARRANGEMENT.c.version.desc()).limit(1)).first()
    if row is None:
        return DEFAULT_VERSION, load_default()
    found = _version(row)
    return found.version, found.arrangement


def arrangement_version(conn: Connection, version: int) -> Arrangement | None:
    """One version of the arrangement (0: the packaged default), or None if never recorded."""
    if version == DEFAULT_VERSION:
        return load_default()
    row = conn.execute(select(ARRANGEMENT).where(ARRANGEMENT.c.version == version)).first()
    return _version(row).arrangement if row is not None else None


def record_arrangement(conn: Connection, doc: Arrangement, actor: str, now: int) -> int:
    """Record ``doc`` as the next version and return its number; earlier versions stay.

    Two administrators recording at the same moment cannot both get one number: the second
    insert fails on the primary key and its unit of work rolls back.
    """
    latest = conn.execute(select(func.max(ARRANGEMENT.c.version))).scalar()
    version = int(latest or DEFAULT_VERSION) + 1
    conn.execute(
        insert(ARRANGEMENT).values(
            version=version,
            recorded=now,
            recorded_by=actor,
            document=doc.model_dump_json(),
        )
    )
    return version


def arrangement_history(conn: Connection) -> list[ArrangementVersion]:
    """Every recorded version, oldest first (the packaged default, version 0, is not listed)."""
    rows = conn.execute(select(ARRANGEMENT).order_by(ARRANGEMENT.c.version))
    return [_version(r) for r in rows]
