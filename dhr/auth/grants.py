"""The token endpoint's grants: client credentials, authorisation code (PKCE) and refresh token.

- ``client_credentials`` for Backend Services clients
  (https://hl7.org/fhir/smart-app-launch/backend-services.html#obtaining-an-access-token).
- ``authorization_code`` with PKCE S256 (RFC 7636 section 4.6,
  https://www.rfc-editor.org/rfc/rfc7636#section-4.6) and the SMART token response
  (https://hl7.org/fhir/smart-app-launch/app-launch.html#response-5): launch context,
  ``id_token`` for ``openid``, a refresh token for ``offline_access``/``online_access``.
- ``refresh_token`` (RFC 6749 section 6, https://www.rfc-editor.org/rfc/rfc6749#section-6 and
  https://hl7.org/fhir/smart-app-launch/app-launch.html#step-7-app-uses-a-refresh-token-to-obtain-a-new-access-token):
  bound to its client, rotated on use, optionally narrowed.

A code is single use: it is claimed with one conditional UPDATE. Presenting it again is treated as
a sign it leaked (OAuth 2.0 Security BCP, RFC 9700 section 4.5): the refresh tokens its client got
for that user since the code was issued are revoked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

from dhr.auth.client_auth import OAuthError
from dhr.auth.clients import Client
from dhr.auth.model import ClientKind
from dhr.auth.scopes import grant, split
from dhr.auth.service import AuthServer
from dhr.auth.users import get_user
from dhr.store import auth_client_store as store
from dhr.store.auth_user_store import session_username
from dhr.store.db import unit_of_work

_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 section 4.1
ID_TOKEN_SECONDS = 3600
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def _require(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if not value:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


def secret_hash(value: str) -> str:
    """How codes and refresh tokens are stored: the SHA-256 hex digest of the secret."""
    return hashlib.sha256(value.encode()).hexdigest()


def _token_body(token: str, claims: Mapping[str, Any], now: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(claims["exp"]) - now,
        "scope": claims["scope"],
    }
    for name in ("patient", "encounter"):
        if claims.get(name):
            body[name] = claims[name]
    if claims.get("patient"):
        body["need_patient_banner"] = True
    return body


# --- client_credentials ----------------------------------------------------------------------


def client_credentials(auth: AuthServer, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    """A short-lived system token for a Backend Services client, scopes cut to its ceiling."""
    if client.kind != ClientKind.BACKEND:
        raise OAuthError("unauthorized_client", "only backend clients may use client_credentials")
    requested = _require(form, "scope")
    granted = " ".join(s for s in split(grant(requested, client.scopes)) if s.startswith("system/"))
    if not granted:
        raise OAuthError("invalid_scope", "none of the requested scopes may be granted")
    now = int(auth.clock())
    token, claims = auth.issue_access_token(
        subject=client.client_id,
        client_id=client.client_id,
        scope=granted,
        lifetime=min(auth.settings.backend_token_seconds, 300),
        roles=("system",),
        organisation=client.organisation,
    )
    return _token_body(token, claims, now)


# --- authorization_code ----------------------------------------------------------------------


def _pkce_ok(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(computed, challenge)


def authorization_code(auth: AuthServer, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    """Redeem an authorisation code once: PKCE, redirect URI and client must all match."""
    if client.kind == ClientKind.BACKEND:
        raise OAuthError("unauthorized_client", "backend clients use client_credentials")
    code = _require(form, "code")
    redirect_uri = _require(form, "redirect_uri")
    verifier = _require(form, "code_verifier")
    if not _VERIFIER.match(verifier):
        raise OAuthError("invalid_request", "code_verifier must be 43-128 unreserved characters")
    code_hash = secret_hash(code)
    now = int(auth.clock())
    with unit_of_work(auth.engine, write=True) as conn:
        row = store.code_row(conn, code_hash)
        claimed = row is not None and store.mark_code_used(conn, code_hash)
        if row is not None and not claimed:
            issued = int(row.expires_at) - auth.settings.code_seconds - 5
            store.revoke_refresh_tokens_since(conn, row.client_id, row.username, issued)
    if row is None:
        raise _invalid_grant("the authorization code is not valid")
    if not claimed:
        raise _invalid_grant("the authorization code was already used")
    if row.client_id != client.client_id:
        raise _invalid_grant("the authorization code was issued to another client")
    if int(row.expires_at) <= now:
        raise _invalid_grant("the authorization code has expired")
    if row.redirect_uri != redirect_uri:
        raise _invalid_grant("redirect_uri does not match the authorization request")
    if not _pkce_ok(verifier, row.code_challenge):
        raise _invalid_grant("code_verifier does not match the code_challenge (S256)")
    return _user_tokens(
        auth,
        client,
        username=row.username,
        scope=row.scope,
        refresh_scope=row.scope,
        patient=row.patient,
        encounter=row.encounter,
        nonce=row.nonce,
        refresh_expires_at=None,
        id_token=True,
        session_hash=row.session_hash,
    )


def _user_tokens(
    auth: AuthServer,
    client: Client,
    *,
    username: str,
    scope: str,
    refresh_scope: str,
    patient: str | None,
    encounter: str | None,
    nonce: str | None,
    refresh_expires_at: int | None,
    id_token: bool,
    session_hash: str | None = None,
) -> dict[str, Any]:
    """The token response for a user's grant: access token, maybe id_token and refresh token.

    An ``online_access`` grant (without ``offline_access``) keeps ``session_hash``: its refresh
    token works only while the user's login session at this server lasts.
    """
    user = get_user(auth.engine, username)
    if user is None or not user.active:
        raise _invalid_grant("the user who granted access is no longer active")
    now = int(auth.clock())
    token, claims = auth.issue_access_token(
        subject=user.username,
        client_id=client.client_id,
        scope=scope,
        lifetime=auth.settings.access_token_seconds,
        patient=patient,
        encounter=encounter,
        fhir_user=user.fhir_user,
        roles=(user.role,),
        organisation=user.organisation,
    )
    body = _token_body(token, claims, now)
    words = set(split(scope))
    if id_token and "openid" in words:
        body["id_token"] = auth.issue_id_token(
            subject=user.username,
            client_id=client.client_id,
            fhir_user=user.fhir_user if "fhirUser" in words else None,
            nonce=nonce,
            lifetime=ID_TOKEN_SECONDS,
        )
    refresh_words = set(split(refresh_scope))
    if REFRESH_SCOPES & refresh_words:
        online = "offline_access" not in refresh_words
        online_session = session_hash if online else None
        refresh = secrets.token_urlsafe(32)
        expires_at = refresh_expires_at or now + auth.settings.refresh_token_seconds
        with unit_of_work(auth.engine, write=True) as conn:
            store.insert_refresh_token(
                conn,
                {
                    "token_hash": secret_hash(refresh),
                    "client_id": client.client_id,
                    "username": user.username,
                    "scope": refresh_scope,
                    "patient": patient,
                    "encounter": encounter,
                    "session_hash": online_session,
                    "expires_at": expires_at,
                    "revoked": False,
                    "created_at": now,
                },
            )
        body["refresh_token"] = refresh
    return body


# --- refresh_token ---------------------------------------------------------------------------


def refresh_token(auth: AuthServer, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
    """A new access token from a refresh token of this client; the refresh token is rotated.

    ``scope``, when given, must be covered by the original grant (it may only narrow); the new
    refresh token keeps the original grant's scope and expiry (RFC 6749 section 6).
    """
    if client.kind == ClientKind.BACKEND:
        raise OAuthError("unauthorized_client", "backend clients use client_credentials")
    presented = _require(form, "refresh_token")
    token_hash = secret_hash(presented)
    now = int(auth.clock())
    with unit_of_work(auth.engine, write=False) as conn:
        row = store.refresh_row(conn, token_hash)
    if row is None or row.client_id != client.client_id:
        raise _invalid_grant("the refresh token is not valid for this client")
    if row.revoked:
        raise _invalid_grant("the refresh token has been revoked")
    if row.expires_at is not None and int(row.expires_at) <= now:
        raise _invalid_grant("the refresh token has expired")
    if row.username is None:
        raise _invalid_grant("the refresh token is not valid for this client")
    if row.session_hash is not None and not _session_alive(auth, row.session_hash, now):
        raise _invalid_grant("online access ended with the user's login session")
    scope = row.scope
    if "scope" in form:
        requested = split(form["scope"])
        if not requested or split(grant(form["scope"], row.scope)) != requested:
            raise OAuthError("invalid_scope", "scope may only narrow the original grant")
        scope = " ".join(requested)
    with unit_of_work(auth.engine, write=True) as conn:
        if not store.revoke_refresh_token(conn, token_hash):
            raise _invalid_grant("the refresh token has been revoked")
    return _user_tokens(
        auth,
        client,
        username=row.username,
        scope=scope,
        refresh_scope=row.scope,
        patient=row.patient,
        encounter=row.encounter,
        nonce=None,
        refresh_expires_at=int(row.expires_at) if row.expires_at is not None else None,
        id_token=False,
        session_hash=row.session_hash,
    )


def _session_alive(auth: AuthServer, session_hash: str, now: int) -> bool:
    """Whether the login session behind an ``online_access`` grant is still open."""
    with unit_of_work(auth.engine, write=False) as conn:
        return session_username(conn, session_hash, now) is not None
