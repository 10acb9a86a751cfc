"""The audit chain: one chainer at a time gives pending events their place, in batches.

Tamper evidence as in RFC 6962-style append-only logs, simplified to a hash chain:
``chain_hash = sha256_hex(f"{prev_hash}:{seq}:{event_hash}")`` with ``prev_hash`` of seq 1 =
:data:`dhr.audit.model.GENESIS`; ``seq`` starts at 1 and has no gaps. Requests insert events
unchained (``seq`` NULL) in their own transaction, so they never wait on the chain; the chainer
takes the pending rows in ``key`` order in ONE short write transaction (SQLite: ``BEGIN
IMMEDIATE``; PostgreSQL: ``pg_advisory_xact_lock``), links them after the head, signs a
checkpoint when one is due (:mod:`dhr.audit.checkpoints`) and commits; the checkpoint's NDJSON
line is appended after the commit. Any number of processes and threads may chain at once.

:class:`Chainer` runs :func:`chain_pending` every ``audit_chain_interval_seconds`` on a
background thread; ``stop()`` chains what is left.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from dhr.audit.checkpoints import Checkpoint, append_to_file, from_row, is_due, write_checkpoint
from dhr.audit.model import GENESIS
from dhr.audit.signing import Signer, checkpoints_file, load_or_create
from dhr.config import Settings
from dhr.store import audit_store
from dhr.store.audit_store import ChainLink
from dhr.store.db import unit_of_work

log = logging.getLogger(__name__)
BATCH = 5000
# The chainer's batches: on SQLite its transaction holds the one write lock every request
# waits for, so it stays short (linking costs ~25 µs an event: 250 events ~6 ms); on
# PostgreSQL its advisory lock only excludes other chainers.
SQLITE_BATCH = 250
POSTGRESQL_BATCH = 2000


def batch_for(engine: Engine) -> int:
    return SQLITE_BATCH if engine.dialect.name == "sqlite" else POSTGRESQL_BATCH


def link_hash(prev_hash: str, seq: int, event_hash: str) -> str:
    """The chain hash of the event at ``seq``."""
    return hashlib.sha256(f"{prev_hash}:{seq}:{event_hash}".encode()).hexdigest()


def _work_due(engine: Engine, settings: Settings, now: float) -> bool:
    """A cheap read: is anything pending, or is a time-based checkpoint due?"""
    with unit_of_work(engine, write=False) as conn:
        if audit_store.pending_events(conn, 1):
            return True
        head = audit_store.chain_head(conn)
        last = audit_store.last_checkpoint(conn)
    return head is not None and is_due(
        head[0],
        None if last is None else from_row(last),
        now,
        settings.audit_checkpoint_events,
        settings.audit_checkpoint_seconds,
    )


def chain_pending(
    engine: Engine,
    settings: Settings,
    limit: int = BATCH,
    *,
    signer: Signer | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Chain up to ``limit`` pending events; returns how many were chained.

    Also signs a checkpoint when one is due, even when nothing was pending.
    """
    if not _work_due(engine, settings, clock()):
        return 0
    key_file = settings.effective_audit_key_file
    signer = signer or load_or_create(key_file)
    checkpoint: Checkpoint | None = None
    with unit_of_work(engine, write=True) as conn:
        audit_store.lock_chain(conn)
        pending = audit_store.pending_events(conn, limit)
        head = audit_store.chain_head(conn)
        seq, prev = head if head is not None else (0, GENESIS)
        links: list[ChainLink] = []
        for key, event_hash in pending:
            seq += 1
            chain_hash = link_hash(prev, seq, event_hash)
            links.append(ChainLink(key, seq, prev, chain_hash))
            prev = chain_hash
        audit_store.link_events(conn, links)
        last = audit_store.last_checkpoint(conn)
        now = clock()
        if is_due(
            seq,
            None if last is None else from_row(last),
            now,
            settings.audit_checkpoint_events,
            settings.audit_checkpoint_seconds,
        ):
            checkpoint = write_checkpoint(conn, signer, seq, prev, now)
    if checkpoint is not None:
        append_to_file(checkpoints_file(key_file), checkpoint)
    return len(links)


def chain_all(
    engine: Engine, settings: Settings, *, signer: Signer | None = None, limit: int | None = None
) -> int:
    """Chain until nothing is pending, in batches (:func:`batch_for`); returns how many."""
    limit = limit or batch_for(engine)
    signer = signer or load_or_create(settings.effective_audit_key_file)
    total = 0
    while True:
        done = chain_pending(engine, settings, limit, signer=signer)
        total += done
        if done < limit:
            return total


class Chainer:
    """Chains pending events in the background, every ``audit_chain_interval_seconds``."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._signer: Signer | None = None

    @property
    def key_file(self) -> Path:
        return self.settings.effective_audit_key_file

    def start(self) -> None:
        """Load (or create) the signing key now, then chain on a daemon thread."""
        if self._thread is not None:
            return
        self._signer = load_or_create(self.key_file)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dhr-audit-chainer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and chain what is left."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        chain_all(self.engine, self.settings, signer=self._signer)

    def _run(self) -> None:
        interval = self.settings.audit_chain_interval_seconds
        while not self._stop.wait(interval):
            try:
                chain_all(self.engine, self.settings, signer=self._signer)
            except Exception:  # a failed round is retried on the next tick
                log.exception("audit chaining failed; retrying")
