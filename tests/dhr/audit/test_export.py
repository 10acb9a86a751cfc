"""``dhr audit export`` (dhr/audit/export.py): NDJSON (https://hl7.org/fhir/uv/bulkdata/export.html
#file-format) of the chained AuditEvents recorded since a date, in chain order, byte for byte
the hashed canonical JSON.
"""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from dhr.audit.chain import chain_all
from dhr.audit.export import export_ndjson, parse_since
from dhr.config import Settings
from dhr.store import audit_store
from dhr.store.db import unit_of_work
from tests.dhr.audit import audit_db

DAY = 86_400 * 1_000_000


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return audit_db.settings_for(engine, tmp_path)


def test_parse_since_takes_dates_and_date_times_in_utc() -> None:
    assert parse_since("1970-01-02") == DAY
    assert parse_since("1970-01-01T00:00:01Z") == 1_000_000
    assert parse_since("1970-01-01T01:00:00+01:00") == 0
    assert parse_since("1970-01-01T00:00:00.000002") == 2
    with pytest.raises(ValueError, match="not an ISO date"):
        parse_since("yesterday")


def test_export_writes_events_since_the_date_in_chain_order(
    engine: Engine, settings: Settings
) -> None:
    start = parse_since("2026-01-10")
    # recorded out of key order: chain order (key order) wins, the date filters
    times = [start - DAY, start + 3, start - 1, start, start + DAY, start + 1]
    records = [audit_db.record(n, recorded=t) for n, t in enumerate(times)]
    with unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, records)
    chain_all(engine, settings)
    audit_db.insert(engine, 100, 1)  # pending: not exported until chained
    out = io.BytesIO()
    assert export_ndjson(engine, start, out, page=2) == 4
    lines = out.getvalue().splitlines()
    assert lines == [records[i].data for i in (1, 3, 4, 5)]
    assert [orjson.loads(x)["resourceType"] for x in lines] == ["AuditEvent"] * 4
    assert out.getvalue().endswith(b"\n")


def test_an_export_of_nothing_is_empty(engine: Engine, settings: Settings) -> None:
    out = io.BytesIO()
    assert export_ndjson(engine, 0, out) == 0
    assert out.getvalue() == b""
