"""Source systems: the feeding systems (EMIS Web, TPP SystmOne, trust EPRs, pharmacies...).

ARCHITECTURE.md "Source systems": each is a registered SMART Backend Services client bound to an
organisation (ODS code) and a supplier. What a source sends is attributed to it from its
credentials (the token's client id), never from anything in the request.
:func:`register_source` holds the registration rules (``dhr sources add``, the demo, tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from dhr.record.vocab import source_uri

if TYPE_CHECKING:
    from sqlalchemy import Connection

SUPPLIERS = ("EMIS", "TPP", "CERNER", "EPIC", "SYSTEMC", "PHARMACY", "PRIVATE", "OTHER")


@dataclass(frozen=True)
class Source:
    """One registered source system."""

    source_id: str
    name: str
    supplier: str
    ods_code: str
    client_id: str
    identifier_systems: tuple[str, ...] = ()
    active: bool = True

    @property
    def uri(self) -> str:
        """``meta.source`` of everything this source sends."""
        return source_uri(self.source_id)


# --- registration (``dhr sources add``, the demo, tests) ---------------------------------------

# A source id is a slug: it becomes part of every ``meta.source`` URI the source's data carries.
SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# ODS organisation codes, validated as client registration does (dhr.auth.clients).
ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
_NAME_MAX = 200  # source_system.name


class SourceRegistrationError(ValueError):
    """A registration the server cannot accept; the message says why."""


def _check_identifier_system(uri: str) -> str:
    """An absolute URI (``https://...`` or ``urn:...``): the ``system`` of the source's own
    identifiers (FHIR R4 Identifier.system, https://hl7.org/fhir/R4/datatypes.html#Identifier)."""
    uri = uri.strip()
    parts = urlsplit(uri)
    if not parts.scheme or " " in uri or (parts.scheme in {"http", "https"} and not parts.netloc):
        raise SourceRegistrationError(f"identifier system {uri!r} must be an absolute URI")
    return uri


def _check_client(conn: Connection, client_id: str, ods_code: str) -> None:
    """The client must exist, be active, be a Backend Services client (the only kind that gets
    tokens on its own, by ``client_credentials`` with ``private_key_jwt``) and, when it is bound
    to an organisation, be bound to this one."""
    from dhr.auth.model import ClientKind
    from dhr.store.auth_client_store import client_row

    row = client_row(conn, client_id)
    if row is None:
        raise SourceRegistrationError(
            f"no client {client_id!r}: register it first with "
            "`dhr clients add --kind backend --jwks FILE ...`"
        )
    m = row._mapping
    if not m["active"]:
        raise SourceRegistrationError(f"client {client_id!r} is revoked")
    if m["kind"] != ClientKind.BACKEND.value:
        raise SourceRegistrationError(
            f"client {client_id!r} is a {m['kind']} client; a source must be a backend client "
            "(SMART Backend Services: client_credentials with a private_key_jwt assertion), "
            "so that what it sends can be attributed to it from its own credentials"
        )
    organisation = m["organisation"]
    if organisation and organisation != ods_code:
        raise SourceRegistrationError(
            f"client {client_id!r} is bound to organisation {organisation}, not {ods_code}"
        )


def register_source(
    conn: Connection,
    *,
    source_id: str,
    name: str,
    supplier: str,
    ods_code: str,
    client_id: str,
    identifier_systems: Iterable[str] = (),
    now: int | None = None,
) -> Source:
    """Validate and store a new source inside the caller's unit of work (nothing commits here).

    ``supplier`` is one of :data:`SUPPLIERS` (any case); ``now`` is microseconds since the
    epoch (default: the clock). Raises :class:`SourceRegistrationError` for anything the server
    would not accept: a malformed id, supplier or ODS code, an unknown, revoked or non-backend
    client, a source id or client already registered.
    """
    from dhr.store import source_store

    if not SOURCE_ID.match(source_id):
        raise SourceRegistrationError(
            f"source id {source_id!r} must be 1-64 lowercase letters, digits and hyphens, "
            "starting with a letter or digit"
        )
    name = name.strip()
    if not name or len(name) > _NAME_MAX:
        raise SourceRegistrationError(f"a source needs a name of 1-{_NAME_MAX} characters")
    supplier = supplier.strip().upper()
    if supplier not in SUPPLIERS:
        raise SourceRegistrationError(
            f"unknown supplier {supplier!r}: expected one of {', '.join(SUPPLIERS)}"
        )
    ods_code = ods_code.strip().upper()
    if not ODS_CODE.match(ods_code):
        raise SourceRegistrationError(f"{ods_code!r} is not an ODS code")
    systems = tuple(dict.fromkeys(_check_identifier_system(u) for u in identifier_systems))
    if source_store.get_source(conn, source_id) is not None:
        raise SourceRegistrationError(f"source {source_id!r} is already registered")
    _check_client(conn, client_id, ods_code)
    bound = source_store.source_by_client(conn, client_id)
    if bound is not None:
        raise SourceRegistrationError(
            f"client {client_id!r} is already the client of source {bound.source_id!r} "
            "(one source per client)"
        )
    source = Source(
        source_id=source_id,
        name=name,
        supplier=supplier,
        ods_code=ods_code,
        client_id=client_id,
        identifier_systems=systems,
        active=True,
    )
    created = now if now is not None else time.time_ns() // 1000
    if not source_store.insert_source(conn, source, created):  # registered meanwhile
        raise SourceRegistrationError(f"source {source_id!r} or client {client_id!r} is taken")
    return source
