"""Tables of the unified record: source systems, their identifiers, patient linkage, controllers.

ARCHITECTURE.md "The unified record". Source systems and the joint-controller arrangement are
small reference tables; ``source_identity`` maps a source's own identifiers to server ids
(idempotent ingest); ``master_patient`` holds the one master Patient per NHS number;
``patient_link`` says which master each source Patient record is linked to, and
``patient_link_event`` records every link change (who, when, why) so that each is reversible.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from dhr.store.models import Base, Key


class SourceSystemRow(Base):
    """A feeding system: a registered backend client bound to an organisation and supplier."""

    __tablename__ = "source_system"

    source_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # slug
    name: Mapped[str] = mapped_column(String(200))
    supplier: Mapped[str] = mapped_column(String(32))  # EMIS, TPP, ...
    ods_code: Mapped[str] = mapped_column(String(16))  # the originating organisation
    client_id: Mapped[str] = mapped_column(String(255), unique=True)
    identifier_systems: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of URIs
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[int] = mapped_column(BigInteger)  # microseconds since the epoch


class SourceIdentityRow(Base):
    """One of a source's own keys for a resource (``id:...``, ``url:...``, ``ident:sys|val``)."""

    __tablename__ = "source_identity"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    source_id: Mapped[str] = mapped_column(String(64))
    res_type: Mapped[str] = mapped_column(String(64))
    local_key: Mapped[str] = mapped_column(String(512))
    res_id: Mapped[str] = mapped_column(String(64))
    # The source Patient record this resource is about (None: not patient data), so that
    # linking and unlinking that record moves exactly its data between compartments.
    record_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("source_id", "res_type", "local_key"),
        Index(None, "res_type", "res_id"),
        Index(None, "record_id"),
    )


class MasterPatientRow(Base):
    """The one master Patient of an NHS number."""

    __tablename__ = "master_patient"

    nhs_number: Mapped[str] = mapped_column(String(10), primary_key=True)
    res_id: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[int] = mapped_column(BigInteger)


class PatientLinkRow(Base):
    """A source's Patient record and the master it is linked to (None: unlinked, flagged)."""

    __tablename__ = "patient_link"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), nullable=True)
    master_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # When this record last named a (different) registered practice: the latest wins.
    registered_at: Mapped[int] = mapped_column(BigInteger)
    updated: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "master_id"),)


class PatientLinkEventRow(Base):
    """One link change: automatic (ingest by NHS number) or by an administrator."""

    __tablename__ = "patient_link_event"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))  # auto-link, link, unlink
    master_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # after
    previous_master_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # before
    actor: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "record_id", "key"),)


class ControllerArrangementRow(Base):
    """One version of the joint-controller arrangement (a JSON document, see
    :mod:`dhr.record.arrangement`); the highest version is in force."""

    __tablename__ = "controller_arrangement"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    recorded: Mapped[int] = mapped_column(BigInteger)
    recorded_by: Mapped[str] = mapped_column(String(255))
    document: Mapped[str] = mapped_column(Text)
