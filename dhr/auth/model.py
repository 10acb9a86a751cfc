"""The typed values the authorisation layer hands around: scopes, principals, clients, users.

Scopes follow SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
``patient/``, ``user/`` and ``system/`` contexts, v2 actions ``cruds`` (v1 ``read``/``write``/``*``
are mapped onto them) and v2 granular restrictions such as ``?category=laboratory``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

ScopeContext = Literal["patient", "user", "system"]
ALL_ACTIONS = frozenset("cruds")


@dataclass(frozen=True)
class Scope:
    """One resource scope, e.g. ``patient/Observation.rs?category=laboratory``."""

    context: ScopeContext
    resource_type: str  # a FHIR type, or "*" for every type
    actions: frozenset[str]  # a subset of "cruds"
    params: tuple[tuple[str, str], ...] = ()  # v2 granular search-parameter restrictions
    raw: str = ""


class ClientKind(StrEnum):
    """How a client authenticates at the token endpoint."""

    PUBLIC = "public"  # no secret; PKCE only
    CONFIDENTIAL_SYMMETRIC = "confidential-symmetric"  # client_secret_basic / _post
    CONFIDENTIAL_ASYMMETRIC = "confidential-asymmetric"  # private_key_jwt, user-facing
    BACKEND = "backend"  # private_key_jwt, client_credentials only (Backend Services)


@dataclass(frozen=True)
class Principal:
    """Who is asking, as proven by a bearer token (or the open principal when auth is off).

    ``scopes`` are the resource scopes granted to this token; ``scope_text`` is the granted
    scope string exactly as issued. ``patient``/``encounter`` are the launch context;
    ``fhir_user`` is the user's own resource (``Practitioner/123``, ``Patient/9``).
    ``roles`` are national RBAC codes (R8000...) or DHR role names (patient, system...).
    """

    subject: str
    client_id: str | None = None
    scopes: tuple[Scope, ...] = ()
    scope_text: str = ""
    patient: str | None = None
    encounter: str | None = None
    fhir_user: str | None = None
    roles: tuple[str, ...] = ()
    organisation: str | None = None
    token_id: str | None = None
    expires_at: int | None = None
    open: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Why this request is made (set per request from its headers, dhr.access.purpose): an HL7
    # v3 PurposeOfUse code, whether the request stated it, and a break-glass reason.
    purpose: str = "TREAT"
    purpose_stated: bool = False
    break_glass_reason: str | None = None


OPEN_ACCESS = Principal(subject="anonymous", open=True)
