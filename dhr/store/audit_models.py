"""Tables of the audit: events (chained) and signed checkpoints. See :mod:`dhr.audit`.

``audit_event`` rows are inserted unchained (``seq`` NULL) by requests; the chainer gives them
``seq``, ``prev_hash`` and ``chain_hash`` in one place, in batches. ``recorded`` is in
microseconds since the epoch (UTC), like the resource tables; ``signed_at`` in seconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from dhr.store.models import Base, Key


class AuditEventRow(Base):
    """One AuditEvent (https://hl7.org/fhir/R4/auditevent.html) and its place in the chain."""

    __tablename__ = "audit_event"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    recorded: Mapped[int] = mapped_column(BigInteger)
    patient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agent: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str] = mapped_column(String(1))
    subtype: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(2))
    purpose: Mapped[str | None] = mapped_column(String(32), nullable=True)
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    event_hash: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index(None, "patient", "recorded"),
        Index(None, "agent", "recorded"),
        Index(None, "recorded"),
    )


class AuditCheckpointRow(Base):
    """An Ed25519 signature over the chain head at ``seq`` (every N events or T seconds)."""

    __tablename__ = "audit_checkpoint"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    chain_hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes] = mapped_column(LargeBinary)


AUDIT_TABLES = frozenset({AuditEventRow.__tablename__, AuditCheckpointRow.__tablename__})
