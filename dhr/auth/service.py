"""``AuthServer``: issues and checks the access and ID tokens of DHR's SMART authorisation server.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token),
OpenID Connect Core 1.0 (https://openid.net/specs/openid-connect-core-1_0.html#IDToken) and
token revocation (RFC 7009, https://www.rfc-editor.org/rfc/rfc7009). Built once in
``create_app`` and kept on ``app.state.auth``; the token, authorise, introspection and
revocation endpoints and the bearer-token check all go through it.

Revocation across processes. A revoked ``jti`` is written to ``auth_revoked_token`` and added to
an in-memory set, so in the revoking process it fails on the very next request. Other worker
processes poll the table for new revocations at most once every :data:`POLL_SECONDS` (1 s),
from a request that needs the answer, so there a revoked token keeps working for up to about a
second. The alternative, one primary-key lookup per request, makes every authenticated request
pay a database round trip (the token check is otherwise a dict lookup); one indexed range query
per second per process is cheap, and a one-second window is far below the token lifetime (at
most an hour) that revocation cuts short.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Engine

from dhr.auth.keys import KeyRing
from dhr.auth.model import Principal
from dhr.auth.tokens import (
    ACCESS_TOKEN_TYP,
    ID_TOKEN_TYP,
    LEEWAY_SECONDS,
    InvalidToken,
    TTLCache,
    check_claims,
    sign,
    verified_claims,
)
from dhr.config import Settings
from dhr.store import auth_keys_store as store
from dhr.store.db import unit_of_work

POLL_SECONDS = 1.0
POLL_OVERLAP_SECONDS = 5  # re-read revocations this far back: clock skew and slow commits
PURGE_SECONDS = 60.0
MAX_ACCESS_TOKEN_SECONDS = 3600


class RevocationList:
    """Revoked access-token ids: the database table plus an in-memory copy polled each second."""

    def __init__(
        self,
        engine: Engine,
        *,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._revoked: dict[str, int] = {}  # jti -> the token's exp
        # Deactivated clients and users: their tokens stop working too (polled like the jtis).
        self.inactive_clients: frozenset[str] = frozenset()
        self.inactive_users: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._polled_at = -math.inf
        self._since = 0  # the next poll reads revocations made from here on
        self._purged_at = -math.inf

    def revoke(self, jti: str, expires_at: int) -> None:
        """Revoke ``jti`` now, here and (within a poll interval) in every other process."""
        now = int(self.clock())
        with unit_of_work(self.engine, write=True) as conn:
            store.record_revocation(conn, jti, expires_at, now)
            if now - self._purged_at >= PURGE_SECONDS:
                store.drop_expired_revocations(conn, now - LEEWAY_SECONDS)
        self._revoked[jti] = expires_at

    def is_revoked(self, jti: str) -> bool:
        if self.clock() - self._polled_at >= self.poll_seconds:
            self._poll()
        return jti in self._revoked

    def refresh(self) -> None:
        """Poll now (after this process deactivated a client or a user)."""
        self._polled_at = -math.inf
        self._poll()

    def _poll(self) -> None:
        with self._lock:
            started = self.clock()
            if started - self._polled_at < self.poll_seconds:
                return  # another thread polled while this one waited
            now = int(started)
            with unit_of_work(self.engine, write=False) as conn:
                rows = store.revocations_since(conn, self._since, now - LEEWAY_SECONDS)
                self.inactive_clients, self.inactive_users = store.deactivated(conn)
            revoked = self._revoked
            for jti, exp in rows:
                revoked[jti] = exp
            if started - self._purged_at >= PURGE_SECONDS:
                cutoff = now - LEEWAY_SECONDS
                self._revoked = {j: e for j, e in revoked.items() if e >= cutoff}
                self._purged_at = started
            self._since = now - POLL_OVERLAP_SECONDS
            self._polled_at = started


class AuthServer:
    """Token issuing and checking for one app: keys, settings, revocations and a token cache."""

    def __init__(
        self, settings: Settings, engine: Engine, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        self.keys = KeyRing(engine, clock=clock)
        self.revocations = RevocationList(engine, clock=clock)
        # Bearer token -> Principal, filled by dhr.auth.principal.authenticate.
        self.principals: TTLCache[Principal] = TTLCache()

    # --- issuing ---------------------------------------------------------------------------

    def issue_access_token(
        self,
        *,
        subject: str,
        client_id: str,
        scope: str,
        lifetime: int,
        patient: str | None = None,
        encounter: str | None = None,
        fhir_user: str | None = None,
        roles: Sequence[str] = (),
        organisation: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A signed access token for the FHIR base and its claims.

        Raises ValueError for a lifetime outside 1..3600 seconds (SMART: at most an hour).
        """
        if not 0 < lifetime <= MAX_ACCESS_TOKEN_SECONDS:
            raise ValueError(f"access token lifetime must be 1..3600 seconds, not {lifetime}")
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": subject,
            "aud": self.settings.fhir_base,
            "exp": now + lifetime,
            "iat": now,
            "jti": secrets.token_urlsafe(18),
            "client_id": client_id,
            "scope": scope,
        }
        optional = {
            "patient": patient,
            "encounter": encounter,
            "fhirUser": fhir_user,
            "org": organisation,
        }
        claims.update({k: v for k, v in optional.items() if v is not None})
        claims["roles"] = list(roles)
        return sign(claims, self.keys.current(), ACCESS_TOKEN_TYP), claims

    def issue_id_token(
        self,
        *,
        subject: str,
        client_id: str,
        fhir_user: str | None,
        nonce: str | None,
        lifetime: int,
    ) -> str:
        """An OpenID Connect ID token for ``client_id`` (``aud``), signed RS256."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": subject,
            "aud": client_id,
            "exp": now + lifetime,
            "iat": now,
        }
        if fhir_user is not None:
            claims["fhirUser"] = fhir_user
        if nonce is not None:
            claims["nonce"] = nonce
        return sign(claims, self.keys.current(), ID_TOKEN_TYP)

    # --- checking --------------------------------------------------------------------------

    def check_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unrevoked access token; raises InvalidToken saying why not."""
        claims = verified_claims(token, self.keys.verification_key, ACCESS_TOKEN_TYP)
        check_claims(
            claims,
            issuer=self.settings.issuer,
            audience=self.settings.fhir_base,
            now=self.clock(),
        )
        if self.is_revoked(claims["jti"]):
            raise InvalidToken("the token has been revoked")
        if claims.get("client_id") in self.revocations.inactive_clients:
            raise InvalidToken("the client this token was issued to has been deactivated")
        if claims.get("sub") in self.revocations.inactive_users:
            raise InvalidToken("the user this token was issued to has been deactivated")
        return claims

    def verify_access_token(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unrevoked access token for this FHIR base, else None."""
        try:
            return self.check_access_token(token)
        except InvalidToken:
            return None

    # --- revoking --------------------------------------------------------------------------

    def revoke_access_token(self, claims: Mapping[str, Any]) -> None:
        """Revoke the access token with these (verified) claims: it fails from now on."""
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise ValueError("the claims have no jti")
        exp = claims.get("exp")
        expires_at = int(exp) if isinstance(exp, int | float) else int(self.clock()) + 3600
        self.revocations.revoke(jti, expires_at)

    def is_revoked(self, jti: str) -> bool:
        return self.revocations.is_revoked(jti)
