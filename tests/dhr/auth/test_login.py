"""The sign-in page of the authorisation server, over real HTTP.

SMART App Launch 2.2 leaves user authentication to the server
(https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code). Checked here:
the session cookie (HttpOnly, SameSite=Lax, only its SHA-256 stored), wrong passwords (401 and
the form again), inactive users, login CSRF (RFC 6749 section 10.12) and open redirects.
"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import Engine, select

from dhr.auth.users import deactivate_user
from dhr.store.auth_models import LoginSessionRow
from dhr.store.db import unit_of_work
from tests.conftest import LiveServer
from tests.dhr.auth import flow

NEXT = "/auth/authorize?client_id=test-app&state=abc"


def session_hashes(engine: Engine, username: str) -> list[str]:
    """The stored login sessions of one user."""
    query = select(LoginSessionRow.session_hash).where(LoginSessionRow.username == username)
    with unit_of_work(engine, write=False) as conn:
        return list(conn.execute(query).scalars())


def test_the_form_is_not_cached_framed_or_scripted(server: LiveServer) -> None:
    with flow.browser(server) as http:
        page = http.get("/auth/login", params={"next": NEXT})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'name="password"' in page.text or "name=password" in page.text
    assert flow.hidden(page.text, "next") == NEXT
    assert "dhr_login_csrf" in page.cookies


def test_signing_in_sets_a_session_cookie_and_returns_to_the_request(
    server: LiveServer, engine: Engine
) -> None:
    pat = flow.add_patient_user(engine, "p1", name="pat")
    with flow.browser(server) as http:
        answer = flow.sign_in(http, pat.username, flow.PASSWORD, NEXT)
        assert answer.status_code == 303
        assert answer.headers["location"] == server.settings.issuer + NEXT
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("dhr_session=")
        )
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
        assert "Path=/auth" in cookie
        secret = http.cookies["dhr_session"]
    assert len(secret) >= 43
    assert session_hashes(engine, pat.username) == [hashlib.sha256(secret.encode()).hexdigest()]


def test_a_wrong_password_shows_the_form_again_with_401(server: LiveServer, engine: Engine) -> None:
    pat = flow.add_patient_user(engine, "p1", name="pat")
    with flow.browser(server) as http:
        answer = flow.sign_in(http, pat.username, "not the password", NEXT)
        assert answer.status_code == 401
        assert "Wrong username or password" in answer.text
        assert flow.hidden(answer.text, "next") == NEXT
        assert "dhr_session" not in http.cookies
        unknown = flow.sign_in(http, "nobody", "not the password", NEXT)
        assert unknown.status_code == 401
        assert "Wrong username or password" in unknown.text
    assert session_hashes(engine, pat.username) == []


def test_an_inactive_user_cannot_sign_in(server: LiveServer, engine: Engine) -> None:
    pat = flow.add_patient_user(engine, "p1", name="pat")
    deactivate_user(engine, pat.username)
    with flow.browser(server) as http:
        assert flow.sign_in(http, pat.username, flow.PASSWORD, NEXT).status_code == 401
    assert session_hashes(engine, pat.username) == []


def test_a_form_posted_without_its_anti_forgery_cookie_is_refused(
    server: LiveServer, engine: Engine
) -> None:
    """Another site cannot sign a browser in to an account of its choosing."""
    pat = flow.add_patient_user(engine, "p1", name="pat")
    with flow.browser(server) as http:
        answer = http.post(
            "/auth/login",
            data={
                "username": pat.username,
                "password": flow.PASSWORD,
                "next": NEXT,
                "csrf": "guess",
            },
        )
    assert answer.status_code == 400
    assert "expired" in answer.text
    assert session_hashes(engine, pat.username) == []


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/auth/authorize",
        "//evil.example/auth/authorize",
        "/\\evil.example/auth/authorize",
        "/fhir/Patient",
        "/auth/login",
        "javascript:alert(1)",
    ],
)
def test_next_is_never_an_open_redirect(server: LiveServer, engine: Engine, target: str) -> None:
    pat = flow.add_patient_user(engine, "p1", name="pat")
    with flow.browser(server) as http:
        answer = flow.sign_in(http, pat.username, flow.PASSWORD, target)
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "signed in as Pat" in answer.text


def test_signing_out_ends_the_session(server: LiveServer, engine: Engine) -> None:
    pat = flow.add_patient_user(engine, "p1", name="pat")
    with flow.browser(server) as http:
        flow.sign_in(http, pat.username, flow.PASSWORD, NEXT)
        assert len(session_hashes(engine, pat.username)) == 1
        assert http.post("/auth/logout").status_code == 200
    assert session_hashes(engine, pat.username) == []


def test_a_form_that_is_not_urlencoded_is_refused(server: LiveServer) -> None:
    with flow.browser(server) as http:
        answer = http.post("/auth/login", json={"username": "pat"})
    assert answer.status_code == 400
