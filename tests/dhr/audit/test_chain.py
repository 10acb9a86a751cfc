"""The audit chain (dhr/audit/chain.py): gapless seq in key order, linked hashes, safe when many
threads chain at once, and the background Chainer. Issue 7 "tamper evidence"; the chain rule is
chain_hash = sha256(f"{prev_hash}:{seq}:{event_hash}") from GENESIS.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dhr.audit.chain import Chainer, chain_all, chain_pending, link_hash
from dhr.audit.model import GENESIS
from dhr.audit.verify import verify
from dhr.config import Settings
from dhr.store import audit_store
from dhr.store.db import unit_of_work
from tests.dhr.audit import audit_db


@pytest.fixture
def engine() -> Engine:
    eng = audit_db.audit_engine()
    audit_db.reset(eng)
    return eng


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return audit_db.settings_for(engine, tmp_path)


def rows(engine: Engine) -> list[tuple[int, int | None, str, str | None, str | None]]:
    with engine.connect() as conn:
        result = conn.execute(
            text("SELECT key, seq, event_hash, prev_hash, chain_hash FROM audit_event ORDER BY key")
        )
        return [tuple(r) for r in result]  # type: ignore[misc]


def test_pending_events_are_chained_in_key_order_from_genesis(
    engine: Engine, settings: Settings
) -> None:
    records = audit_db.insert(engine, 1, 7)
    assert chain_pending(engine, settings) == 7
    chained = rows(engine)
    assert [r[1] for r in chained] == list(range(1, 8))
    prev = GENESIS
    for (_key, seq, event_hash, prev_hash, chain_hash), rec in zip(chained, records, strict=True):
        assert event_hash == hashlib.sha256(rec.data).hexdigest()
        assert prev_hash == prev
        expected = hashlib.sha256(f"{prev}:{seq}:{event_hash}".encode()).hexdigest()
        assert chain_hash == expected == link_hash(prev, seq or 0, event_hash)
        prev = expected
    assert chain_pending(engine, settings) == 0
    audit_db.insert(engine, 8, 3)
    assert chain_pending(engine, settings) == 3
    chained = rows(engine)
    assert [r[1] for r in chained] == list(range(1, 11))
    assert chained[7][3] == chained[6][4]  # seq 8 links to seq 7


def test_limit_chains_in_batches(engine: Engine, settings: Settings) -> None:
    audit_db.insert(engine, 1, 12)
    assert chain_pending(engine, settings, limit=5) == 5
    with unit_of_work(engine, write=False) as conn:
        assert audit_store.pending_count(conn) == 7
        assert audit_store.chain_head(conn) is not None
    assert chain_all(engine, settings) == 7
    assert [r[1] for r in rows(engine)] == list(range(1, 13))


@pytest.mark.slow
def test_many_threads_inserting_and_chaining_make_one_gapless_chain(
    engine: Engine, settings: Settings
) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for round_ in range(10):
                audit_db.insert(engine, worker * 1000 + round_ * 10, 7)
                chain_pending(engine, settings, limit=11)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    chain_all(engine, settings)
    chained = rows(engine)
    assert len(chained) == 8 * 10 * 7
    by_seq = sorted(chained, key=lambda r: r[1] or 0)
    assert [r[1] for r in by_seq] == list(range(1, len(chained) + 1))
    prev = GENESIS
    for _key, seq, event_hash, prev_hash, chain_hash in by_seq:
        assert prev_hash == prev
        assert chain_hash == link_hash(prev, seq or 0, event_hash)
        prev = chain_hash


def test_chainer_thread_chains_in_the_background_and_stop_chains_the_rest(
    engine: Engine, tmp_path: Path
) -> None:
    settings = audit_db.settings_for(engine, tmp_path, audit_chain_interval_seconds=0.05)
    chainer = Chainer(engine, settings)
    chainer.start()
    try:
        audit_db.insert(engine, 1, 4)
        for _ in range(200):
            if all(r[1] is not None for r in rows(engine)):
                break
            threading.Event().wait(0.02)
        assert [r[1] for r in rows(engine)] == [1, 2, 3, 4]
    finally:
        audit_db.insert(engine, 5, 2)
        chainer.stop()
    assert [r[1] for r in rows(engine)] == [1, 2, 3, 4, 5, 6]
    assert settings.effective_audit_key_file.exists()


CHAIN_LOOP = """
import time
from dhr.audit.chain import chain_pending
from dhr.config import Settings
from dhr.store import db
settings = Settings()
engine = db.engine_for(settings)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    chain_pending(engine, settings, 7)
"""


@pytest.mark.slow
def test_several_processes_chaining_at_once_make_one_gapless_chain(
    engine: Engine, settings: Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DHR_")}
    env.update(
        DHR_DATABASE_URL=settings.effective_database_url, DHR_DATA_DIR=str(settings.data_dir)
    )
    root = Path(__file__).resolve().parents[3]
    procs = [
        subprocess.Popen([sys.executable, "-c", CHAIN_LOOP], env=env, cwd=root) for _ in range(3)
    ]
    try:
        for first in range(0, 300, 10):
            audit_db.insert(engine, first, 10)
            time.sleep(0.05)
    finally:
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    chain_all(engine, settings)
    by_seq = sorted(rows(engine), key=lambda r: r[1] or 0)
    assert [r[1] for r in by_seq] == list(range(1, 301))
    report = verify(engine, settings)
    assert report.intact, report.summary()
    assert report.checkpoints >= 1
