"""Signed checkpoints over the audit chain: in the database and in an NDJSON file beside the key.

A checkpoint is an Ed25519 signature (:mod:`dhr.audit.signing`) over ``f"{seq}:{chain_hash}"``
of the chain head, written every ``audit_checkpoint_events`` events or, when newer events exist,
every ``audit_checkpoint_seconds`` (and right away for a chain that has none yet). Each one is
also appended as one NDJSON line to ``<key dir>/audit-checkpoints.ndjson`` (fsync'ed after the
database commit), so that deleting the tail of the chain together with its database checkpoints
is still found by ``dhr audit verify``. Line format::

    {"seq": 1000, "chain_hash": "...", "signed_at": 1764095520, "key_id": "...",
     "signature": "<base64>"}
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from dhr.audit.signing import Signer
from dhr.store import audit_store


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    chain_hash: str
    signed_at: int  # seconds since the epoch
    key_id: str
    signature: bytes

    def to_line(self) -> bytes:
        return (
            orjson.dumps(
                {
                    "seq": self.seq,
                    "chain_hash": self.chain_hash,
                    "signed_at": self.signed_at,
                    "key_id": self.key_id,
                    "signature": base64.b64encode(self.signature).decode("ascii"),
                },
                option=orjson.OPT_SORT_KEYS,
            )
            + b"\n"
        )


def from_row(row: Any) -> Checkpoint:
    """A checkpoint from an ``audit_checkpoint`` row."""
    return Checkpoint(
        int(row.seq), str(row.chain_hash), int(row.signed_at), str(row.key_id), bytes(row.signature)
    )


def is_due(
    head_seq: int,
    last: Checkpoint | None,
    now: float,
    every_events: int,
    every_seconds: float,
) -> bool:
    """Should the head at ``head_seq`` be signed now, given the last checkpoint?"""
    if head_seq == 0:
        return False
    if last is None:
        return True
    if head_seq <= last.seq:
        return False
    return head_seq - last.seq >= every_events or now - last.signed_at >= every_seconds


def write_checkpoint(
    conn: Connection, signer: Signer, seq: int, chain_hash: str, now: float
) -> Checkpoint:
    """Sign the head and store the checkpoint in the caller's (chainer's) transaction."""
    checkpoint = Checkpoint(seq, chain_hash, int(now), signer.key_id, signer.sign(seq, chain_hash))
    audit_store.insert_checkpoint(
        conn, seq, chain_hash, checkpoint.signed_at, checkpoint.key_id, checkpoint.signature
    )
    return checkpoint


def append_to_file(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line (a single ``write`` in append mode, so processes do not interleave)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = checkpoint.to_line()
    if _ends_torn(path):  # a crash cut the last line short: start on a fresh line
        line = b"\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_torn(path: Path) -> bool:
    try:
        with path.open("rb") as existing:
            existing.seek(0, os.SEEK_END)
            if existing.tell() == 0:
                return False
            existing.seek(-1, os.SEEK_END)
            return existing.read(1) != b"\n"
    except FileNotFoundError:
        return False


@dataclass(frozen=True)
class FileCheckpoints:
    """What the NDJSON file holds: checkpoints by seq, and lines that could not be read."""

    by_seq: dict[int, Checkpoint]
    unreadable: list[int]  # line numbers (1-based)
    conflicting: list[int]  # seqs with two different lines


def read_file(path: Path) -> FileCheckpoints:
    """Every checkpoint in the file (none if it does not exist)."""
    by_seq: dict[int, Checkpoint] = {}
    unreadable: list[int] = []
    conflicting: list[int] = []
    if not path.exists():
        return FileCheckpoints(by_seq, unreadable, conflicting)
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
                checkpoint = Checkpoint(
                    int(item["seq"]),
                    str(item["chain_hash"]),
                    int(item["signed_at"]),
                    str(item["key_id"]),
                    base64.b64decode(item["signature"], validate=True),
                )
            except (ValueError, KeyError, TypeError):
                unreadable.append(number)
                continue
            seen = by_seq.get(checkpoint.seq)
            if seen is not None and seen != checkpoint:
                conflicting.append(checkpoint.seq)
            by_seq.setdefault(checkpoint.seq, checkpoint)
    return FileCheckpoints(by_seq, unreadable, conflicting)
