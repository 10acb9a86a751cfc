"""The relational schema (one for SQLite and PostgreSQL); changes go through Alembic migrations.

A resource is stored once per version as the exact compact JSON bytes accepted, with
``meta.versionId`` and ``meta.lastUpdated`` already in them, so reads serve bytes as stored
(https://hl7.org/fhir/R4/http.html#read). Times are integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The live resource rows whose patient key is "*" (several patients, or not worked out:
# dhr/store/patient_key.py), as a partial index's predicate and the probe that uses it.
SEVERAL_LIVE = "patient_key = '*' AND NOT deleted"

# A 64-bit key that still auto-increments on SQLite (only INTEGER PRIMARY KEY does there).
Key = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ResourceRow(Base):
    """One row per logical resource: its identity and which version is current."""

    __tablename__ = "resource"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer)
    deleted: Mapped[bool] = mapped_column(Boolean)
    last_updated: Mapped[int] = mapped_column(BigInteger)
    # The Patient whose record the current version belongs to (dhr/store/patient_key.py): NULL
    # none, "*" several or not yet worked out (the default, which the decision reads in full).
    patient_key: Mapped[str | None] = mapped_column(String(64), nullable=True, server_default="*")
    # Its controllers' ODS codes, " A X24 " (dhr/store/controller_codes.py): NULL none, "*" not
    # worked out (the default, which the decision reads from the _tag index rows).
    controllers: Mapped[str | None] = mapped_column(String(255), nullable=True, server_default="*")

    # (res_type, key): a type's rows in a page's order (migration 0010); the live rows of
    # several patients, by type (migration 0011: whether a search must judge any); a type's
    # rows of some patients (migration 0012: dhr/access/policy_support.py)
    __table_args__ = (
        UniqueConstraint("res_type", "res_id"),
        Index(None, "res_type", "key"),
        Index(None, "res_type", "patient_key"),
        Index(
            "ix_resource_several_patients",
            "res_type",
            postgresql_where=sql_text(SEVERAL_LIVE),
            sqlite_where=sql_text(SEVERAL_LIVE),
        ),
    )


class VersionRow(Base):
    """One row per version; ``key`` orders all writes server-wide (history paging)."""

    __tablename__ = "resource_version"

    key: Mapped[int] = mapped_column(Key, primary_key=True, autoincrement=True)
    resource_key: Mapped[int] = mapped_column(ForeignKey("resource.key"))
    res_type: Mapped[str] = mapped_column(String(64))
    res_id: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(8))
    deleted: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)

    __table_args__ = (
        UniqueConstraint("resource_key", "version_id"),
        Index(None, "res_type", "key"),
        Index(None, "last_updated"),
    )


class _IndexColumns:
    """Columns every search index table shares (https://hl7.org/fhir/R4/search.html).

    No key of their own (migration 0017): rows are found and deleted by their resource. The
    mapper needs one to map the class, which reads only (the store writes driver-level).
    """

    __mapper_args__: ClassVar[dict[str, Any]] = {"primary_key": ["resource_key", "param"]}
    # Indexed by each table's (resource_key, param, ...) index (migration 0002). Not a foreign
    # key (migration 0015, ADR 0005): the store writes a resource's rows with it, and the check
    # cost a lookup of the resource per row.
    resource_key: Mapped[int] = mapped_column(Key)
    res_type: Mapped[str] = mapped_column(String(64))
    param: Mapped[str] = mapped_column(String(100))
    grp: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    comp: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class TokenIndexRow(_IndexColumns, Base):
    """Token rows (https://hl7.org/fhir/R4/search.html#token); current versions only."""

    __tablename__ = "ix_token"

    system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code: Mapped[str | None] = mapped_column(String(255), nullable=True)
    text: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        Index(None, "res_type", "param", "code", "system"),
        Index(None, "resource_key", "param", "code", "system"),
    )


class StringIndexRow(_IndexColumns, Base):
    """String rows (https://hl7.org/fhir/R4/search.html#string)."""

    __tablename__ = "ix_string"

    norm: Mapped[str] = mapped_column(String(255))
    exact: Mapped[str] = mapped_column(String(255))

    __table_args__ = (
        Index(None, "res_type", "param", "norm", postgresql_ops={"norm": "text_pattern_ops"}),
        Index(None, "resource_key", "param", "norm"),
    )


class DateIndexRow(_IndexColumns, Base):
    """Date rows as [low, high) microsecond ranges (https://hl7.org/fhir/R4/search.html#date)."""

    __tablename__ = "ix_date"

    low: Mapped[int] = mapped_column(BigInteger)
    high: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "res_type", "param", "low"),
        Index(None, "res_type", "param", "high"),
        Index(None, "resource_key", "param", "low", "high"),
    )


class NumberIndexRow(_IndexColumns, Base):
    """Number rows (https://hl7.org/fhir/R4/search.html#number)."""

    __tablename__ = "ix_number"

    value: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index(None, "res_type", "param", "value"),
        Index(None, "resource_key", "param", "value"),
    )


class QuantityIndexRow(_IndexColumns, Base):
    """Quantity rows (https://hl7.org/fhir/R4/search.html#quantity)."""

    __tablename__ = "ix_quantity"

    value: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    system: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code: Mapped[str | None] = mapped_column(String(255), nullable=True)
    unit: Mapped[str | None] = mapped_column(String(255), nullable=True)

    __table_args__ = (
        Index(None, "res_type", "param", "code", "value"),
        Index(None, "resource_key", "param", "value"),
    )


class ReferenceIndexRow(_IndexColumns, Base):
    """Reference rows (https://hl7.org/fhir/R4/search.html#reference)."""

    __tablename__ = "ix_reference"

    target_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    url: Mapped[str | None] = mapped_column(String(512), nullable=True)

    __table_args__ = (
        Index(None, "res_type", "param", "target_id", "target_type"),
        Index(None, "target_id", "target_type"),
        # Only rows with an absolute URL: a search by one (``url = ...``) is all that reads it.
        Index(
            None,
            "res_type",
            "param",
            "url",
            postgresql_where=sql_text("url IS NOT NULL"),
            sqlite_where=sql_text("url IS NOT NULL"),
        ),
        Index(None, "resource_key", "param", "target_type", "target_id", "url"),
    )


class UriIndexRow(_IndexColumns, Base):
    """URI rows (https://hl7.org/fhir/R4/search.html#uri)."""

    __tablename__ = "ix_uri"

    uri: Mapped[str] = mapped_column(String(512))

    __table_args__ = (
        Index(None, "res_type", "param", "uri", postgresql_ops={"uri": "text_pattern_ops"}),
        Index(None, "resource_key", "param", "uri"),
    )


INDEX_TABLES: dict[str, type[_IndexColumns]] = {
    "token": TokenIndexRow,
    "string": StringIndexRow,
    "date": DateIndexRow,
    "number": NumberIndexRow,
    "quantity": QuantityIndexRow,
    "reference": ReferenceIndexRow,
    "uri": UriIndexRow,
}
