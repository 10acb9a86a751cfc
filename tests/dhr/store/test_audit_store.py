"""The audit SQL (dhr/store/audit_store.py): events inserted in the caller's transaction (rolled
back with it), read by id, searched by patient/agent/date/action/outcome/purpose/subtype with
key paging, and streamed since a date in chain order. https://hl7.org/fhir/R4/auditevent.html
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dhr.audit.chain import chain_all
from dhr.auth.model import Principal
from dhr.store import audit_store
from dhr.store.db import unit_of_work
from tests.dhr.audit import audit_db


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


# One event, a few (executemany), and as many as a transaction Bundle audits (COPY on PostgreSQL).
@pytest.mark.parametrize("count", [1, 3, audit_store.PG_COPY_FROM + 4])
def test_events_are_inserted_in_the_callers_transaction(engine: Engine, count: int) -> None:
    records = [audit_db.record(n) for n in range(count)]
    if count > 1:
        records[-1] = replace(
            records[-1], patient=None, client_id=None, purpose=None, break_glass=True
        )

    def failing_request() -> None:
        with unit_of_work(engine, write=True) as conn:
            audit_store.insert_events(conn, records)
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        failing_request()
    with unit_of_work(engine, write=False) as conn:
        assert audit_store.pending_count(conn) == 0
    with unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, records)
        audit_store.insert_events(conn, [])
    with unit_of_work(engine, write=False) as conn:
        assert audit_store.pending_count(conn) == count
        row = audit_store.read_event(conn, records[0].event_id)
        assert audit_store.read_event(conn, "nope") is None
        for record in records:  # every event whole, its JSON byte for byte
            stored = audit_store.read_event(conn, record.event_id)
            assert stored is not None
            assert bytes(stored.data) == record.data
            assert stored.recorded == record.recorded
    assert row is not None
    assert bytes(row.data) == records[0].data
    assert (row.patient, row.agent, row.client_id, row.action, row.seq) == (
        "pat-1",
        "user-1",
        "app-1",
        "R",
        None,
    )
    assert row.break_glass is False
    with unit_of_work(engine, write=False) as conn:  # NULLs and a broken glass, in any batch
        last = audit_store.read_event(conn, records[-1].event_id)
    assert last is not None
    assert (last.patient, last.client_id, last.purpose) == (
        (None, None, None) if count > 1 else ("pat-1", "app-1", "TREAT")
    )
    assert last.break_glass is (count > 1)


def test_search_filters_and_pages_by_key(engine: Engine) -> None:
    other = Principal(subject="user-2", client_id="app-2")
    records = [
        audit_db.record(1),
        audit_db.record(2, patient="pat-2"),
        audit_db.record(3, principal=other, action="C", subtype="create"),
        audit_db.record(4),
        audit_db.record(5, patient=None, subtype="search-system", action="E"),
    ]
    with unit_of_work(engine, write=True) as conn:
        audit_store.insert_events(conn, records)
    start = audit_db.START
    with unit_of_work(engine, write=False) as conn:

        def ids(**filters: object) -> list[str]:
            return [r.event_id for r in audit_store.search_events(conn, **filters)]  # type: ignore[arg-type]

        assert ids(patient="pat-1") == ["evt-000001", "evt-000003", "evt-000004"]
        assert ids(agent="user-2") == ["evt-000003"]
        assert ids(action="C", subtype="create") == ["evt-000003"]
        assert ids(outcome="0", purpose="TREAT", limit=2) == ["evt-000001", "evt-000002"]
        assert ids(since=start + 2_000_000, until=start + 4_000_000) == ["evt-000002", "evt-000003"]
        assert ids(outcome="8") == []
        first = audit_store.search_events(conn, limit=2)
        rest = audit_store.search_events(conn, after_key=first[-1].key)
        assert [r.event_id for r in rest] == ["evt-000003", "evt-000004", "evt-000005"]
        newest = audit_store.search_events(conn, newest_first=True, limit=2)
        assert [r.event_id for r in newest] == ["evt-000005", "evt-000004"]
        older = audit_store.search_events(conn, newest_first=True, after_key=newest[-1].key)
        assert [r.event_id for r in older] == ["evt-000003", "evt-000002", "evt-000001"]


def test_events_since_streams_chained_events_in_seq_order(engine: Engine, tmp_path: Path) -> None:
    audit_db.insert(engine, 1, 5)
    chain_all(engine, audit_db.settings_for(engine, tmp_path))
    audit_db.insert(engine, 6, 1)  # pending: not streamed
    since = audit_db.START + 2_000_000
    with unit_of_work(engine, write=False) as conn:
        page = audit_store.events_since(conn, since, 0, 2)
        assert [r.seq for r in page] == [2, 3]
        page = audit_store.events_since(conn, since, 3, 10)
        assert [r.seq for r in page] == [4, 5]
        assert audit_store.pending_count(conn) == 1
