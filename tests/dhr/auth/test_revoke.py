"""Token revocation: RFC 7009 (https://www.rfc-editor.org/rfc/rfc7009).

A client revokes its own access or refresh token and it stops working at once; unknown tokens
are answered 200 (section 2.2); another client's token is refused (section 2.1).
"""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx
import pytest
from sqlalchemy import Engine, select

from dhr.auth.model import ClientKind
from dhr.auth.principal import AuthenticationFailed, authenticate
from dhr.auth.service import AuthServer
from dhr.auth.users import add_user, deactivate_user
from dhr.store import auth_client_store
from dhr.store.auth_models import RefreshTokenRow
from dhr.store.db import unit_of_work
from tests.dhr.auth.conftest import Registered, register


def access_token(auth: AuthServer, client_id: str) -> str:
    token, _ = auth.issue_access_token(
        subject="dr-jones", client_id=client_id, scope="patient/*.rs", lifetime=600
    )
    return token


def refresh_token(engine: Engine, client_id: str) -> str:
    token = secrets.token_urlsafe(32)
    now = int(time.time())
    with unit_of_work(engine, write=True) as conn:
        auth_client_store.insert_refresh_token(
            conn,
            {
                "token_hash": hashlib.sha256(token.encode()).hexdigest(),
                "client_id": client_id,
                "username": "dr-jones",
                "scope": "offline_access patient/*.rs",
                "expires_at": now + 3600,
                "revoked": False,
                "created_at": now,
            },
        )
    return token


def refresh_revoked(engine: Engine, token: str) -> bool:
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    with unit_of_work(engine, write=False) as conn:
        stmt = select(RefreshTokenRow.revoked).where(RefreshTokenRow.token_hash == token_hash)
        return bool(conn.execute(stmt).scalar_one())


def test_a_revoked_access_token_stops_working_at_once(
    root: httpx.Client, auth: AuthServer, confidential: Registered
) -> None:
    token = access_token(auth, confidential.client_id)
    authenticate(auth, f"Bearer {token}")  # works, and is now cached
    response = root.post(
        "/auth/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=confidential.basic(),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    with pytest.raises(AuthenticationFailed, match="revoked"):
        authenticate(auth, f"Bearer {token}")
    introspected = root.post("/auth/introspect", data={"token": token}, auth=confidential.basic())
    assert introspected.json() == {"active": False}


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "something_else"])
def test_a_revoked_refresh_token_is_marked_revoked(
    root: httpx.Client, engine: Engine, confidential: Registered, hint: str | None
) -> None:
    token = refresh_token(engine, confidential.client_id)
    form = {"token": token} | ({"token_type_hint": hint} if hint else {})
    response = root.post("/auth/revoke", data=form, auth=confidential.basic())
    assert response.status_code == 200
    assert refresh_revoked(engine, token)


def test_a_public_client_revokes_its_own_tokens_by_naming_itself(
    root: httpx.Client, auth: AuthServer, engine: Engine
) -> None:
    public = register(engine, ClientKind.PUBLIC)
    token = access_token(auth, public.client_id)
    form = {"token": token, "client_id": public.client_id}
    assert root.post("/auth/revoke", data=form).status_code == 200
    assert auth.verify_access_token(token) is None


@pytest.mark.parametrize("token", ["never-issued", "a.b.c", "x" * 5000])
def test_an_unknown_token_is_answered_200(
    root: httpx.Client, confidential: Registered, token: str
) -> None:
    response = root.post("/auth/revoke", data={"token": token}, auth=confidential.basic())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


def test_another_clients_access_token_is_refused_and_keeps_working(
    root: httpx.Client, auth: AuthServer, engine: Engine, confidential: Registered
) -> None:
    token = access_token(auth, "someone-else")
    response = root.post("/auth/revoke", data={"token": token}, auth=confidential.basic())
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert auth.verify_access_token(token) is not None


def test_another_clients_refresh_token_is_refused_and_keeps_working(
    root: httpx.Client, engine: Engine, confidential: Registered
) -> None:
    other = register(engine)
    token = refresh_token(engine, other.client_id)
    response = root.post("/auth/revoke", data={"token": token}, auth=confidential.basic())
    assert response.status_code == 400
    assert not refresh_revoked(engine, token)


def test_the_caller_must_be_a_client(root: httpx.Client, auth: AuthServer) -> None:
    token = access_token(auth, "app")
    response = root.post("/auth/revoke", data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert auth.verify_access_token(token) is not None


def test_the_token_parameter_is_required(root: httpx.Client, confidential: Registered) -> None:
    response = root.post("/auth/revoke", data={}, auth=confidential.basic())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_another_process_sees_a_revocation_within_a_second(auth: AuthServer) -> None:
    token, claims = auth.issue_access_token(subject="a", client_id="c", scope="", lifetime=600)
    assert auth.verify_access_token(token) is not None
    other_process = AuthServer(auth.settings, auth.engine)
    other_process.revoke_access_token(claims)
    deadline = time.monotonic() + 1.5
    while auth.verify_access_token(token) is not None:
        assert time.monotonic() < deadline, "the revocation did not reach this process"
        time.sleep(0.05)


def test_deactivating_a_client_stops_the_tokens_it_already_holds(
    auth: AuthServer, confidential: Registered
) -> None:
    """``dhr clients revoke`` (another process) cuts off tokens already issued, within a poll."""
    token = access_token(auth, confidential.client_id)
    authenticate(auth, f"Bearer {token}")  # works, and is now cached
    with unit_of_work(auth.engine, write=True) as conn:
        assert auth_client_store.set_client_active(conn, confidential.client_id, False)
    deadline = time.monotonic() + 1.5
    with pytest.raises(AuthenticationFailed, match=r"client .* deactivated"):  # noqa: PT012
        while True:
            authenticate(auth, f"Bearer {token}")
            assert time.monotonic() < deadline, "the deactivation did not reach this process"
            time.sleep(0.05)
    assert auth.verify_access_token(token) is None


def test_deactivating_a_user_stops_their_tokens(auth: AuthServer) -> None:
    name = f"nurse-{secrets.token_hex(4)}"
    add_user(
        auth.engine,
        username=name,
        password="correct horse battery staple",
        role="R8001",
        fhir_user="Practitioner/n1",
        organisation="Y90001",
    )
    token, _ = auth.issue_access_token(
        subject=name, client_id="some-app", scope="user/*.rs", lifetime=600
    )
    authenticate(auth, f"Bearer {token}")
    assert deactivate_user(auth.engine, name)
    deadline = time.monotonic() + 1.5
    with pytest.raises(AuthenticationFailed, match=r"user .* deactivated"):  # noqa: PT012
        while True:
            authenticate(auth, f"Bearer {token}")
            assert time.monotonic() < deadline, "the deactivation did not reach this process"
            time.sleep(0.05)
