"""The sign-in page of the authorisation server and its browser session.

SMART App Launch 2.2 leaves user authentication to the server
(https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code). ``GET
/auth/login`` shows the form; ``POST /auth/login`` checks the password and, on success, sets an
``HttpOnly``, ``SameSite=Lax`` cookie holding a random session secret (the database keeps only its
SHA-256) and goes back to the pending authorisation request. ``next`` must be a local
``/auth/authorize`` URL, so the form cannot be used as an open redirect. The form carries a
double-submit token (cookie and hidden field) so another site cannot sign a browser in to an
account of its choosing (login CSRF, RFC 6749 section 10.12). Forms are parsed here without
python-multipart: only ``application/x-www-form-urlencoded`` is accepted.

Where external OpenID Connect providers are configured (:mod:`dhr.auth.federation`), the form
also offers "Sign in with <provider>" (``GET /auth/federate/{name}?next=``); the provider sends
the browser back to ``GET /auth/federate/{name}/callback``, which starts the same login session
as a password would. A cookie (``dhr_federation``, path ``/auth/federate``) binds each sign-in at
a provider to the browser that started it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Query, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dhr.auth import federation, pages, users
from dhr.auth.federation import FLOW_SECONDS
from dhr.auth.federation_provider import FederationError
from dhr.auth.users import User
from dhr.config import Settings
from dhr.store import auth_user_store as store
from dhr.store.db import unit_of_work

router = APIRouter()

SESSION_COOKIE = "dhr_session"
LOGIN_CSRF_COOKIE = "dhr_login_csrf"
COOKIE_PATH = "/auth"
FEDERATION_COOKIE = "dhr_federation"
FEDERATION_PATH = "/auth/federate"
AUTHORIZE_PATH = "/auth/authorize"
FORM_LIMIT = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


class FormError(ValueError):
    """A request body that is not an acceptable HTML form."""


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


async def read_form(request: Request, limit: int = FORM_LIMIT) -> list[tuple[str, str]]:
    """The fields of a urlencoded form body (at most ``limit`` bytes); FormError otherwise."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM_TYPE:
        raise FormError(f"the body must be {FORM_TYPE}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise FormError("the form is too large")
    try:
        return parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=200
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError("the form could not be read") from exc


def first(fields: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in fields if k == name), "")


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.services.settings
    return settings


def safe_next(next_url: str) -> str | None:
    """``next_url`` if it is a local ``/auth/authorize`` URL (path and query only), else None."""
    if not next_url or len(next_url) > 8192 or "\\" in next_url:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in next_url):
        return None
    parts = urlsplit(next_url)
    if parts.scheme or parts.netloc or parts.fragment or parts.path != AUTHORIZE_PATH:
        return None
    return next_url


def with_query(uri: str, extra: list[tuple[str, str]]) -> str:
    """``uri`` with ``extra`` appended to its query (its own parameters kept)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + extra
    return urlunsplit(parts._replace(query=urlencode(query)))


def login_location(settings: Settings, next_url: str) -> str:
    """Where to send a browser that must sign in before ``next_url`` (a local authorize URL)."""
    return f"{settings.auth_base}/login?{urlencode({'next': next_url})}"


def csrf_for_session(session_secret: str) -> str:
    """The anti-forgery token of forms shown to the holder of this session."""
    return hmac.new(session_secret.encode(), b"dhr-authorize-form", hashlib.sha256).hexdigest()


def session_secret(request: Request) -> str | None:
    value = request.cookies.get(SESSION_COOKIE)
    return value if value and len(value) <= 128 else None


def signed_in_user(request: Request) -> User | None:
    """The active user of the request's login session, or None (blocking: database)."""
    secret = session_secret(request)
    if secret is None:
        return None
    engine: Engine = request.app.state.services.engine
    with unit_of_work(engine, write=False) as conn:
        username = store.session_username(conn, sha256_hex(secret), int(time.time()))
    user = users.get_user(engine, username) if username is not None else None
    return user if user is not None and user.active else None


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, max_age: int, path: str
) -> None:
    """An HttpOnly, SameSite=Lax cookie (Secure when the server is reached over https)."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=settings.issuer.startswith("https://"),
    )


def _form(request: Request, next_url: str, username: str, message: str, status: int) -> Response:
    settings = settings_of(request)
    csrf = secrets.token_urlsafe(24)
    response = pages.login_page(
        action=f"{settings.auth_base}/login",
        next_url=next_url,
        csrf=csrf,
        username=username,
        message=message,
        status=status,
        providers=federation.of(request.app.state).links(next_url),
    )
    set_cookie(response, settings, LOGIN_CSRF_COOKIE, csrf, 3600, "/auth/login")
    return response


@router.get("/auth/login", include_in_schema=False)
async def login_form(
    request: Request, next_url: Annotated[str, Query(alias="next")] = ""
) -> Response:
    return _form(request, safe_next(next_url) or "", "", "", 200)


def start_session(settings: Settings, engine: Engine, username: str) -> str:
    """A new login session for ``username``; returns the secret for the session cookie."""
    secret = secrets.token_urlsafe(32)
    now = int(time.time())
    with unit_of_work(engine, write=True) as conn:
        store.purge_expired_sessions(conn, now)
        store.insert_session(
            conn, sha256_hex(secret), username, now + settings.login_session_seconds
        )
    return secret


@router.post("/auth/login", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    settings = settings_of(request)
    try:
        fields = await read_form(request)
    except FormError as exc:
        return pages.error_page("Cannot sign in", str(exc), 400)
    next_url = safe_next(first(fields, "next")) or ""
    username = first(fields, "username").strip()
    cookie_csrf = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    form_csrf = first(fields, "csrf")
    if not cookie_csrf or not hmac.compare_digest(cookie_csrf.encode(), form_csrf.encode()):
        message = "This sign-in form has expired or was not sent from this site; please try again."
        return _form(request, next_url, username, message, 400)
    engine = request.app.state.services.engine
    user = await run_in_threadpool(users.check_login, engine, username, first(fields, "password"))
    if user is None:
        return _form(request, next_url, username, "Wrong username or password.", 401)
    secret = await run_in_threadpool(start_session, settings, engine, user.username)
    return signed_in(settings, secret, next_url, user)


def signed_in(settings: Settings, secret: str, next_url: str, user: User) -> Response:
    """Back to the pending authorisation request (or a "signed in" page), with the session."""
    response: Response
    if next_url:
        response = RedirectResponse(settings.issuer + next_url, status_code=303)
    else:
        response = pages.signed_in_page(user.display or user.username)
    set_cookie(
        response, settings, SESSION_COOKIE, secret, settings.login_session_seconds, COOKIE_PATH
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/auth/login")
    response.headers["Cache-Control"] = "no-store"
    return response


def _federation_error(settings: Settings, exc: FederationError) -> Response:
    retry = (
        login_location(settings, exc.next_url) if exc.next_url else f"{settings.auth_base}/login"
    )
    return pages.error_page(exc.title, exc.message, exc.status, ("Back to sign in", retry))


@router.get("/auth/federate/{provider}", include_in_schema=False)
async def federate(
    request: Request, provider: str, next_url: Annotated[str, Query(alias="next")] = ""
) -> Response:
    """Send the browser to an external provider to sign in (OpenID Connect code flow)."""
    settings = settings_of(request)
    browser = request.cookies.get(FEDERATION_COOKIE, "")
    if not 43 <= len(browser) <= 128:
        browser = secrets.token_urlsafe(32)
    fed = federation.of(request.app.state)
    next_url = safe_next(next_url) or ""
    try:
        location = await run_in_threadpool(fed.start, provider, next_url, browser)
    except FederationError as exc:
        exc.next_url = next_url
        return _federation_error(settings, exc)
    response = RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
    set_cookie(response, settings, FEDERATION_COOKIE, browser, FLOW_SECONDS, FEDERATION_PATH)
    return response


@router.get("/auth/federate/{provider}/callback", include_in_schema=False)
async def federate_callback(request: Request, provider: str) -> Response:
    """The provider's answer: on success a login session, then back to ``next``."""
    settings = settings_of(request)
    browser = request.cookies.get(FEDERATION_COOKIE) or None
    fields = list(request.query_params.multi_items())
    fed = federation.of(request.app.state)
    try:
        user, next_url = await run_in_threadpool(fed.finish, provider, fields, browser)
    except FederationError as exc:
        return _federation_error(settings, exc)
    engine = request.app.state.services.engine
    secret = await run_in_threadpool(start_session, settings, engine, user.username)
    return signed_in(settings, secret, next_url, user)


@router.post("/auth/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    """End the login session (the cookie and its database row)."""
    secret = session_secret(request)
    if secret is not None:
        engine = request.app.state.services.engine

        def _end() -> None:
            with unit_of_work(engine, write=True) as conn:
                store.delete_session(conn, sha256_hex(secret))

        await run_in_threadpool(_end)
    response = pages.page("Signed out", "<p>You are signed out.</p>")
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
