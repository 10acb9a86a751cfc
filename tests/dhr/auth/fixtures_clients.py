"""Test helpers for the token endpoint: client keys, signed client assertions, registered
clients, authorisation codes inserted directly, users and a tiny JWK Set URL server.

Client keys are made with ``cryptography`` and assertions signed with ``joserfc``, as a SMART
Backend Services client would (https://hl7.org/fhir/smart-app-launch/backend-services.html).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import Engine, insert

from dhr.auth.clients import Client, register_client
from dhr.auth.model import ClientKind
from dhr.auth.users import add_user
from dhr.store.auth_models import AuthorizationCodeRow
from tests.conftest import LiveServer

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REDIRECT = "https://app.example.org/callback"
PASSWORD = "correct horse battery staple"


def _pem(private: Any) -> bytes:
    return bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@dataclass(frozen=True)
class ClientKey:
    """A client's signing key: the joserfc private key, its alg and kid."""

    key: RSAKey | ECKey
    alg: str
    kid: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def with_kid(self, kid: str) -> ClientKey:
        cls = type(self.key)
        return ClientKey(
            cls.import_key(self.key.as_dict(private=True), {"kid": kid}), self.alg, kid
        )


@cache
def _rsa_pem(n: int) -> bytes:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@cache
def _ec_pem(n: int, curve: str) -> bytes:
    return _pem(ec.generate_private_key(ec.SECP384R1() if curve == "P-384" else ec.SECP256R1()))


def rsa_key(kid: str = "rsa-1", n: int = 0) -> ClientKey:
    """An RS384 client key (the ``n``-th distinct one of this test session)."""
    return ClientKey(RSAKey.import_key(_rsa_pem(n), {"kid": kid}), "RS384", kid)


def ec_key(kid: str = "ec-1", n: int = 0, curve: str = "P-384") -> ClientKey:
    """An ES384 client key on P-384 (or another curve, to test refusing it)."""
    return ClientKey(ECKey.import_key(_ec_pem(n, curve), {"kid": kid}), "ES384", kid)


def jwks(*keys: ClientKey) -> dict[str, Any]:
    return {"keys": [k.public_jwk for k in keys]}


def token_url(server: LiveServer) -> str:
    return f"{server.settings.auth_base}/token"


def assertion(
    server: LiveServer,
    client_id: str,
    key: ClientKey,
    *,
    header: dict[str, Any] | None = None,
    alg: str | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A signed client assertion (RFC 7523) for ``client_id``; ``claims`` override defaults."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url(server),
        "exp": now + 240,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    for name in drop:
        body.pop(name, None)
    head: dict[str, Any] = {"alg": alg or key.alg, "kid": key.kid, "typ": "JWT"}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, body, key.key, algorithms=[head["alg"]])


def backend_form(signed: str, scope: str = "system/*.rs", **extra: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    form.update(extra)
    return form


def register(engine: Engine, kind: ClientKind, **kwargs: Any) -> tuple[Client, str | None]:
    """Register a client with sensible defaults for its kind."""
    defaults: dict[str, Any] = {"name": f"test {kind.value}"}
    if kind == ClientKind.BACKEND:
        defaults["scopes"] = "system/Patient.rs system/Observation.rs"
    else:
        defaults["redirect_uris"] = [REDIRECT]
        defaults["scopes"] = (
            "openid fhirUser launch/patient offline_access online_access patient/*.rs user/*.cruds"
        )
    defaults.update(kwargs)
    return register_client(engine, kind=kind, **defaults)


def add_gp(engine: Engine, username: str | None = None) -> str:
    """A GP (R8000) at A81001 bound to Practitioner/gp-1; a fresh username each call (the
    authorisation tables outlive each test)."""
    username = username or f"dr.jones.{uuid.uuid4().hex[:8]}"
    add_user(
        engine,
        username=username,
        password=PASSWORD,
        role="R8000",
        fhir_user="Practitioner/gp-1",
        organisation="A81001",
        display="Dr Jones",
    )
    return username


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def insert_code(
    engine: Engine,
    *,
    client_id: str,
    username: str,
    challenge: str,
    scope: str = "openid fhirUser launch/patient patient/*.rs offline_access",
    redirect_uri: str = REDIRECT,
    patient: str | None = "pat-1",
    encounter: str | None = None,
    nonce: str | None = "n-0S6_WzA2Mj",
    expires_in: int = 60,
) -> str:
    """An authorisation code row as /auth/authorize would store it; returns the code."""
    code = secrets.token_urlsafe(32)
    row = {
        "code_hash": hashlib.sha256(code.encode()).hexdigest(),
        "client_id": client_id,
        "username": username,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "code_challenge": challenge,
        "patient": patient,
        "encounter": encounter,
        "nonce": nonce,
        "expires_at": int(time.time()) + expires_in,
        "used": False,
    }
    with engine.begin() as conn:
        conn.execute(insert(AuthorizationCodeRow).values(**row))
    return code


def jwt_claims(token: str) -> dict[str, Any]:
    """The (unverified) claims of a JWT, to look at what the server put in it."""
    part = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return claims


def introspect(http: httpx.Client, token: str) -> dict[str, Any]:
    """RFC 7662 introspection, the token authenticating the call itself."""
    resp = http.post(
        "/auth/introspect",
        data={"token": token},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


@pytest.fixture
def token_http(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client rooted at the issuer (``/auth/token`` is a path under it)."""
    with httpx.Client(base_url=server.settings.issuer, timeout=30) as http:
        yield http


# --- a client's JWK Set URL ------------------------------------------------------------------


@dataclass
class JwksHost:
    """A tiny HTTP server publishing a JWK Set that a test can change (key rotation)."""

    jwks: dict[str, Any]
    cache_control: str | None = None
    status: int = 200
    hits: int = 0
    server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"


def _handler(host: JwksHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.hits += 1
            body = json.dumps(host.jwks).encode()
            self.send_response(host.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if host.cache_control:
                self.send_header("Cache-Control", host.cache_control)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def jwks_host() -> Iterator[JwksHost]:
    host = JwksHost(jwks={"keys": []})
    host.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(host))
    thread = threading.Thread(target=host.server.serve_forever, daemon=True)
    thread.start()
    yield host
    host.server.shutdown()
    host.server.server_close()
