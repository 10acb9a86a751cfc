"""Signed checkpoints (dhr/audit/checkpoints.py): the cadence (every N events, or T seconds
when newer events exist, and at once for a chain with none) and the NDJSON copy beside the key.
Issue 7: "signed checkpoints (Ed25519) over it, every N events or T seconds".
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text

from dhr.audit.chain import chain_pending
from dhr.audit.checkpoints import Checkpoint, is_due, read_file
from dhr.audit.signing import checkpoints_file, load_verifier
from dhr.audit.verify import verify
from dhr.config import Settings
from tests.dhr.audit import audit_db


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return audit_db.settings_for(
        engine, tmp_path, audit_checkpoint_events=5, audit_checkpoint_seconds=10
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def db_checkpoints(engine: Engine) -> list[tuple[int, str, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT seq, chain_hash, signed_at FROM audit_checkpoint ORDER BY seq")
        )
        return [(int(r[0]), str(r[1]), int(r[2])) for r in rows]


def test_a_chain_without_checkpoints_is_signed_at_once_then_every_n_events(
    engine: Engine, settings: Settings
) -> None:
    clock = Clock(1_000_000.0)
    audit_db.insert(engine, 1, 3)
    chain_pending(engine, settings, clock=clock)
    assert [c[0] for c in db_checkpoints(engine)] == [3]
    audit_db.insert(engine, 4, 1)
    chain_pending(engine, settings, clock=clock)
    assert [c[0] for c in db_checkpoints(engine)] == [3]  # 1 event and 0 s since
    audit_db.insert(engine, 5, 4)
    chain_pending(engine, settings, clock=clock)
    assert [c[0] for c in db_checkpoints(engine)] == [3, 8]  # 5 events since seq 3


def test_after_t_seconds_newer_events_are_signed_even_with_nothing_pending(
    engine: Engine, settings: Settings
) -> None:
    clock = Clock(1_000_000.0)
    audit_db.insert(engine, 1, 1)
    chain_pending(engine, settings, clock=clock)
    audit_db.insert(engine, 2, 1)
    clock.now += 5
    assert chain_pending(engine, settings, clock=clock) == 1
    assert [c[0] for c in db_checkpoints(engine)] == [1]
    clock.now += 6  # 11 s after the last checkpoint: seq 2 is signed without new events
    assert chain_pending(engine, settings, clock=clock) == 0
    assert [(c[0], c[2]) for c in db_checkpoints(engine)] == [(1, 1_000_000), (2, 1_000_011)]
    clock.now += 60  # nothing newer than the last checkpoint: nothing to sign
    chain_pending(engine, settings, clock=clock)
    assert len(db_checkpoints(engine)) == 2


def test_is_due() -> None:
    last = Checkpoint(10, "h", 100, "k", b"s")
    assert not is_due(0, None, 0, 5, 10)
    assert is_due(1, None, 0, 5, 10)
    assert not is_due(10, last, 500, 5, 10)
    assert not is_due(14, last, 105, 5, 10)
    assert is_due(15, last, 105, 5, 10)
    assert is_due(11, last, 110, 5, 10)


def test_each_checkpoint_is_also_a_signed_line_in_the_ndjson_file(
    engine: Engine, settings: Settings
) -> None:
    for first in (1, 6, 11):
        audit_db.insert(engine, first, 5)
        chain_pending(engine, settings)
    path = checkpoints_file(settings.effective_audit_key_file)
    assert path == settings.effective_audit_key_file.parent / "audit-checkpoints.ndjson"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [(x["seq"], x["chain_hash"], x["signed_at"]) for x in lines] == db_checkpoints(engine)
    verifier = load_verifier(settings.effective_audit_key_file)
    for line in lines:
        assert line["key_id"] == verifier.key_id
        assert verifier.verify(line["seq"], line["chain_hash"], base64.b64decode(line["signature"]))
    assert read_file(path).by_seq.keys() == {5, 10, 15}


def test_an_unreadable_line_is_a_warning_and_a_conflicting_one_a_break(
    engine: Engine, settings: Settings
) -> None:
    audit_db.insert(engine, 1, 5)
    chain_pending(engine, settings)
    path = checkpoints_file(settings.effective_audit_key_file)
    with path.open("ab") as out:
        out.write(b'{"seq": 7, "chain_ha')  # a torn last line (crash while appending)
    report = verify(engine, settings)
    assert report.intact, report.summary()
    assert any("line 2" in w for w in report.warnings)
    audit_db.insert(engine, 6, 5)
    chain_pending(engine, settings)  # the next line starts on a fresh line
    assert read_file(path).by_seq.keys() == {5, 10}
    first = orjson.loads(path.read_bytes().splitlines()[0])
    first["chain_hash"] = "0" * 64
    with path.open("ab") as out:
        out.write(b"\n" + orjson.dumps(first) + b"\n")
    report = verify(engine, settings)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == ("checkpoint-mismatch", 5)


def test_a_checkpoint_missing_from_the_file_is_only_a_warning(
    engine: Engine, settings: Settings
) -> None:
    audit_db.insert(engine, 1, 5)
    chain_pending(engine, settings)
    checkpoints_file(settings.effective_audit_key_file).unlink()
    report = verify(engine, settings)
    assert report.intact
    assert report.warnings == ["checkpoint at seq 5 is not in the checkpoint file"]
