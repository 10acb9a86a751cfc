"""A tiny OpenID Connect provider for tests, CIS2-like or NHS login-like, over real HTTP.

OpenID Connect Core 1.0 authorisation code flow
(https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth) with Discovery 1.0 and
PKCE (RFC 7636): a discovery document, a JWK Set, an authorisation endpoint that signs the
configured identity in at once (no UI) and redirects back with a code (and ``iss``, RFC 9207),
a token endpoint that checks the client secret (``client_secret_basic`` or ``_post``, as
registered), the redirect URI, single use of the code and the PKCE S256 verifier as a real
provider does, and a UserInfo endpoint. Claims follow CIS2 (``nhsid_useruid``,
``nhsid_nrbac_roles`` from UserInfo) and NHS login (``nhs_number``, ``birthdate``,
``family_name``, ``identity_proofing_level``).

Tests say who signs in (:attr:`FakeIdP.identity`) and can make the provider misbehave: change
or drop ID token claims, spoil the signature, answer the authorisation request with an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

import uvicorn
from joserfc import jws
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

CIS2_ROLE = "S0080:G0450:R8000"  # Clinical Practitioner Access Role
ODS = "A81001"


@dataclass
class Identity:
    """Who signs in at the provider: ``sub`` plus claims for the ID token and for UserInfo."""

    sub: str
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    userinfo_claims: dict[str, Any] = field(default_factory=dict)


def cis2_user(
    uid: str, roles: list[tuple[str, str]] | None = None, selected: str | None = None
) -> Identity:
    """A CIS2-like staff member: roles as ``(role_code, org_code)``; ``person_roleid`` is the
    role's position (``"1"``, ``"2"``...), ``selected`` the one chosen at sign-in, if any."""
    listed = [(CIS2_ROLE, ODS)] if roles is None else roles
    id_claims: dict[str, Any] = {"nhsid_useruid": uid}
    if selected is not None:
        id_claims["selected_roleid"] = selected
    return Identity(
        sub=uid,
        id_token_claims=id_claims,
        userinfo_claims={
            "nhsid_useruid": uid,
            "name": "Dr Ada Lovelace",
            "given_name": "Ada",
            "family_name": "Lovelace",
            "nhsid_nrbac_roles": [
                {
                    "person_roleid": str(i),
                    "role_code": code,
                    "role_name": '"Clinical":"Clinical Provision":"Access Role"',
                    "org_code": org,
                }
                for i, (code, org) in enumerate(listed, start=1)
            ],
        },
    )


def nhs_login_user(nhs_number: str, proofing: str = "P9") -> Identity:
    """An NHS login-like patient proven to ``proofing``."""
    return Identity(
        sub=f"nhs-login-{secrets.token_hex(8)}",
        id_token_claims={"identity_proofing_level": proofing, "vot": f"{proofing}.Cp.Cd"},
        userinfo_claims={
            "nhs_number": nhs_number,
            "family_name": "Smith",
            "given_name": "Jane",
            "birthdate": "1970-01-01",
            "identity_proofing_level": proofing,
        },
    )


@dataclass
class _Client:
    secret: str
    redirect_uris: tuple[str, ...]
    auth_method: str


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    identity: Identity


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FakeIdP:
    """An OpenID Connect provider on a loopback port, in a background thread."""

    def __init__(self, alg: str = "RS256") -> None:
        self.port = _free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.alg = alg
        self.key = self._new_key()
        self.clients: dict[str, _Client] = {}
        self.identity: Identity | None = None
        self.codes: dict[str, _Grant] = {}
        self.access_tokens: dict[str, Identity] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.reset()
        app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    # --- what tests control --------------------------------------------------------------------

    def reset(self) -> None:
        """Behave well again: no claim changes, good signatures, no authorisation error."""
        self.id_token_changes: dict[str, Any] = {}  # None drops a claim
        self.tamper_signature = False
        self.authorize_error: str | None = None
        self.userinfo_sub: str | None = None  # answer UserInfo about someone else
        self.discovery_changes: dict[str, Any] = {}  # e.g. another issuer, other algorithms

    def register(self, client_id: str, secret: str, redirect_uri: str, auth_method: str) -> None:
        self.clients[client_id] = _Client(secret, (redirect_uri,), auth_method)

    def rotate_key(self) -> None:
        """A new signing key with a new ``kid``; the old one leaves the JWK Set."""
        self.key = self._new_key()

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake identity provider did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    # --- endpoints -----------------------------------------------------------------------------

    def _new_key(self) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8)})

    async def _discovery(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": [self.alg],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "code_challenge_methods_supported": ["S256"],
                **self.discovery_changes,
            }
        )

    async def _jwks(self, _request: Request) -> Response:
        public = dict(self.key.as_dict(private=False))
        public.update({"use": "sig", "alg": self.alg})
        return JSONResponse({"keys": [public]})

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.authorize_requests.append(params)
        client = self.clients.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None or redirect_uri not in client.redirect_uris:
            return PlainTextResponse("unknown client or redirect_uri", status_code=400)
        back: dict[str, str] = {"state": params.get("state", ""), "iss": self.issuer}
        problems = [
            params.get("response_type") != "code",
            "openid" not in params.get("scope", "").split(),
            params.get("code_challenge_method") != "S256",
            len(params.get("code_challenge", "")) != 43,
        ]
        if any(problems):
            back.update(error="invalid_request", error_description="bad authorisation request")
        elif self.authorize_error is not None:
            back.update(error=self.authorize_error, error_description="The user said no")
        elif self.identity is None:
            back.update(error="login_required")
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = _Grant(
                client_id=params["client_id"],
                redirect_uri=redirect_uri,
                challenge=params["code_challenge"],
                nonce=params.get("nonce"),
                identity=self.identity,
            )
            back["code"] = code
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    def _client_id(self, request: Request, form: dict[str, str]) -> str | None:
        """The authenticated client (RFC 6749 section 2.3.1), or None."""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
            client_id, secret, method = unquote_plus(client_id), unquote_plus(secret), "basic"
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            method = "post"
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret, secret):
            return None
        return client_id if client.auth_method == f"client_secret_{method}" else None

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.token_requests.append(form)
        client_id = self._client_id(request, form)
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(form.get("code", ""), None)  # single use
        verifier = form.get("code_verifier", "")
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.client_id != client_id
            or grant.redirect_uri != form.get("redirect_uri")
            or _b64(hashlib.sha256(verifier.encode()).digest()) != grant.challenge
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = secrets.token_urlsafe(24)
        self.access_tokens[access] = grant.identity
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self._id_token(client_id, grant),
        }
        return JSONResponse(body, headers={"cache-control": "no-store"})

    def sign(self, claims: dict[str, Any]) -> str:
        """``claims`` signed with the provider's current key (for tests that build tokens)."""
        header = {"alg": self.alg, "kid": self.key.kid, "typ": "JWT"}
        return jws.serialize_compact(
            header, json.dumps(claims).encode(), self.key, algorithms=[self.alg]
        )

    def _id_token(self, client_id: str, grant: _Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant.identity.sub,
            "aud": client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "jti": secrets.token_hex(8),
            **grant.identity.id_token_claims,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in self.id_token_changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        token = self.sign(claims)
        if self.tamper_signature:
            head, payload, signature = token.split(".")
            raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
            raw[0] ^= 0x01
            token = f"{head}.{payload}.{_b64(bytes(raw))}"
        return token

    async def _userinfo(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        identity = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if identity is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"sub": self.userinfo_sub or identity.sub, **identity.userinfo_claims})
