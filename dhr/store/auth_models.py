"""Tables of the authorisation server: signing keys, clients, users, codes, tokens, launches,
and sign-ins in progress at external OpenID Connect providers.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/) and RFC 6749/7009/7662/7523.
Secrets (client secrets, passwords, codes, refresh tokens, login sessions) are never stored in
clear: only their hash. Times here are integer seconds since the epoch (UTC), as in JWT claims.
The tables share :class:`dhr.store.models.Base` so one Alembic history covers them
(migration 0003).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dhr.store.models import Base


class SigningKeyRow(Base):
    """A private signing key; the newest unretired one signs, retired ones stay in the JWKS."""

    __tablename__ = "auth_signing_key"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_pem: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class ClientRow(Base):
    """A registered OAuth client (SMART app or Backend Services client)."""

    __tablename__ = "auth_client"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))  # dhr.auth.model.ClientKind
    secret_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    jwks: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON JWK Set, inline
    jwks_url: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    redirect_uris: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    scopes: Mapped[str] = mapped_column(Text)  # the most this client may be granted
    origins: Mapped[str] = mapped_column(Text, default="[]")  # JSON list (CORS)
    organisation: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ODS code
    launch_uri: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class UserRow(Base):
    """A local user of the embedded default (staff or patient)."""

    __tablename__ = "auth_user"

    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))  # dhr.auth.roles code
    fhir_user: Mapped[str | None] = mapped_column(String(128), nullable=True)  # Type/id
    organisation: Mapped[str | None] = mapped_column(String(32), nullable=True)  # ODS code
    display: Mapped[str] = mapped_column(String(255), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class AuthorizationCodeRow(Base):
    """An authorisation code: single use, short-lived, bound to client, redirect and PKCE."""

    __tablename__ = "auth_code"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    username: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(1024))
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    patient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    encounter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    session_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the login
    expires_at: Mapped[int] = mapped_column(BigInteger)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class LaunchRow(Base):
    """An EHR launch context, obtained by the launching EHR and redeemed by the app."""

    __tablename__ = "auth_launch"

    launch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    encounter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # the app launched
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[int] = mapped_column(BigInteger)


class RefreshTokenRow(Base):
    """A refresh token (``offline_access`` / ``online_access``), bound to its client."""

    __tablename__ = "auth_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(128), nullable=True)
    scope: Mapped[str] = mapped_column(Text)
    patient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    encounter: Mapped[str | None] = mapped_column(String(64), nullable=True)
    session_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # online_access
    expires_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)


class RevokedTokenRow(Base):
    """An access token revoked before it expired (RFC 7009); kept until it would expire."""

    __tablename__ = "auth_revoked_token"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "revoked_at"),)


class AssertionJtiRow(Base):
    """A client assertion ``jti`` already used (RFC 7523: never accepted twice)."""

    __tablename__ = "auth_assertion_jti"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger)


class LoginSessionRow(Base):
    """A browser login session at the authorisation server (cookie holds the secret)."""

    __tablename__ = "auth_session"

    session_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[int] = mapped_column(BigInteger)


class FederationStateRow(Base):
    """A sign-in in progress at an external OpenID Connect provider (single use, short-lived).

    Keyed by the SHA-256 of the ``state`` sent to the provider; ``browser_hash`` binds it to the
    browser that started it (a cookie secret), ``nonce_hash`` is checked against the ID token and
    ``code_verifier`` (RFC 7636) is sent with the code to the provider's token endpoint.
    """

    __tablename__ = "auth_federation_state"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    browser_hash: Mapped[str] = mapped_column(String(64))
    nonce_hash: Mapped[str] = mapped_column(String(64))
    code_verifier: Mapped[str] = mapped_column(String(128))
    next_url: Mapped[str] = mapped_column(Text)  # a local /auth/authorize URL, or ""
    expires_at: Mapped[int] = mapped_column(BigInteger)


AUTH_TABLES = frozenset(
    t.__tablename__
    for t in (
        SigningKeyRow,
        ClientRow,
        UserRow,
        AuthorizationCodeRow,
        LaunchRow,
        RefreshTokenRow,
        RevokedTokenRow,
        AssertionJtiRow,
        LoginSessionRow,
        FederationStateRow,
    )
)
