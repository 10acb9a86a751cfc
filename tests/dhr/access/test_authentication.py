"""401 for requests without a usable bearer token; the CapabilityStatement stays public.

RFC 6750 section 3 (https://www.rfc-editor.org/rfc/rfc6750#section-3): the 401 carries a
``WWW-Authenticate: Bearer`` challenge, with ``error="invalid_token"`` when a token was sent but
is malformed, expired or revoked. The body is an OperationOutcome (issue type ``login``,
https://hl7.org/fhir/R4/valueset-issue-type.html). SMART App Launch 2.2
(https://hl7.org/fhir/smart-app-launch/app-launch.html#access-denied-response-handling).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from dhr.auth.service import AuthServer
from dhr.auth.tokens import ACCESS_TOKEN_TYP, sign
from tests.conftest import LiveServer
from tests.helpers import TokenIssuer, assert_outcome, bearer, patient


def _challenge(response: httpx.Response) -> str:
    assert_outcome(response, 401, code="login")
    value = response.headers["www-authenticate"]
    assert value.startswith("Bearer ")
    return value


def test_metadata_needs_no_token(anonymous_client: httpx.Client) -> None:
    response = anonymous_client.get("metadata")
    assert response.status_code == 200
    assert response.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "Patient"), ("GET", "Patient/x"), ("POST", "Patient"), ("POST", ""), ("GET", "")],
)
def test_a_request_without_a_token_is_401_with_a_bare_challenge(
    anonymous_client: httpx.Client, method: str, path: str
) -> None:
    kwargs: dict[str, Any] = {"json": patient()} if method == "POST" else {}
    challenge = _challenge(anonymous_client.request(method, path, **kwargs))
    assert "error=" not in challenge


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer not.a.jwt", "Bearer abc", "token"],
)
def test_a_malformed_token_is_401_invalid_token(
    anonymous_client: httpx.Client, header: str
) -> None:
    response = anonymous_client.get("Patient", headers={"Authorization": header})
    assert 'error="invalid_token"' in _challenge(response)


def test_a_large_body_without_a_token_is_refused_before_it_is_read(
    anonymous_client: httpx.Client,
) -> None:
    huge = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    response = anonymous_client.post(
        "Patient", content=huge, headers={"content-type": "application/fhir+json"}
    )
    _challenge(response)


def _crafted(auth: AuthServer, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": auth.settings.issuer,
        "sub": "crafted",
        "aud": auth.settings.fhir_base,
        "iat": now - 600,
        "exp": now - 300,
        "jti": f"crafted-{now}",
        "client_id": "crafted",
        "scope": "system/*.cruds",
    }
    claims.update(overrides)
    return sign(claims, auth.keys.current(), ACCESS_TOKEN_TYP)


def test_an_expired_token_is_401(server: LiveServer, anonymous_client: httpx.Client) -> None:
    auth: AuthServer = server.app.state.auth
    response = anonymous_client.get("Patient", headers=bearer(_crafted(auth)))
    assert "expired" in _challenge(response)
    other = _crafted(auth, exp=int(time.time()) + 300, aud="https://elsewhere.example/fhir")
    assert 'error="invalid_token"' in _challenge(
        anonymous_client.get("Patient", headers=bearer(other))
    )


@pytest.mark.slow
def test_a_token_stops_working_when_it_expires_even_after_use(
    anonymous_client: httpx.Client, issue_token: TokenIssuer
) -> None:
    token = issue_token("system/*.rs", lifetime=1)
    assert anonymous_client.get("Patient", headers=bearer(token)).status_code == 200
    time.sleep(7)  # one second of life plus the five seconds of clock-skew leeway
    _challenge(anonymous_client.get("Patient", headers=bearer(token)))


def test_a_revoked_token_is_401_at_once(server: LiveServer, anonymous_client: httpx.Client) -> None:
    auth: AuthServer = server.app.state.auth
    token, claims = auth.issue_access_token(
        subject="revoked", client_id="test-app", scope="system/*.rs", lifetime=300
    )
    assert anonymous_client.get("Patient", headers=bearer(token)).status_code == 200
    auth.revoke_access_token(claims)
    response = anonymous_client.get("Patient", headers=bearer(token))
    assert "revoked" in _challenge(response)


def test_the_system_client_token_comes_from_client_credentials(client: httpx.Client) -> None:
    assert client.get("Patient").status_code == 200
