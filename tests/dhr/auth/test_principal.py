"""The bearer-token check: RFC 6750 challenges and the tokens that must be refused.

RFC 6750 section 3 (https://www.rfc-editor.org/rfc/rfc6750#section-3): no credentials gets a
bare ``Bearer realm`` challenge; a bad token gets ``error="invalid_token"``. SMART App Launch 2.2
(https://hl7.org/fhir/smart-app-launch/app-launch.html#access-fhir-api): the resource server
checks signature, issuer, audience, expiry and revocation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from joserfc.jwk import RSAKey

from dhr.auth.keys import SigningKey
from dhr.auth.principal import AuthenticationFailed, authenticate
from dhr.auth.service import AuthServer
from dhr.auth.tokens import ACCESS_TOKEN_TYP, sign
from tests.dhr.auth.conftest import Clock


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims_for(auth: AuthServer, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": auth.settings.issuer,
        "sub": "mallory",
        "aud": auth.settings.fhir_base,
        "exp": now + 300,
        "iat": now,
        "jti": f"forged-{now}",
        "client_id": "app",
        "scope": "user/*.cruds",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def signed(auth: AuthServer, **changes: Any) -> str:
    return sign(claims_for(auth, **changes), auth.keys.current(), ACCESS_TOKEN_TYP)


def tampered_payload(auth: AuthServer) -> str:
    token, _ = auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=300)
    header, _, signature = token.split(".")
    return f"{header}.{b64(claims_for(auth, scope='system/*.cruds'))}.{signature}"


def tampered_signature(auth: AuthServer) -> str:
    token, _ = auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=300)
    head, _, signature = token.rpartition(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    return f"{head}.{flipped}"


def alg_none(auth: AuthServer) -> str:
    header = {"alg": "none", "typ": "at+jwt", "kid": auth.keys.current().kid}
    return f"{b64(header)}.{b64(claims_for(auth))}."


def hmac_with_public_key(auth: AuthServer) -> str:
    """The classic confusion attack: HS256 keyed with the server's public key."""
    current = auth.keys.current()
    secret = current.public.as_pem(private=False)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": current.kid}
    signing_input = f"{b64(header)}.{b64(claims_for(auth))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def foreign_key_same_kid(auth: AuthServer) -> str:
    """Signed by a key that is not the server's, under the server key's kid."""
    real = auth.keys.current()
    fake = RSAKey.generate_key(2048)
    impostor = SigningKey(real.kid, fake, fake, real.created_at, None)
    return sign(claims_for(auth), impostor, ACCESS_TOKEN_TYP)


def expired(auth: AuthServer) -> str:
    now = int(time.time())
    return signed(auth, iat=now - 4000, exp=now - 400)


def alg_none_signed(auth: AuthServer) -> str:
    return alg_none(auth) + b64(b"not-empty")


BAD_TOKENS: dict[str, tuple[Callable[[AuthServer], str], str]] = {
    "junk": (lambda _auth: "not-a-token", "not a signed JWT"),
    "three junk segments": (lambda _auth: "a.b.c", "not a well-formed JWT"),
    "tampered payload": (tampered_payload, "signature is invalid"),
    "tampered signature": (tampered_signature, "signature is invalid"),
    "alg none": (alg_none, "not a signed JWT"),
    "alg none with a signature": (alg_none_signed, "must be signed RS256"),
    "HS256 keyed with the public key": (hmac_with_public_key, "must be signed RS256"),
    "foreign key, same kid": (foreign_key_same_kid, "signature is invalid"),
    "unknown kid": (
        lambda auth: sign(
            claims_for(auth),
            SigningKey("unknown", auth.keys.current().key, auth.keys.current().public, 0, None),
            ACCESS_TOKEN_TYP,
        ),
        "not signed by a key of this server",
    ),
    "expired": (expired, "expired"),
    "issued in the future": (lambda auth: signed(auth, iat=int(time.time()) + 600), "future"),
    "wrong aud": (lambda auth: signed(auth, aud="https://other.example.org/fhir"), "(aud)"),
    "no aud": (lambda auth: signed(auth, aud=None), "(aud)"),
    "wrong iss": (lambda auth: signed(auth, iss="https://evil.example.org"), "not issued by"),
    "no jti": (lambda auth: signed(auth, jti=None), "lacks jti"),
    "id token typ": (
        lambda auth: sign(claims_for(auth), auth.keys.current(), "JWT"),
        "type must be at+jwt",
    ),
}


@pytest.mark.parametrize(("make", "why"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_token_is_refused_with_an_invalid_token_challenge(
    auth: AuthServer, make: Callable[[AuthServer], str], why: str
) -> None:
    token = make(auth)
    with pytest.raises(AuthenticationFailed) as failure:
        authenticate(auth, f"Bearer {token}")
    assert failure.value.status == 401
    assert failure.value.error == "invalid_token"
    challenge = failure.value.www_authenticate
    assert challenge.startswith('Bearer realm="DHR", error="invalid_token", error_description="')
    assert why in challenge
    assert auth.verify_access_token(token) is None


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_credentials_get_a_bare_challenge(auth: AuthServer, header: str | None) -> None:
    with pytest.raises(AuthenticationFailed) as failure:
        authenticate(auth, header)
    assert failure.value.www_authenticate == 'Bearer realm="DHR"'
    assert failure.value.error is None


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc"])
def test_a_malformed_authorization_header_is_an_invalid_token(
    auth: AuthServer, header: str
) -> None:
    with pytest.raises(AuthenticationFailed) as failure:
        authenticate(auth, header)
    assert failure.value.error == "invalid_token"


def test_a_valid_token_becomes_the_principal(auth: AuthServer) -> None:
    token, claims = auth.issue_access_token(
        subject="dr-jones",
        client_id="app-1",
        scope="openid fhirUser launch/patient patient/Observation.rs patient/Patient.r",
        lifetime=600,
        patient="p1",
        encounter="e1",
        fhir_user="Practitioner/pr1",
        roles=("R8000", "R8003"),
        organisation="A81001",
    )
    principal = authenticate(auth, f"bearer {token}")  # the scheme is case-insensitive
    assert principal.subject == "dr-jones"
    assert principal.client_id == "app-1"
    assert principal.scope_text == claims["scope"]
    assert [s.raw for s in principal.scopes] == ["patient/Observation.rs", "patient/Patient.r"]
    assert principal.scopes[0].actions == frozenset("rs")
    assert (principal.patient, principal.encounter) == ("p1", "e1")
    assert principal.fhir_user == "Practitioner/pr1"
    assert principal.roles == ("R8000", "R8003")
    assert principal.organisation == "A81001"
    assert principal.token_id == claims["jti"]
    assert principal.expires_at == claims["exp"]
    assert not principal.open


def test_a_repeated_token_is_answered_from_the_cache(auth: AuthServer) -> None:
    token, _ = auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=300)
    first = authenticate(auth, f"Bearer {token}")
    assert authenticate(auth, f"Bearer {token}") is first


def test_a_revoked_token_fails_at_once_even_when_cached(auth: AuthServer) -> None:
    token, claims = auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=300)
    authenticate(auth, f"Bearer {token}")
    auth.revoke_access_token(claims)
    with pytest.raises(AuthenticationFailed) as failure:
        authenticate(auth, f"Bearer {token}")
    assert "revoked" in failure.value.www_authenticate


def test_a_cached_token_still_expires(auth: AuthServer, clock: Clock) -> None:
    server = AuthServer(auth.settings, auth.engine, clock=clock)
    token, _ = server.issue_access_token(subject="a", client_id="c", scope="", lifetime=60)
    authenticate(server, f"Bearer {token}")
    clock.advance(60 + 5)
    with pytest.raises(AuthenticationFailed) as failure:
        authenticate(server, f"Bearer {token}")
    assert "expired" in failure.value.www_authenticate
