"""Tables of the policy layer's own facts: the national data opt-out and access claims.

ARCHITECTURE.md "The policy layer". ``data_opt_out`` is the national data opt-out registry
(https://digital.nhs.uk/services/national-data-opt-out), one row per NHS number; it applies to
secondary uses only. ``access_claim`` holds what a requester declared about one patient for a
limited time: a break-glass declaration (purpose BTG or ETREAT with a reason) or a self-claimed
care relationship (with a reason, flagged for review). Claims are never deleted: they are
evidence for the privacy officer and are shown to the patient.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dhr.store.models import Base, Key


class DataOptOutRow(Base):
    """A national data opt-out recorded for one NHS number."""

    __tablename__ = "data_opt_out"

    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    recorded: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch
    recorded_by: Mapped[str] = mapped_column(String(255))


class AccessClaimRow(Base):
    """A time-limited declaration by one requester about one patient's record."""

    __tablename__ = "access_claim"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # break-glass | relationship
    subject: Mapped[str] = mapped_column(String(255))  # the principal's subject
    client_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    organisation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))  # BTG | ETREAT | TREAT
    reason: Mapped[str] = mapped_column(Text)
    started: Mapped[int] = mapped_column(BigInteger)
    expires: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "subject", "kind", "expires"),
        Index(None, "patient_id", "started"),
    )
