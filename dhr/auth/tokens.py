"""Signing and checking the server's JWTs: access tokens and OpenID Connect ID tokens.

JWT (RFC 7519, https://www.rfc-editor.org/rfc/rfc7519) in JWS compact form (RFC 7515) signed
RS256. Access tokens carry ``typ: at+jwt`` (RFC 9068 section 2.1,
https://www.rfc-editor.org/rfc/rfc9068) so an ID token, signed by the same key, is never taken
for one. Claims follow SMART App Launch 2.2
(https://hl7.org/fhir/smart-app-launch/app-launch.html#response-5) and OpenID Connect Core 1.0
section 2 (https://openid.net/specs/openid-connect-core-1_0.html#IDToken).

Nothing here reads the database; :mod:`dhr.auth.service` wires keys, settings and revocations.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from dhr.auth.keys import ALG, SigningKey

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a media type, not a secret
ID_TOKEN_TYP = "JWT"  # noqa: S105
LEEWAY_SECONDS = 5
MAX_TOKEN_CHARS = 8192

V = TypeVar("V")


class InvalidToken(Exception):  # noqa: N818 - the RFC 6750 error name
    """A token that must not be accepted; the message says why (safe to show the client)."""


def sign(claims: Mapping[str, Any], key: SigningKey, typ: str) -> str:
    """``claims`` as a compact JWS signed RS256 by ``key`` (header names its ``kid``)."""
    header = {"alg": ALG, "kid": key.kid, "typ": typ}
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, key.key, algorithms=[ALG])


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidToken("the token is not a well-formed JWT") from exc


def verified_claims(token: str, lookup: Callable[[str], RSAKey | None], typ: str) -> dict[str, Any]:
    """The claims of ``token`` once its RS256 signature checks out against key ``kid``.

    Only RS256 is accepted (never ``none``, never HMAC with the public key), the header must
    name a known ``kid``, the ``typ`` must match and no ``crit`` extension is understood.
    Raises :class:`InvalidToken`. Claim values (iss, aud, exp...) are the caller's to check.
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidToken("the token is too long")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise InvalidToken("the token is not a signed JWT")
    header = _b64_json(parts[0])
    if not isinstance(header, dict):
        raise InvalidToken("the token header is not a JSON object")
    if header.get("alg") != ALG:
        raise InvalidToken(f"the token must be signed {ALG}")
    if str(header.get("typ", "")).lower() != typ.lower():
        raise InvalidToken(f"the token type must be {typ}")
    if "crit" in header:
        raise InvalidToken("the token has critical header parameters this server does not know")
    kid = header.get("kid")
    key = lookup(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidToken("the token is not signed by a key of this server")
    try:
        payload = jws.deserialize_compact(token, key, algorithms=[ALG]).payload
    except JoseError as exc:
        raise InvalidToken("the token signature is invalid") from exc
    try:
        claims = json.loads(payload)
    except ValueError as exc:
        raise InvalidToken("the token claims are not JSON") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("the token claims are not a JSON object")
    return claims


def check_claims(claims: Mapping[str, Any], *, issuer: str, audience: str, now: float) -> None:
    """Raise :class:`InvalidToken` unless ``claims`` are a current access token for ``audience``.

    ``iss`` must be ``issuer``; ``aud`` must be (or list) ``audience``; ``exp`` must be in the
    future and ``iat`` not in it (both with :data:`LEEWAY_SECONDS`); ``sub``, ``jti``,
    ``client_id`` and ``scope`` must be strings.
    """
    if claims.get("iss") != issuer:
        raise InvalidToken("the token was not issued by this server")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and audience in aud)):
        raise InvalidToken("the token is not meant for this FHIR server (aud)")
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None or iat is None:
        raise InvalidToken("the token lacks exp or iat")
    if now >= exp + LEEWAY_SECONDS:
        raise InvalidToken("the token has expired")
    if iat > now + LEEWAY_SECONDS:
        raise InvalidToken("the token was issued in the future")
    for name in ("sub", "jti", "client_id", "scope"):
        if not isinstance(claims.get(name), str):
            raise InvalidToken(f"the token lacks {name}")


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


class TTLCache(Generic[V]):
    """A bounded map whose entries vanish at their own expiry time.

    Reads take no lock. When full, expired entries go first, then the oldest half.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, now: float) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires_at, value = item
        if now >= expires_at:
            self._data.pop(key, None)
            return None
        return value

    def put(self, key: str, value: V, expires_at: float, now: float) -> None:
        with self._lock:
            if len(self._data) >= self.max_entries:
                self._evict(now)
            self._data[key] = (expires_at, value)

    def discard(self, key: str) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def _evict(self, now: float) -> None:
        items = list(self._data.items())
        live = [(k, v) for k, v in items if v[0] > now]
        if len(live) >= self.max_entries:
            live = live[len(live) // 2 :]
        self._data = dict(live)
