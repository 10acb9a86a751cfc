"""Client authentication at the token endpoint.

RFC 6749 section 2.3 (https://www.rfc-editor.org/rfc/rfc6749#section-2.3): ``client_secret_basic``
and ``client_secret_post`` for confidential-symmetric clients
(https://hl7.org/fhir/smart-app-launch/client-confidential-symmetric.html); public clients name
themselves with ``client_id`` alone (PKCE then protects the code); ``private_key_jwt``
(RFC 7523 section 3, https://www.rfc-editor.org/rfc/rfc7523#section-3) for confidential-asymmetric
and Backend Services clients, following SMART's key-resolution algorithm
(https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html#signature-verification).

Every failure is an :class:`OAuthError` rendered per RFC 6749 section 5.2: ``invalid_client``
(401) when authentication fails, ``invalid_request`` (400) when the request is malformed.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from dhr.auth.clients import Client, get_client, verify_secret
from dhr.auth.model import ClientKind
from dhr.auth.service import AuthServer
from dhr.store import auth_client_store as store
from dhr.store.db import unit_of_work

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The signature algorithms SMART names, and the key type each needs (with its curve for EC).
ASSERTION_ALGS: Mapping[str, tuple[str, str | None]] = {
    "RS384": ("RSA", None),
    "ES384": ("EC", "P-384"),
}
MAX_ASSERTION_SECONDS = 300  # "exp ... SHALL be no more than five minutes in the future"
CLOCK_SKEW = 10  # seconds of tolerance between the client's clock and ours
MAX_JTI_LENGTH = 255
JWKS_FETCH_SECONDS = 5.0
JWKS_CACHE_SECONDS = 300  # at most; less when the client's Cache-Control says so


@dataclass
class OAuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 section 5.2): ``{"error", "error_description"}``."""

    error: str
    description: str
    status: int = 400
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.error}: {self.description}"

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class JwksFetchError(Exception):
    """A client's JWK Set URL did not answer with a usable JWK Set."""


class JwksCache:
    """Client JWK Sets fetched from their registered URLs, kept for a few minutes.

    SMART: the server SHALL NOT cache a JWK Set longer than the client's Cache-Control allows.
    """

    def __init__(self, max_seconds: int = JWKS_CACHE_SECONDS) -> None:
        self.max_seconds = max_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def keys(self, url: str, *, refresh: bool = False) -> tuple[list[dict[str, Any]], bool]:
        """The keys at ``url`` and whether they were fetched just now (not from the cache).

        The cache is used unless its entry is stale or ``refresh`` is asked for.
        """
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(url)
        if entry is not None and not refresh and entry[0] > now:
            return entry[1], False
        keys, ttl = self._fetch(url)
        with self._lock:
            if ttl > 0:
                self._entries[url] = (now + ttl, keys)
            else:
                self._entries.pop(url, None)
        return keys, True

    def _fetch(self, url: str) -> tuple[list[dict[str, Any]], int]:
        try:
            resp = httpx.get(
                url, headers={"Accept": "application/json"}, timeout=JWKS_FETCH_SECONDS
            )
        except httpx.HTTPError as exc:
            raise JwksFetchError(type(exc).__name__) from exc
        if resp.status_code != 200:
            raise JwksFetchError(f"HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError as exc:
            raise JwksFetchError("not JSON") from exc
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list):
            raise JwksFetchError('no "keys" list')
        return [k for k in keys if isinstance(k, dict)], self._ttl(resp.headers)

    def _ttl(self, headers: httpx.Headers) -> int:
        directives = [d.strip().lower() for d in headers.get("cache-control", "").split(",")]
        if "no-store" in directives or "no-cache" in directives:
            return 0
        for d in directives:
            name, _, value = d.partition("=")
            if name.strip() == "max-age" and value.strip().isdigit():
                return min(self.max_seconds, int(value.strip()))
        return self.max_seconds


JWKS_CACHE = JwksCache()


def token_url(auth: AuthServer) -> str:
    """The token endpoint URL: the ``aud`` every client assertion must carry."""
    return f"{auth.settings.auth_base}/token"


def _invalid_client(description: str, *, basic: bool = False) -> OAuthError:
    headers = {"WWW-Authenticate": 'Basic realm="DHR", charset="UTF-8"'} if basic else {}
    return OAuthError("invalid_client", description, status=401, headers=headers)


def _invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def authenticate_client(
    auth: AuthServer,
    form: Mapping[str, str],
    authorization_header: str | None,
    *,
    required: bool,
) -> Client | None:
    """The client this token request comes from, authenticated as its registration requires.

    ``required=False`` returns None for a request that names no client at all; otherwise an
    unidentified or unauthenticated client raises :class:`OAuthError` (``invalid_client``).
    A request may use only one authentication method (RFC 6749 section 2.3).
    """
    basic = _basic_credentials(authorization_header)
    assertion = "client_assertion" in form or "client_assertion_type" in form
    methods = [basic is not None, assertion, "client_secret" in form]
    if sum(methods) > 1:
        raise _invalid_request("use exactly one client authentication method")
    if basic is not None:
        client_id, secret = basic
        if form.get("client_id", client_id) != client_id:
            raise _invalid_request("client_id does not match the Authorization header")
        return _symmetric(auth, client_id, secret, basic=True)
    if assertion:
        return _private_key_jwt(auth, form)
    client_id = form.get("client_id", "")
    if "client_secret" in form:
        return _symmetric(auth, client_id, form["client_secret"], basic=False)
    if not client_id:
        if required:
            raise _invalid_client("client authentication is required")
        return None
    client = _active_client(auth, client_id)
    if client.kind != ClientKind.PUBLIC:
        raise _invalid_client(f"client {client_id!r} must authenticate ({_method(client)})")
    return client


def _method(client: Client) -> str:
    if client.uses_private_key_jwt:
        return "private_key_jwt"
    if client.kind == ClientKind.CONFIDENTIAL_SYMMETRIC:
        return "client_secret_basic or client_secret_post"
    return "none"


def _active_client(auth: AuthServer, client_id: str, *, basic: bool = False) -> Client:
    client = get_client(auth.engine, client_id) if client_id else None
    if client is None or not client.active:
        raise _invalid_client("unknown or inactive client", basic=basic)
    return client


# --- client_secret_basic / client_secret_post ------------------------------------------------


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client_id, secret) from ``Authorization: Basic``; None for no or another scheme."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _invalid_client("malformed Basic credentials", basic=True) from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _invalid_client("malformed Basic credentials", basic=True)
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
    return unquote_plus(client_id), unquote_plus(secret)


def _symmetric(auth: AuthServer, client_id: str, secret: str, *, basic: bool) -> Client:
    client = _active_client(auth, client_id, basic=basic)
    if client.kind != ClientKind.CONFIDENTIAL_SYMMETRIC:
        raise _invalid_client(f"client {client_id!r} must use {_method(client)}", basic=basic)
    if not verify_secret(secret, client.secret_hash):
        raise _invalid_client("client authentication failed", basic=basic)
    return client


# --- private_key_jwt -------------------------------------------------------------------------


def _segment(part: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise _invalid_client("client_assertion is not a signed JWT") from exc
    if not isinstance(value, dict):
        raise _invalid_client("client_assertion is not a signed JWT")
    return value


def _private_key_jwt(auth: AuthServer, form: Mapping[str, str]) -> Client:
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise _invalid_request(f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion = form.get("client_assertion", "")
    if not assertion:
        raise _invalid_request("client_assertion is missing")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise _invalid_client("client_assertion is not a signed JWT (JWS compact form)")
    header, unverified = _segment(parts[0]), _segment(parts[1])
    iss, sub = unverified.get("iss"), unverified.get("sub")
    if not isinstance(iss, str) or not iss or iss != sub:
        raise _invalid_client("the assertion's iss and sub must both be the client_id")
    if form.get("client_id", iss) != iss:
        raise _invalid_client("client_id does not match the assertion's iss")
    client = _active_client(auth, iss)
    if not client.uses_private_key_jwt:
        raise _invalid_client(f"client {iss!r} must use {_method(client)}")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ASSERTION_ALGS:
        raise _invalid_client(f"assertion alg {alg!r} is not accepted (use RS384 or ES384)")
    if not isinstance(kid, str) or not kid:
        raise _invalid_client("the assertion header needs a kid")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise _invalid_client("the assertion header typ must be JWT")
    jku = header.get("jku")
    if jku is not None and jku != client.jwks_url:
        raise _invalid_client("the assertion's jku is not the client's registered JWK Set URL")
    claims = _verified_claims(client, assertion, alg, kid)
    _check_claims(auth, client, claims)
    return client


def _candidates(keys: list[dict[str, Any]], alg: str, kid: str) -> list[dict[str, Any]]:
    kty, crv = ASSERTION_ALGS[alg]
    return [
        k
        for k in keys
        if k.get("kid") == kid and k.get("kty") == kty and (crv is None or k.get("crv") == crv)
    ]


def _verified_claims(client: Client, assertion: str, alg: str, kid: str) -> dict[str, Any]:
    """The assertion's claims once its signature checks out against the one key named ``kid``."""
    if client.jwks is not None:
        found = _candidates(list(client.jwks.get("keys", [])), alg, kid)
    elif client.jwks_url is not None:
        try:
            keys, fetched = JWKS_CACHE.keys(client.jwks_url)
            found = _candidates(keys, alg, kid)
            if not found and not fetched:  # the client may have rotated its keys since
                keys, _ = JWKS_CACHE.keys(client.jwks_url, refresh=True)
                found = _candidates(keys, alg, kid)
        except JwksFetchError as exc:
            raise _invalid_client(f"the client's JWK Set could not be fetched: {exc}") from exc
    else:
        found = []
    if len(found) != 1:
        why = "no" if not found else "more than one"
        raise _invalid_client(f"{why} registered {alg} key has kid {kid!r}")
    try:
        key = KeySet.import_key_set({"keys": found}).keys[0]
        token = jwt.decode(assertion, key, algorithms=[alg])
    except (JoseError, ValueError, TypeError) as exc:
        raise _invalid_client("the assertion's signature does not verify") from exc
    return dict(token.claims)


def _check_claims(auth: AuthServer, client: Client, claims: Mapping[str, Any]) -> None:
    """RFC 7523 section 3 and SMART's claim rules (aud, exp, nbf, jti never reused)."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if token_url(auth) not in audiences:
        raise _invalid_client(f"the assertion's aud must be the token URL {token_url(auth)}")
    now = int(auth.clock())
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise _invalid_client("the assertion needs a numeric exp")
    if exp < now - CLOCK_SKEW:
        raise _invalid_client("the assertion has expired")
    if exp > now + MAX_ASSERTION_SECONDS + CLOCK_SKEW:
        raise _invalid_client("the assertion's exp is more than five minutes ahead")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf > now + CLOCK_SKEW:
        raise _invalid_client("the assertion is not valid yet (nbf)")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise _invalid_client("the assertion needs a jti (at most 255 characters)")
    with unit_of_work(auth.engine, write=True) as conn:
        fresh = store.record_assertion_jti(conn, client.client_id, jti, int(exp) + CLOCK_SKEW, now)
    if not fresh:
        raise _invalid_client("the assertion's jti was already used")
