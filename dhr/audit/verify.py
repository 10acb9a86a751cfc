"""``dhr audit verify``: walk the audit chain and its signed checkpoints, report the FIRST break.

The chain rule and checkpoints are in :mod:`dhr.audit.chain` and :mod:`dhr.audit.checkpoints`
(issue 7, "tamper evidence"). The walk streams chained rows in seq order (batches of 5000) and
checks, for each seq ``p``: the row exists (else events were **deleted**), its data hashes to its
``event_hash``, its ``prev_hash`` is the chain hash of ``p - 1`` (GENESIS for 1) and its
``chain_hash`` is ``sha256(f"{prev_hash}:{p}:{event_hash}")``, and it equals every signed
checkpoint at ``p``. At the first failure the row is classified, with a few lookups that only
run then:

- **edited**: the data no longer matches the event hash, or the chain hash was altered, or the
  row before was rewritten with recomputed hashes (``p`` is self-consistent but no longer links);
- **deleted**: a seq gap, or events removed and the later ones renumbered (the row at ``p`` was
  chained at a later seq and its predecessor is gone);
- **inserted**: a row whose chain fields the chainer never wrote, or two rows linked to the same
  predecessor (the first of them does not belong);
- **reordered**: the row at ``p`` holds the data, or the chain fields, of another seq;
- **rewritten**: the chain at ``p`` differs from a signed checkpoint (a recomputed chain).

The search columns (patient, agent, action...) are not hashed; each is compared with the
hashed event data (:func:`dhr.audit.events.columns_of`), so a row hidden from a patient's access
log by editing its ``patient`` column is an **edited** break too.

Checkpoints: a bad signature (or unknown key), a checkpoint in the NDJSON file missing from the
database (**checkpoint-deleted**), or one the file and the database disagree on, are breaks; a
signed checkpoint beyond the chain's end is a **truncated** tail. Limits: a forged event appended
after the last checkpoint with correctly computed hashes, and events removed after the last
checkpoint, cannot be told from real ones; unchained (pending) events are counted, not judged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, Engine

from dhr.audit.chain import link_hash
from dhr.audit.checkpoints import Checkpoint, from_row, read_file
from dhr.audit.events import columns_of
from dhr.audit.model import GENESIS
from dhr.audit.signing import Verifier, checkpoints_file, load_verifier
from dhr.config import Settings
from dhr.store import audit_store
from dhr.store.db import unit_of_work

BreakKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "rewritten",
    "truncated",
    "bad-signature",
    "checkpoint-deleted",
    "checkpoint-mismatch",
]
BATCH = 5000
SEARCH_WINDOW = 1000  # seqs either side of a misplaced row searched for its original seq
SEARCH_LIMIT = 2_000_000  # the most seqs tried when the window does not find it


@dataclass(frozen=True)
class Break:
    kind: BreakKind
    seq: int
    detail: str

    def __str__(self) -> str:
        return f"seq {self.seq}: {self.kind}: {self.detail}"


@dataclass
class VerifyReport:
    """What ``verify`` found; ``first_break`` is None when the audit is intact."""

    chained: int = 0  # chained events checked
    head_seq: int = 0
    head_hash: str = GENESIS
    pending: int = 0  # events not chained yet (not a break)
    checkpoints: int = 0  # in the database
    file_checkpoints: int = 0  # in the NDJSON file
    first_break: Break | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return self.first_break is None

    def summary(self) -> str:
        state = "INTACT" if self.intact else f"BROKEN at {self.first_break}"
        return (
            f"audit chain {state}: {self.chained} chained events (head seq {self.head_seq}), "
            f"{self.pending} pending, {self.checkpoints} checkpoints in the database, "
            f"{self.file_checkpoints} in the checkpoint file"
        )


def verify(engine: Engine, settings: Settings, batch: int = BATCH) -> VerifyReport:
    """Check the whole chain and every checkpoint; the report names the first break."""
    key_file = settings.effective_audit_key_file
    report = VerifyReport()
    breaks: list[Break] = []
    # The file first: its lines are written after the database commit, so each is in the
    # database by the time the database is read.
    in_file = read_file(checkpoints_file(key_file))
    for number in in_file.unreadable:
        report.warnings.append(f"checkpoint file line {number} is unreadable")
    with unit_of_work(engine, write=False) as conn:
        in_db = {cp.seq: cp for cp in map(from_row, audit_store.all_checkpoints(conn))}
    report.checkpoints, report.file_checkpoints = len(in_db), len(in_file.by_seq)
    verifier = load_verifier(key_file) if _has_key(settings) else None
    signed = _check_checkpoints(in_db, in_file.by_seq, in_file.conflicting, verifier, breaks)
    for seq in sorted(set(in_db) - set(in_file.by_seq)):
        report.warnings.append(f"checkpoint at seq {seq} is not in the checkpoint file")
    chain_break = _walk(engine, signed, batch, report)
    if chain_break is not None:
        breaks.append(chain_break)
    else:
        beyond = [seq for seq in signed if seq > report.head_seq]
        if beyond:
            breaks.append(
                Break(
                    "truncated",
                    report.head_seq + 1,
                    f"a signed checkpoint covers seq {max(beyond)} but the chain ends at "
                    f"seq {report.head_seq}: events from seq {report.head_seq + 1} are gone",
                )
            )
    with unit_of_work(engine, write=False) as conn:
        report.pending = audit_store.pending_count(conn)
        half = audit_store.half_chained_count(conn)
    if half:
        report.warnings.append(f"{half} events have partial chain fields")
    if breaks:
        report.first_break = min(breaks, key=lambda b: b.seq)
    return report


def _has_key(settings: Settings) -> bool:
    key_file = settings.effective_audit_key_file
    return key_file.exists() or key_file.with_name(f"{key_file.stem}.pub.pem").exists()


def _check_checkpoints(
    in_db: dict[int, Checkpoint],
    in_file: dict[int, Checkpoint],
    conflicting: list[int],
    verifier: Verifier | None,
    breaks: list[Break],
) -> dict[int, str]:
    """Signature checks and file-vs-database checks; returns seq -> signed chain hash."""
    signed: dict[int, str] = {}
    for seq in conflicting:
        breaks.append(Break("checkpoint-mismatch", seq, "two different lines in the file"))
    for where, checkpoints in (("database", in_db), ("checkpoint file", in_file)):
        for seq, cp in checkpoints.items():
            if verifier is None:
                breaks.append(Break("bad-signature", seq, "no public key to check it with"))
            elif cp.key_id != verifier.key_id:
                breaks.append(
                    Break("bad-signature", seq, f"{where}: signed by unknown key {cp.key_id}")
                )
            elif not verifier.verify(cp.seq, cp.chain_hash, cp.signature):
                breaks.append(Break("bad-signature", seq, f"{where}: the signature is invalid"))
            else:
                signed.setdefault(seq, cp.chain_hash)
    for seq, cp in in_file.items():
        db_cp = in_db.get(seq)
        if db_cp is None:
            breaks.append(
                Break("checkpoint-deleted", seq, "in the checkpoint file but not the database")
            )
        elif db_cp.chain_hash != cp.chain_hash:
            breaks.append(
                Break("checkpoint-mismatch", seq, "the file and the database sign other hashes")
            )
    return signed


def _walk(engine: Engine, signed: dict[int, str], batch: int, report: VerifyReport) -> Break | None:
    """Stream the chain in seq order; the first break, classified, or None."""
    expected_seq, expected_prev = 1, GENESIS
    previous: Any = None
    while True:
        with unit_of_work(engine, write=False) as conn:
            rows = audit_store.chained_events(conn, expected_seq - 1, batch)
            for row in rows:
                if row.seq != expected_seq or not _links(row, expected_prev):
                    return _classify(conn, expected_seq, expected_prev, row, previous)
                wrong = _wrong_columns(row)
                if wrong:
                    return Break(
                        "edited",
                        row.seq,
                        f"its columns ({', '.join(wrong)}) no longer match its event data",
                    )
                checkpoint_hash = signed.get(row.seq)
                if checkpoint_hash is not None and checkpoint_hash != row.chain_hash:
                    return Break(
                        "rewritten",
                        row.seq,
                        "the chain differs from its signed checkpoint here: events up to this "
                        "seq were changed and the chain recomputed",
                    )
                report.chained += 1
                report.head_seq, report.head_hash = row.seq, row.chain_hash
                expected_seq, expected_prev, previous = expected_seq + 1, row.chain_hash, row
        if len(rows) < batch:
            return None


def _wrong_columns(row: Any) -> list[str]:
    """The search columns that differ from what the (hash-checked) event data says."""
    try:
        expected = columns_of(bytes(row.data))
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return ["data"]
    return [
        name
        for name, value in expected.items()
        if (bool(getattr(row, name)) if name == "break_glass" else getattr(row, name)) != value
    ]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _links(row: Any, expected_prev: str) -> bool:
    return bool(
        _sha(bytes(row.data)) == row.event_hash
        and row.prev_hash == expected_prev
        and row.chain_hash == link_hash(expected_prev, row.seq, row.event_hash)
    )


def _classify(conn: Connection, p: int, expected_prev: str, row: Any, previous: Any) -> Break:
    """Why the row found where seq ``p`` was expected does not link."""
    if row.seq != p:
        last = row.seq - 1
        span = f"seq {p}" if last == p else f"seqs {p}..{last}"
        return Break("deleted", p, f"{span} missing from the chain")
    data_hash = _sha(bytes(row.data))
    if data_hash != row.event_hash:
        moved = audit_store.seq_with_event_hash(conn, data_hash, p)
        if moved is not None:
            return Break("reordered", p, f"holds the event data of seq {moved}")
        return Break("edited", p, "the event data no longer matches its hash")
    if row.prev_hash is None or row.chain_hash is None:
        return Break("edited", p, "its chain fields were removed")
    if row.prev_hash == expected_prev:
        moved = _seq_chained_with(conn, row.event_hash, p)
        if moved is not None:
            return Break("reordered", p, f"holds the event chained at seq {moved}")
        if audit_store.seq_with_prev_hash(conn, expected_prev, p) is not None:
            return Break("inserted", p, f"another event also follows seq {p - 1}")
        return Break("edited", p, "its chain hash was altered")
    if previous is not None and row.prev_hash == previous.prev_hash:
        return Break("inserted", p - 1, f"seq {p} links past it to seq {p - 2}")
    original = _original_seq(conn, p, row)
    if original is None:
        return Break("inserted", p, "its chain fields were not written by the chainer")
    if original == p:
        return Break(
            "edited",
            p - 1,
            f"rewritten with recomputed hashes: seq {p} no longer links to it "
            f"(or seq {p} was inserted with a made-up link)",
        )
    predecessor_gone = (
        row.prev_hash != GENESIS and audit_store.seq_with_chain_hash(conn, row.prev_hash) is None
    )
    if original > p and predecessor_gone:
        return Break(
            "deleted",
            p,
            f"events removed and the rest renumbered: seq {p} holds the event chained at "
            f"seq {original}",
        )
    return Break("reordered", p, f"holds the event chained at seq {original}")


def _seq_chained_with(conn: Connection, event_hash: str, p: int) -> int | None:
    """A seq near ``p`` whose chain fields were computed over ``event_hash``."""
    for near in audit_store.chain_fields_between(conn, p - SEARCH_WINDOW, p + SEARCH_WINDOW):
        if near.seq != p and near.chain_hash == link_hash(near.prev_hash, near.seq, event_hash):
            return int(near.seq)
    return None


def _original_seq(conn: Connection, p: int, row: Any) -> int | None:
    """The seq the row's chain fields were computed for (a search; None if none fits)."""

    def fits(seq: int) -> bool:
        return bool(row.chain_hash == link_hash(row.prev_hash, seq, row.event_hash))

    if row.prev_hash == GENESIS:
        return 1 if fits(1) else None
    predecessor = audit_store.seq_with_chain_hash(conn, row.prev_hash)
    guesses = [p] + ([predecessor + 1] if predecessor is not None else [])
    guesses += range(max(1, p - SEARCH_WINDOW), p + SEARCH_WINDOW + 1)
    for seq in guesses:
        if fits(seq):
            return seq
    top = min(audit_store.max_seq(conn) + SEARCH_WINDOW, SEARCH_LIMIT)
    for seq in range(1, top + 1):
        if fits(seq):
            return seq
    return None
