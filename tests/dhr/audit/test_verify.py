"""Tamper tests for ``dhr audit verify`` (dhr/audit/verify.py), issue 7 "Show": rows changed,
deleted, inserted and reordered directly in the database, and the tail truncated (with and
without its database checkpoints), each reported as the first break at the right seq.
Chain rule: chain_hash = sha256(f"{prev_hash}:{seq}:{event_hash}"); checkpoints are Ed25519
signatures over f"{seq}:{chain_hash}", also kept in audit-checkpoints.ndjson.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dhr.audit.chain import chain_pending, link_hash
from dhr.audit.events import columns_of
from dhr.audit.verify import verify
from dhr.config import Settings
from tests.dhr.audit import audit_db

EVENTS = 20  # checkpoints at 5, 10, 15, 20


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    values = audit_db.settings_for(engine, tmp_path, audit_checkpoint_events=5)
    audit_db.insert(engine, 1, EVENTS)
    for _ in range(EVENTS // 5):
        assert chain_pending(engine, values, limit=5) == 5
    return values


def sql(engine: Engine, *statements: str, **params: object) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def row(engine: Engine, seq: int) -> dict[str, object]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM audit_event WHERE seq = :s"), {"s": seq})
        return dict(found.mappings().one())


def first_break(engine: Engine, settings: Settings) -> tuple[str, int]:
    report = verify(engine, settings)
    assert report.first_break is not None, report.summary()
    assert not report.intact
    return report.first_break.kind, report.first_break.seq


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_an_untouched_chain_is_intact_and_pending_events_are_only_counted(
    engine: Engine, settings: Settings
) -> None:
    audit_db.insert(engine, 100, 3)
    report = verify(engine, settings)
    assert report.intact, report.summary()
    assert (report.chained, report.head_seq, report.pending) == (EVENTS, EVENTS, 3)
    assert (report.checkpoints, report.file_checkpoints) == (4, 4)
    assert report.head_hash == row(engine, EVENTS)["chain_hash"]
    assert "INTACT" in report.summary()


def test_small_batches_walk_the_same_chain(engine: Engine, settings: Settings) -> None:
    assert verify(engine, settings, batch=3).intact
    sql(engine, "UPDATE audit_event SET outcome = '8', data = :d WHERE seq = 14", d=b"{}")
    assert first_break_batched(engine, settings) == ("edited", 14)


def first_break_batched(engine: Engine, settings: Settings) -> tuple[str, int]:
    report = verify(engine, settings, batch=3)
    assert report.first_break is not None
    return report.first_break.kind, report.first_break.seq


def test_edited_data_is_found_at_its_seq(engine: Engine, settings: Settings) -> None:
    data = bytes(row(engine, 7)["data"]).replace(b'"R"', b'"D"')  # type: ignore[arg-type]
    sql(engine, "UPDATE audit_event SET data = :d WHERE seq = 7", d=data)
    assert first_break(engine, settings) == ("edited", 7)


def test_edited_data_with_its_event_hash_is_found(engine: Engine, settings: Settings) -> None:
    data = bytes(row(engine, 7)["data"]).replace(b"Observation/o7", b"Observation/zz")  # type: ignore[arg-type]
    sql(
        engine,
        "UPDATE audit_event SET data = :d, event_hash = :h WHERE seq = 7",
        d=data,
        h=sha(data),
    )
    assert first_break(engine, settings) == ("edited", 7)


def test_edited_event_rehashed_into_its_link_is_found_at_its_seq(
    engine: Engine, settings: Settings
) -> None:
    old = row(engine, 7)
    data = bytes(old["data"]).replace(b"Observation/o7", b"Observation/zz")  # type: ignore[arg-type]
    chain = link_hash(str(old["prev_hash"]), 7, sha(data))
    sql(
        engine,
        "UPDATE audit_event SET data = :d, event_hash = :h, chain_hash = :c WHERE seq = 7",
        d=data,
        h=sha(data),
        c=chain,
    )
    assert first_break(engine, settings) == ("edited", 7)


def test_a_deleted_event_is_found_at_its_seq(engine: Engine, settings: Settings) -> None:
    sql(engine, "DELETE FROM audit_event WHERE seq = 7")
    assert first_break(engine, settings) == ("deleted", 7)


def test_a_deleted_event_with_the_rest_renumbered_is_found(
    engine: Engine, settings: Settings
) -> None:
    sql(
        engine,
        "DELETE FROM audit_event WHERE seq = 7",
        "UPDATE audit_event SET seq = -(seq - 1) WHERE seq > 7",
        "UPDATE audit_event SET seq = -seq WHERE seq < 0",
    )
    assert first_break(engine, settings) == ("deleted", 7)


def test_a_deleted_first_event_is_found(engine: Engine, settings: Settings) -> None:
    sql(
        engine,
        "DELETE FROM audit_event WHERE seq = 1",
        "UPDATE audit_event SET seq = -(seq - 1) WHERE seq > 1",
        "UPDATE audit_event SET seq = -seq WHERE seq < 0",
    )
    assert first_break(engine, settings) == ("deleted", 1)


def _make_room_at(engine: Engine, seq: int) -> None:
    sql(
        engine,
        "UPDATE audit_event SET seq = -(seq + 1) WHERE seq >= :s",
        "UPDATE audit_event SET seq = -seq WHERE seq < 0",
        s=seq,
    )


def _insert_row(engine: Engine, seq: int, prev_hash: str, chain_hash: str | None = None) -> None:
    forged = audit_db.record(999)
    event_hash = sha(forged.data)
    sql(
        engine,
        "INSERT INTO audit_event (event_id, recorded, patient, agent, client_id, action, subtype,"
        " outcome, purpose, break_glass, request_id, data, event_hash, seq, prev_hash,"
        " chain_hash) VALUES (:event_id, :recorded, :patient, :agent, :client_id, :action,"
        " :subtype, :outcome, :purpose, :break_glass, :request_id, :d, :h, :s, :p, :c)",
        **columns_of(forged.data),  # a careful forger keeps the columns consistent
        d=forged.data,
        h=event_hash,
        s=seq,
        p=prev_hash,
        c=chain_hash or link_hash(prev_hash, seq, event_hash),
    )


def test_an_inserted_row_with_made_up_chain_fields_is_found(
    engine: Engine, settings: Settings
) -> None:
    _make_room_at(engine, 7)
    _insert_row(engine, 7, "ab" * 32, "cd" * 32)
    assert first_break(engine, settings) == ("inserted", 7)


def test_an_inserted_row_linked_to_its_predecessor_is_found(
    engine: Engine, settings: Settings
) -> None:
    prev = str(row(engine, 6)["chain_hash"])
    _make_room_at(engine, 7)
    _insert_row(engine, 7, prev)  # a correct link from seq 6: seq 8 (the old 7) then breaks
    assert first_break(engine, settings) == ("inserted", 7)


def test_an_inserted_row_with_a_bad_hash_after_its_predecessor_is_found(
    engine: Engine, settings: Settings
) -> None:
    prev = str(row(engine, 6)["chain_hash"])
    _make_room_at(engine, 7)
    _insert_row(engine, 7, prev, "ef" * 32)
    assert first_break(engine, settings) == ("inserted", 7)


def test_an_inserted_row_at_the_tail_that_does_not_link_is_found(
    engine: Engine, settings: Settings
) -> None:
    _insert_row(engine, EVENTS + 1, "ab" * 32, "cd" * 32)
    assert first_break(engine, settings) == ("inserted", EVENTS + 1)


def _swap_seq(engine: Engine, a: int, b: int) -> None:
    sql(
        engine,
        "UPDATE audit_event SET seq = -1 WHERE seq = :a",
        "UPDATE audit_event SET seq = :a WHERE seq = :b",
        "UPDATE audit_event SET seq = :b WHERE seq = -1",
        a=a,
        b=b,
    )


@pytest.mark.parametrize(("a", "b"), [(4, 9), (6, 7), (1, 2)])
def test_swapped_rows_are_found_as_reordered(
    engine: Engine, settings: Settings, a: int, b: int
) -> None:
    _swap_seq(engine, a, b)
    assert first_break(engine, settings) == ("reordered", a)


@pytest.mark.parametrize("with_hash", [False, True])
def test_swapped_data_is_found_as_reordered(
    engine: Engine, settings: Settings, with_hash: bool
) -> None:
    four, nine = row(engine, 4), row(engine, 9)
    columns = "data = :d, event_hash = :h" if with_hash else "data = :d"
    sql(
        engine,
        f"UPDATE audit_event SET {columns} WHERE seq = 4",
        d=nine["data"],
        h=nine["event_hash"],
    )
    sql(
        engine,
        f"UPDATE audit_event SET {columns} WHERE seq = 9",
        d=four["data"],
        h=four["event_hash"],
    )
    assert first_break(engine, settings) == ("reordered", 4)


def test_a_truncated_tail_is_found_from_the_database_checkpoints(
    engine: Engine, settings: Settings
) -> None:
    sql(engine, "DELETE FROM audit_event WHERE seq > 12")
    assert first_break(engine, settings) == ("truncated", 13)


def test_a_truncated_tail_with_its_checkpoints_deleted_is_found_from_the_file(
    engine: Engine, settings: Settings
) -> None:
    sql(
        engine,
        "DELETE FROM audit_event WHERE seq > 12",
        "DELETE FROM audit_checkpoint WHERE seq > 12",
    )
    report = verify(engine, settings)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == ("truncated", 13)
    assert "seq 20" in report.first_break.detail


def test_a_checkpoint_deleted_from_the_database_is_found(
    engine: Engine, settings: Settings
) -> None:
    sql(engine, "DELETE FROM audit_checkpoint WHERE seq = 10")
    assert first_break(engine, settings) == ("checkpoint-deleted", 10)


def test_a_checkpoint_with_a_bad_signature_is_found(engine: Engine, settings: Settings) -> None:
    sql(engine, "UPDATE audit_checkpoint SET signature = :s WHERE seq = 15", s=b"\0" * 64)
    assert first_break(engine, settings) == ("bad-signature", 15)


def test_a_checkpoint_moved_to_another_hash_is_found(engine: Engine, settings: Settings) -> None:
    sql(engine, "UPDATE audit_checkpoint SET chain_hash = :h WHERE seq = 10", h="0" * 64)
    assert first_break(engine, settings) == ("bad-signature", 10)


def test_a_chain_recomputed_after_an_edit_is_found_at_the_next_checkpoint(
    engine: Engine, settings: Settings
) -> None:
    with engine.connect() as conn:
        rows = list(conn.execute(text("SELECT seq, data FROM audit_event ORDER BY seq")))
    prev = str(row(engine, 2)["chain_hash"])
    with engine.begin() as conn:
        for seq, data in rows[2:]:
            body = bytes(data).replace(b"Observation/o3", b"Observation/zz")
            chain = link_hash(prev, seq, sha(body))
            conn.execute(
                text(
                    "UPDATE audit_event SET data = :d, event_hash = :h, prev_hash = :p,"
                    " chain_hash = :c WHERE seq = :s"
                ),
                {"d": body, "h": sha(body), "p": prev, "c": chain, "s": seq},
            )
            prev = chain
    assert first_break(engine, settings) == ("rewritten", 5)


def test_a_missing_key_makes_checkpoints_unverifiable(engine: Engine, settings: Settings) -> None:
    key = settings.effective_audit_key_file
    key.unlink()
    key.with_name(f"{key.stem}.pub.pem").unlink()
    assert first_break(engine, settings) == ("bad-signature", 5)


@pytest.mark.parametrize(
    ("column", "value"),
    [("patient", "someone-else"), ("agent", "nobody"), ("break_glass", False), ("recorded", 5)],
)
def test_a_search_column_edited_away_from_its_data_is_found(
    engine: Engine, settings: Settings, column: str, value: object
) -> None:
    if column == "break_glass":  # make seq 9 a break-glass event whose flag is then cleared
        sql(engine, "UPDATE audit_event SET break_glass = :v WHERE seq = 9", v=True)
        assert first_break(engine, settings) == ("edited", 9)
        return
    sql(engine, f"UPDATE audit_event SET {column} = :v WHERE seq = 9", v=value)
    report = verify(engine, settings)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == ("edited", 9)
    assert column in report.first_break.detail
