"""``dhr audit export --since``: the AuditEvents as NDJSON for an external archive.

FHIR Bulk Data's NDJSON (https://hl7.org/fhir/uv/bulkdata/export.html#file-format): one
AuditEvent (https://hl7.org/fhir/R4/auditevent.html) per line, exactly the canonical bytes that
were hashed into the chain, in chain (seq) order, streamed in pages so memory stays flat. Only
chained events are exported; the command chains pending ones first.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import BinaryIO

from sqlalchemy import Engine

from dhr.store import audit_store
from dhr.store.db import unit_of_work

PAGE = 1000


def parse_since(text: str) -> int:
    """An ISO date (``2026-11-25``) or date-time (``2026-11-25T10:00:00Z``; UTC when no
    offset) as microseconds since the epoch."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"not an ISO date or date-time: {text!r}") from None
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def export_ndjson(engine: Engine, since: int, out: BinaryIO, page: int = PAGE) -> int:
    """Write the chained events recorded at or after ``since`` (µs); returns how many."""
    after_seq, written = 0, 0
    while True:
        with unit_of_work(engine, write=False) as conn:
            rows = audit_store.events_since(conn, since, after_seq, page)
        for row in rows:
            out.write(bytes(row.data))
            out.write(b"\n")
        written += len(rows)
        if len(rows) < page:
            return written
        after_seq = int(rows[-1].seq)
