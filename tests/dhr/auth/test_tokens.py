"""Access and ID tokens the server issues: claims, headers, lifetimes and signature checks.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/app-launch.html#response-5),
JWT (RFC 7519), RFC 9068 ``at+jwt`` access tokens, OpenID Connect Core 1.0 section 2 ID tokens.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from dhr.auth.service import AuthServer
from dhr.auth.tokens import TTLCache


def header_of(token: str) -> dict[str, Any]:
    part = token.split(".", maxsplit=1)[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def test_an_access_token_carries_the_smart_claims(auth: AuthServer) -> None:
    token, claims = auth.issue_access_token(
        subject="dr-jones",
        client_id="app-1",
        scope="launch/patient patient/Observation.rs",
        lifetime=600,
        patient="p1",
        encounter="e1",
        fhir_user="Practitioner/pr1",
        roles=("R8000",),
        organisation="A81001",
    )
    settings = auth.settings
    assert claims["iss"] == settings.issuer
    assert claims["aud"] == settings.fhir_base
    assert claims["sub"] == "dr-jones"
    assert claims["client_id"] == "app-1"
    assert claims["scope"] == "launch/patient patient/Observation.rs"
    assert claims["exp"] - claims["iat"] == 600
    assert (claims["patient"], claims["encounter"]) == ("p1", "e1")
    assert claims["fhirUser"] == "Practitioner/pr1"
    assert claims["roles"] == ["R8000"]
    assert claims["org"] == "A81001"
    assert auth.verify_access_token(token) == claims
    header = header_of(token)
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == auth.keys.current().kid


def test_optional_context_is_left_out_when_absent(auth: AuthServer) -> None:
    _, claims = auth.issue_access_token(
        subject="svc", client_id="backend", scope="system/*.rs", lifetime=300
    )
    assert not {"patient", "encounter", "fhirUser", "org"} & set(claims)
    assert claims["roles"] == []


def test_every_token_has_its_own_jti(auth: AuthServer) -> None:
    ids = {
        auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=60)[1]["jti"]
        for _ in range(20)
    }
    assert len(ids) == 20


@pytest.mark.parametrize("lifetime", [0, -5, 3601])
def test_access_tokens_live_at_most_an_hour(auth: AuthServer, lifetime: int) -> None:
    with pytest.raises(ValueError, match="lifetime"):
        auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=lifetime)


def test_an_id_token_is_an_rs256_jwt_for_the_client(root: httpx.Client, auth: AuthServer) -> None:
    token = auth.issue_id_token(
        subject="dr-jones",
        client_id="app-1",
        fhir_user="Practitioner/pr1",
        nonce="n-123",
        lifetime=300,
    )
    keys = KeySet.import_key_set(root.get("/auth/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    claims = decoded.claims
    assert claims["iss"] == root.get("/.well-known/openid-configuration").json()["issuer"]
    assert claims["aud"] == "app-1"
    assert claims["sub"] == "dr-jones"
    assert claims["fhirUser"] == "Practitioner/pr1"
    assert claims["nonce"] == "n-123"
    assert claims["exp"] - claims["iat"] == 300


def test_an_id_token_is_never_accepted_as_an_access_token(auth: AuthServer) -> None:
    token = auth.issue_id_token(
        subject="a", client_id=auth.settings.fhir_base, fhir_user=None, nonce=None, lifetime=300
    )
    assert auth.verify_access_token(token) is None


def test_the_token_cache_forgets_entries_at_their_expiry_and_stays_bounded() -> None:
    cache: TTLCache[str] = TTLCache(max_entries=4)
    cache.put("a", "A", expires_at=100, now=0)
    assert cache.get("a", now=99) == "A"
    assert cache.get("a", now=100) is None
    for i in range(10):
        cache.put(f"k{i}", str(i), expires_at=1000, now=0)
    assert len(cache) <= 4
    assert cache.get("k9", now=1) == "9"
