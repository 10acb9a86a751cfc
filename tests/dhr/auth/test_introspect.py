"""Token introspection: RFC 7662 (https://www.rfc-editor.org/rfc/rfc7662) as SMART App Launch 2.2
profiles it (https://hl7.org/fhir/smart-app-launch/token-introspection.html).

An active token is described with its scopes and launch context; anything else is exactly
``{"active": false}``. The caller must authenticate.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.model import ClientKind
from dhr.auth.service import AuthServer
from tests.dhr.auth.conftest import Clock, Registered, register
from tests.dhr.auth.test_principal import BAD_TOKENS

INACTIVE = {"active": False}


def user_token(auth: AuthServer, client_id: str = "app-1") -> tuple[str, dict[str, object]]:
    return auth.issue_access_token(
        subject="dr-jones",
        client_id=client_id,
        scope="openid fhirUser launch patient/*.rs",
        lifetime=600,
        patient="p1",
        encounter="e1",
        fhir_user="Practitioner/pr1",
        roles=("R8000",),
    )


def test_an_active_token_is_described_with_its_launch_context(
    root: httpx.Client, auth: AuthServer, confidential: Registered
) -> None:
    token, claims = user_token(auth)
    response = root.post("/auth/introspect", data={"token": token}, auth=confidential.basic())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["token_type"] == "Bearer"
    for name in ("scope", "client_id", "sub", "exp", "iat", "iss", "aud"):
        assert body[name] == claims[name]
    assert body["patient"] == "p1"
    assert body["encounter"] == "e1"
    assert body["fhirUser"] == "Practitioner/pr1"


def test_a_client_may_also_authenticate_with_client_secret_post(
    root: httpx.Client, auth: AuthServer, confidential: Registered
) -> None:
    token, _ = user_token(auth)
    form = {
        "token": token,
        "client_id": confidential.client_id,
        "client_secret": confidential.secret,
    }
    assert root.post("/auth/introspect", data=form).json()["active"] is True


def test_a_caller_may_authenticate_with_its_own_access_token(
    root: httpx.Client, auth: AuthServer
) -> None:
    token, _ = user_token(auth)
    caller, _ = auth.issue_access_token(
        subject="resource-server", client_id="rs", scope="system/*.rs", lifetime=300
    )
    response = root.post(
        "/auth/introspect", data={"token": token}, headers={"Authorization": f"Bearer {caller}"}
    )
    assert response.status_code == 200
    assert response.json()["patient"] == "p1"


@pytest.mark.parametrize(("make", "_why"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_token_is_exactly_inactive(
    root: httpx.Client, auth: AuthServer, confidential: Registered, make: object, _why: str
) -> None:
    token = make(auth)  # type: ignore[operator]
    response = root.post("/auth/introspect", data={"token": token}, auth=confidential.basic())
    assert response.status_code == 200
    assert response.json() == INACTIVE


def test_a_revoked_token_is_exactly_inactive(
    root: httpx.Client, auth: AuthServer, confidential: Registered
) -> None:
    token, claims = user_token(auth)
    auth.revoke_access_token(claims)
    response = root.post("/auth/introspect", data={"token": token}, auth=confidential.basic())
    assert response.json() == INACTIVE


def test_an_expired_token_is_exactly_inactive(
    root: httpx.Client, auth: AuthServer, confidential: Registered, clock: Clock
) -> None:
    clock.advance(-2 * 3600)
    past = AuthServer(auth.settings, auth.engine, clock=clock)
    token, _ = past.issue_access_token(subject="a", client_id="c", scope="", lifetime=3600)
    response = root.post("/auth/introspect", data={"token": token}, auth=confidential.basic())
    assert response.json() == INACTIVE


def test_an_anonymous_caller_is_refused(root: httpx.Client, auth: AuthServer) -> None:
    token, _ = user_token(auth)
    response = root.post("/auth/introspect", data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"


def test_a_public_client_cannot_introspect(
    root: httpx.Client, auth: AuthServer, engine: Engine
) -> None:
    public = register(engine, ClientKind.PUBLIC)
    token, _ = user_token(auth, public.client_id)
    response = root.post("/auth/introspect", data={"token": token, "client_id": public.client_id})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "header", ["Bearer not-a-token", f"Bearer {'x' * 20}.{'y' * 20}.{'z' * 20}"]
)
def test_a_caller_with_a_bad_bearer_token_is_refused(root: httpx.Client, header: str) -> None:
    response = root.post(
        "/auth/introspect", data={"token": "whatever"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith('Bearer realm="DHR"')


def test_a_wrong_client_secret_is_refused(root: httpx.Client, confidential: Registered) -> None:
    response = root.post(
        "/auth/introspect",
        data={"token": "t"},
        auth=(confidential.client_id, "not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_the_token_parameter_is_required(root: httpx.Client, confidential: Registered) -> None:
    response = root.post("/auth/introspect", data={}, auth=confidential.basic())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_the_request_must_be_a_form(root: httpx.Client, confidential: Registered) -> None:
    response = root.post("/auth/introspect", json={"token": "t"}, auth=confidential.basic())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_a_repeated_parameter_is_refused(root: httpx.Client, confidential: Registered) -> None:
    response = root.post(
        "/auth/introspect",
        content=b"token=a&token=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        auth=confidential.basic(),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
