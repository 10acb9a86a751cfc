"""The client registry: SMART apps and Backend Services clients, registered out of band.

SMART App Launch 2.2 client types (https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr):
public apps (PKCE only), confidential-symmetric apps (a client secret,
https://hl7.org/fhir/smart-app-launch/client-confidential-symmetric.html), confidential-asymmetric
apps and Backend Services clients (a JWK Set, inline or at a URL,
https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html#registering-a-client-communicating-public-keys).
A client secret is shown once, when it is made, and stored only as a salted scrypt hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import Engine, Row

from dhr.auth.cors import normalise_origin
from dhr.auth.model import ClientKind
from dhr.auth.scopes import parse_scope
from dhr.store import auth_client_store as store
from dhr.store.db import unit_of_work

# scrypt cost: 16 MiB of memory, ~40 ms a check. Secrets are 256 random bits, so this is defence
# in depth for a leaked table rather than the only thing between an attacker and the secret.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")
_ASYMMETRIC = frozenset({ClientKind.CONFIDENTIAL_ASYMMETRIC, ClientKind.BACKEND})
_USER_FACING = frozenset(
    {ClientKind.PUBLIC, ClientKind.CONFIDENTIAL_SYMMETRIC, ClientKind.CONFIDENTIAL_ASYMMETRIC}
)
# Key types allowed for client assertions (RS384 and ES384; SMART client-confidential-asymmetric).
_KEY_TYPES = frozenset({"RSA", "EC"})


class ClientRegistrationError(ValueError):
    """A registration the server cannot accept; the message says why."""


@dataclass(frozen=True)
class Client:
    """A registered client, as stored in ``auth_client`` (JSON columns decoded)."""

    client_id: str
    name: str
    kind: ClientKind
    scopes: str  # the most this client may ever be granted
    redirect_uris: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    organisation: str | None = None
    jwks: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    jwks_url: str | None = None
    launch_uri: str | None = None
    active: bool = True
    created_at: int = 0
    secret_hash: str | None = field(default=None, repr=False)

    @property
    def uses_private_key_jwt(self) -> bool:
        return self.kind in _ASYMMETRIC

    @property
    def is_public(self) -> bool:
        return self.kind == ClientKind.PUBLIC


# --- secrets ---------------------------------------------------------------------------------


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64url, unpadded) of ``secret`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str | None) -> bool:
    """Whether ``secret`` matches the stored hash (constant-time comparison)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- validation ------------------------------------------------------------------------------


def _check_redirect_uri(uri: str) -> str:
    """An absolute URI without a fragment (RFC 6749 section 3.1.2)."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise ClientRegistrationError(f"redirect URI {uri!r} must be absolute, with no fragment")
    if parts.scheme in {"http", "https"} and not parts.hostname:
        raise ClientRegistrationError(f"redirect URI {uri!r} has no host")
    return uri


def _check_origin(origin: str) -> str:
    """A web origin, normalised as the CORS layer compares them: ``scheme://host[:port]``."""
    normalised = normalise_origin(origin)
    if normalised is None or "#" in origin:
        raise ClientRegistrationError(f"origin {origin!r} must be scheme://host[:port]")
    return normalised


def _check_scopes(kind: ClientKind, scopes: str) -> str:
    """The client's scope ceiling: well formed, and only what its kind can ever be granted."""
    words = scopes.split()
    if not words:
        raise ClientRegistrationError("a client needs at least one allowed scope")
    for word in words:
        try:
            parsed = parse_scope(word)
        except ValueError as exc:
            raise ClientRegistrationError(f"malformed scope {word!r}: {exc}") from exc
        if kind == ClientKind.BACKEND and (parsed is None or parsed.context != "system"):
            raise ClientRegistrationError(
                f"a backend client may only hold system/ scopes, not {word!r}"
            )
        if kind != ClientKind.BACKEND and parsed is not None and parsed.context == "system":
            raise ClientRegistrationError(
                f"system/ scopes are for backend clients only, not a {kind.value} client"
            )
    return " ".join(dict.fromkeys(words))


def check_jwks(jwks: Mapping[str, Any]) -> dict[str, Any]:
    """A JWK Set of public RSA/EC keys, each with a unique ``kid`` (no private material)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ClientRegistrationError('a JWK Set needs a non-empty "keys" list')
    kids: set[str] = set()
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES:
            raise ClientRegistrationError("each JWK must be an RSA or EC key")
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            raise ClientRegistrationError('each JWK needs a "kid"')
        if kid in kids:
            raise ClientRegistrationError(f"kid {kid!r} appears twice in the JWK Set")
        if "d" in key:
            raise ClientRegistrationError(f"JWK {kid!r} holds a private key; register public keys")
        kids.add(kid)
    try:
        KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError) as exc:
        raise ClientRegistrationError(f"the JWK Set cannot be read: {exc}") from exc
    return {"keys": keys}


def _check_jwks_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ClientRegistrationError(f"JWK Set URL {url!r} must be an absolute http(s) URL")
    return url


# --- registry --------------------------------------------------------------------------------


def register_client(
    engine: Engine,
    *,
    client_id: str | None = None,
    name: str,
    kind: ClientKind,
    redirect_uris: Iterable[str] = (),
    scopes: str,
    origins: Iterable[str] = (),
    organisation: str | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    launch_uri: str | None = None,
) -> tuple[Client, str | None]:
    """Register a client; returns it and, for a confidential-symmetric client, its new secret.

    The secret is returned this once and never stored in clear.
    Raises :class:`ClientRegistrationError` for anything the server would not accept.
    """
    kind = ClientKind(kind)
    client_id = client_id or secrets.token_urlsafe(18)
    if not _CLIENT_ID.match(client_id):
        raise ClientRegistrationError(f"client id {client_id!r} must be 1-128 URL-safe characters")
    if not name.strip():
        raise ClientRegistrationError("a client needs a name")
    uris = tuple(dict.fromkeys(_check_redirect_uri(u) for u in redirect_uris))
    if kind in _USER_FACING and not uris:
        raise ClientRegistrationError(f"a {kind.value} client needs a redirect URI")
    if kind == ClientKind.BACKEND and uris:
        raise ClientRegistrationError("a backend client has no redirect URIs")
    checked_origins = tuple(dict.fromkeys(_check_origin(o) for o in origins))
    if organisation is not None:
        organisation = organisation.strip().upper()
        if not _ODS_CODE.match(organisation):
            raise ClientRegistrationError(f"{organisation!r} is not an ODS code")
    if kind in _ASYMMETRIC:
        if (jwks is None) == (jwks_url is None):
            raise ClientRegistrationError(
                f"a {kind.value} client needs exactly one of a JWK Set or a JWK Set URL"
            )
        jwks = check_jwks(jwks) if jwks is not None else None
        jwks_url = _check_jwks_url(jwks_url) if jwks_url is not None else None
    elif jwks is not None or jwks_url is not None:
        raise ClientRegistrationError(f"a {kind.value} client does not use a JWK Set")
    secret = secrets.token_urlsafe(32) if kind == ClientKind.CONFIDENTIAL_SYMMETRIC else None
    client = Client(
        client_id=client_id,
        name=name.strip(),
        kind=kind,
        scopes=_check_scopes(kind, scopes),
        redirect_uris=uris,
        origins=checked_origins,
        organisation=organisation,
        jwks=jwks,
        jwks_url=jwks_url,
        launch_uri=_check_redirect_uri(launch_uri) if launch_uri else None,
        active=True,
        created_at=int(time.time()),
        secret_hash=hash_secret(secret) if secret else None,
    )
    with unit_of_work(engine, write=True) as conn:
        if not store.insert_client(conn, _to_row(client)):
            raise ClientRegistrationError(f"client id {client_id!r} is already registered")
    return client, secret


def get_client(engine: Engine, client_id: str) -> Client | None:
    """The client with this id (active or not), or None."""
    with unit_of_work(engine, write=False) as conn:
        row = store.client_row(conn, client_id)
    return _from_row(row) if row is not None else None


def list_clients(engine: Engine) -> list[Client]:
    """Every registered client, oldest first."""
    with unit_of_work(engine, write=False) as conn:
        rows = store.client_rows(conn)
    return [_from_row(r) for r in rows]


def deactivate_client(engine: Engine, client_id: str) -> bool:
    """Stop a client from getting tokens; False when there is no such client."""
    with unit_of_work(engine, write=True) as conn:
        return store.set_client_active(conn, client_id, False)


def _to_row(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "kind": client.kind.value,
        "secret_hash": client.secret_hash,
        "jwks": json.dumps(client.jwks) if client.jwks is not None else None,
        "jwks_url": client.jwks_url,
        "redirect_uris": json.dumps(list(client.redirect_uris)),
        "scopes": client.scopes,
        "origins": json.dumps(list(client.origins)),
        "organisation": client.organisation,
        "launch_uri": client.launch_uri,
        "active": client.active,
        "created_at": client.created_at,
    }


def _from_row(row: Row[Any]) -> Client:
    m = row._mapping
    return Client(
        client_id=m["client_id"],
        name=m["name"],
        kind=ClientKind(m["kind"]),
        scopes=m["scopes"],
        redirect_uris=tuple(json.loads(m["redirect_uris"] or "[]")),
        origins=tuple(json.loads(m["origins"] or "[]")),
        organisation=m["organisation"],
        jwks=json.loads(m["jwks"]) if m["jwks"] else None,
        jwks_url=m["jwks_url"],
        launch_uri=m["launch_uri"],
        active=bool(m["active"]),
        created_at=int(m["created_at"]),
        secret_hash=m["secret_hash"],
    )
