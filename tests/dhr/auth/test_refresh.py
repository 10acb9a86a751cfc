"""Refresh tokens: ``offline_access`` / ``online_access``, bound to the client, narrower on refresh.

RFC 6749 section 6 (https://www.rfc-editor.org/rfc/rfc6749#section-6) and SMART App Launch 2.2
"Refresh access token" (https://hl7.org/fhir/smart-app-launch/app-launch.html#step-7-app-uses-a-refresh-token-to-obtain-a-new-access-token):
a refresh token works only for the client it was issued to, can ask for the same or a narrower
scope (never wider), keeps the launch context, and stops working once revoked or expired.
DHR rotates refresh tokens: each use returns a new one and retires the old.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update

from dhr.auth.clients import deactivate_client
from dhr.auth.model import ClientKind
from dhr.auth.users import deactivate_user
from dhr.store.auth_models import RefreshTokenRow
from tests.dhr.auth import fixtures_clients as fx
from tests.dhr.auth.fixtures_clients import (
    add_gp,
    insert_code,
    introspect,
    jwt_claims,
    pkce_pair,
    register,
)

token_http = fx.token_http
SCOPE = "openid fhirUser launch/patient patient/Patient.rs patient/Observation.rs offline_access"


def _tokens(
    engine: Engine, http: httpx.Client, client_id: str, username: str, scope: str = SCOPE
) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    code = insert_code(
        engine, client_id=client_id, username=username, challenge=challenge, scope=scope
    )
    resp = http.post(
        "/auth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": fx.REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _refresh(http: httpx.Client, client_id: str, token: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    form.update(extra)
    return http.post("/auth/token", data=form)


def _error(resp: httpx.Response, error: str, status: int = 400) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json()["error"] == error


@pytest.fixture
def app_id(engine: Engine) -> str:
    return register(engine, ClientKind.PUBLIC)[0].client_id


@pytest.fixture(scope="module")
def gp(engine: Engine) -> str:
    """One GP for the module (password hashing is slow on purpose); the user tables outlive
    each test. Tests that deactivate a user make their own."""
    return add_gp(engine)


def test_refresh_gives_a_new_access_token_with_the_same_context(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    resp = _refresh(token_http, app_id, first["refresh_token"])
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == SCOPE
    assert body["patient"] == "pat-1"
    assert body["access_token"] != first["access_token"]
    claims = jwt_claims(body["access_token"])
    assert claims["sub"] == gp
    assert claims["patient"] == "pat-1"
    assert claims["fhirUser"] == "Practitioner/gp-1"
    assert introspect(token_http, body["access_token"])["active"] is True


def test_refresh_tokens_rotate(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    second = _refresh(token_http, app_id, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    _error(_refresh(token_http, app_id, first["refresh_token"]), "invalid_grant")
    assert _refresh(token_http, app_id, second["refresh_token"]).status_code == 200


def test_narrower_scope_on_refresh(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    resp = _refresh(token_http, app_id, first["refresh_token"], scope="patient/Patient.rs")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "patient/Patient.rs"
    assert jwt_claims(body["access_token"])["scope"] == "patient/Patient.rs"
    # The new refresh token still carries the whole original grant (RFC 6749 section 6).
    again = _refresh(token_http, app_id, body["refresh_token"])
    assert again.json()["scope"] == SCOPE


@pytest.mark.parametrize(
    "wider",
    ["patient/*.rs", "patient/Patient.cruds", "user/Patient.rs", "patient/Condition.rs", ""],
)
def test_wider_scope_on_refresh_is_invalid_scope(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str, wider: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    _error(_refresh(token_http, app_id, first["refresh_token"], scope=wider), "invalid_scope")
    # A refused request does not use the refresh token up.
    assert _refresh(token_http, app_id, first["refresh_token"]).status_code == 200


def test_refresh_token_is_bound_to_its_client(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    other = register(engine, ClientKind.PUBLIC)[0].client_id
    _error(_refresh(token_http, other, first["refresh_token"]), "invalid_grant")
    assert _refresh(token_http, app_id, first["refresh_token"]).status_code == 200


def test_confidential_client_must_authenticate_to_refresh(
    engine: Engine, token_http: httpx.Client, gp: str
) -> None:
    client, secret = register(engine, ClientKind.CONFIDENTIAL_SYMMETRIC)
    assert secret is not None
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=client.client_id, username=gp, challenge=challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": fx.REDIRECT,
        "code_verifier": verifier,
    }
    refresh = token_http.post("/auth/token", data=form, auth=(client.client_id, secret)).json()[
        "refresh_token"
    ]
    _error(_refresh(token_http, client.client_id, refresh), "invalid_client", 401)
    resp = token_http.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        auth=(client.client_id, secret),
    )
    assert resp.status_code == 200, resp.text


def test_revoked_refresh_token_fails(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    resp = token_http.post(
        "/auth/revoke",
        data={"token": first["refresh_token"], "client_id": app_id},
    )
    assert resp.status_code == 200, resp.text
    _error(_refresh(token_http, app_id, first["refresh_token"]), "invalid_grant")


def _set_refresh(engine: Engine, token: str, **values: Any) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with engine.begin() as conn:
        conn.execute(
            update(RefreshTokenRow).where(RefreshTokenRow.token_hash == digest).values(**values)
        )


def test_expired_refresh_token_fails(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    _set_refresh(engine, first["refresh_token"], expires_at=1)
    _error(_refresh(token_http, app_id, first["refresh_token"]), "invalid_grant")


def test_unknown_refresh_token_fails(token_http: httpx.Client, app_id: str) -> None:
    _error(_refresh(token_http, app_id, "no-such-token"), "invalid_grant")
    _error(
        token_http.post("/auth/token", data={"grant_type": "refresh_token", "client_id": app_id}),
        "invalid_request",
    )


def test_deactivated_user_or_client_cannot_refresh(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    leaver = add_gp(engine)
    first = _tokens(engine, token_http, app_id, leaver)
    second = _tokens(engine, token_http, app_id, gp)
    assert deactivate_user(engine, leaver)
    _error(_refresh(token_http, app_id, first["refresh_token"]), "invalid_grant")
    assert deactivate_client(engine, app_id)
    _error(_refresh(token_http, app_id, second["refresh_token"]), "invalid_client", 401)


def test_online_access_also_gets_a_refresh_token(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(
        engine, token_http, app_id, gp, scope="launch/patient patient/*.rs online_access"
    )
    assert first["refresh_token"]
    assert _refresh(token_http, app_id, first["refresh_token"]).status_code == 200


def test_refresh_rotation_keeps_the_original_expiry(
    engine: Engine, token_http: httpx.Client, app_id: str, gp: str
) -> None:
    first = _tokens(engine, token_http, app_id, gp)
    _set_refresh(engine, first["refresh_token"], expires_at=4_000_000_000)
    second = _refresh(token_http, app_id, first["refresh_token"]).json()
    table = RefreshTokenRow.__table__
    digest = hashlib.sha256(second["refresh_token"].encode()).hexdigest()
    with engine.connect() as conn:
        row = conn.execute(table.select().where(table.c.token_hash == digest)).one()
    assert row.expires_at == 4_000_000_000
    assert row.client_id == app_id
    assert row.patient == "pat-1"
