"""The authorisation endpoint: ``GET`` and ``POST /auth/authorize`` (authorisation code + PKCE).

SMART App Launch 2.2, "Obtain authorization code"
(https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code), on RFC 6749
section 4.1 and RFC 7636 (PKCE, ``S256`` only). Order of checks (RFC 6749 section 4.1.2.1): an
unknown, inactive or backend client, or a ``redirect_uri`` that is not exactly one the client
registered, gets an error *page* and is never redirected to; every later problem is redirected
to the app as ``error=...&error_description=...&state=...``.

Then the user signs in (:mod:`dhr.auth.login`); the scopes granted are the request narrowed by
the client's registered scopes and then by the user's role ceiling (:mod:`dhr.auth.roles`). The
patient context comes from the role's data: ``self`` (a patient gets their own record and can
never choose another), ``picker`` (staff choose in a patient picker, or the EHR launch gives it),
``none``. An EHR launch (``launch`` parameter) redeems a context made by ``POST /auth/launch``
(:mod:`dhr.auth.launch`); it is single use and consumed when the code is issued.

Registered apps are approved without a separate consent screen: an app is registered by the
organisation (``dhr clients add``), which is the approval, and the role ceiling bounds what it
gets. The picker has a Cancel button, which answers ``error=access_denied``. The code is 32
random bytes (base64url); ``auth_code`` keeps its SHA-256 with the client, user, redirect URI,
granted scope, PKCE challenge, launch context and nonce, for ``settings.code_seconds``.

This module's ``router`` also carries the sign-in and EHR launch routes.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dhr.api.dispatch import Services
from dhr.auth import launch, login, pages, picker
from dhr.auth.clients import Client, get_client
from dhr.auth.model import ClientKind
from dhr.auth.scopes import grant, parse_scopes, split
from dhr.auth.users import User
from dhr.store import auth_user_store as store
from dhr.store.db import unit_of_work

router = APIRouter()
router.include_router(login.router)
router.include_router(launch.router)

OAUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "launch",
    "nonce",
)
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url(SHA-256), unpadded (RFC 7636 4.2)
MAX_STATE = 2048
MAX_NONCE = 255


class PageError(Exception):
    """Shown to the user; never redirected (bad client or redirect URI)."""

    def __init__(self, title: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.title, self.message, self.status = title, message, status


class RedirectError(Exception):
    """Sent back to the app's redirect URI (RFC 6749 section 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description


@dataclass(frozen=True)
class AuthRequest:
    """A checked authorisation request."""

    client: Client
    redirect_uri: str
    state: str
    scope: str
    code_challenge: str
    nonce: str | None
    launch: str | None
    params: list[tuple[str, str]]  # the OAuth parameters as sent, to carry through sign-in


def _one(fields: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in fields if k == name]
    if len(values) > 1:
        raise ValueError(name)
    return values[0] if values else ""


def check_request(services: Services, fields: list[tuple[str, str]]) -> AuthRequest:
    """Validate the request; PageError before the redirect URI is trusted, RedirectError after."""
    try:
        client_id, redirect_uri = _one(fields, "client_id"), _one(fields, "redirect_uri")
    except ValueError as exc:
        raise PageError("Invalid request", f"{exc} was sent more than once") from None
    if not client_id:
        raise PageError("Invalid request", "client_id is required")
    client = get_client(services.engine, client_id)
    if client is None or not client.active or client.kind == ClientKind.BACKEND:
        raise PageError("Unknown app", "This app is not registered with DHR (or was withdrawn).")
    if not redirect_uri or redirect_uri not in client.redirect_uris:
        raise PageError("Invalid redirect", "redirect_uri is not one this app registered.")
    try:
        values = {name: _one(fields, name) for name in OAUTH_PARAMS}
    except ValueError as exc:
        raise RedirectError("invalid_request", f"{exc} was sent more than once") from None
    if not values["state"] or len(values["state"]) > MAX_STATE:
        raise RedirectError("invalid_request", "state is required (at most 2048 characters)")
    if values["response_type"] != "code":
        raise RedirectError("unsupported_response_type", "response_type must be code")
    if values["aud"].rstrip("/") != services.settings.fhir_base:
        raise RedirectError(
            "invalid_request",
            f"aud must be this server's FHIR base URL {services.settings.fhir_base}",
        )
    if values["code_challenge_method"] != "S256":
        raise RedirectError(
            "invalid_request", "PKCE is required with code_challenge_method=S256 (plain is refused)"
        )
    if not _CHALLENGE.match(values["code_challenge"]):
        raise RedirectError(
            "invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier"
        )
    if not values["scope"].strip():
        raise RedirectError("invalid_scope", "scope is required")
    if len(values["nonce"]) > MAX_NONCE:
        raise RedirectError("invalid_request", "nonce is too long (at most 255 characters)")
    params = [(k, v) for k, v in fields if k in OAUTH_PARAMS]
    return AuthRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=values["state"],
        scope=values["scope"],
        code_challenge=values["code_challenge"],
        nonce=values["nonce"] or None,
        launch=values["launch"] or None,
        params=params,
    )


@dataclass(frozen=True)
class Context:
    patient: str | None
    encounter: str | None
    launch_hash: str | None  # the EHR launch to consume with the code


def _launch_context(
    services: Services, req: AuthRequest, user: User, granted: set[str]
) -> Context | None:
    """The context of an EHR launch, or None for a standalone launch."""
    if req.launch is None:
        return None
    launch_hash = login.sha256_hex(req.launch)
    with unit_of_work(services.engine, write=False) as conn:
        row = store.get_launch(conn, launch_hash, int(time.time()))
    if row is None:
        raise RedirectError("invalid_request", "launch is unknown or has expired")
    if row["client_id"] is not None and row["client_id"] != req.client.client_id:
        raise RedirectError("invalid_request", "this launch was made for another app")
    role = user.role_info
    if role.patient_context == "none":
        return Context(None, None, launch_hash)
    patient = row["patient"] if granted & {"launch", "launch/patient"} else None
    encounter = row["encounter"] if granted & {"launch", "launch/encounter"} else None
    if role.patient_context == "self" and patient is not None and patient != user.patient_id:
        raise RedirectError("access_denied", "this launch is about another patient")
    return Context(patient, encounter, launch_hash)


def _csrf_ok(request: Request, fields: list[tuple[str, str]]) -> bool:
    secret = login.session_secret(request)
    sent = login.first(fields, "csrf")
    if secret is None or not sent:
        return False
    return hmac.compare_digest(login.csrf_for_session(secret).encode(), sent.encode())


def _issue(
    services: Services,
    req: AuthRequest,
    user: User,
    scope: str,
    ctx: Context,
    session_hash: str | None,
) -> str:
    code = secrets.token_urlsafe(32)
    now = int(time.time())
    with unit_of_work(services.engine, write=True) as conn:
        if ctx.launch_hash is not None and not store.consume_launch(conn, ctx.launch_hash, now):
            raise RedirectError("invalid_request", "launch is unknown, expired or already used")
        store.insert_code(
            conn,
            code_hash=login.sha256_hex(code),
            client_id=req.client.client_id,
            username=user.username,
            redirect_uri=req.redirect_uri,
            scope=scope,
            code_challenge=req.code_challenge,
            patient=ctx.patient,
            encounter=ctx.encounter,
            nonce=req.nonce,
            expires_at=now + services.settings.code_seconds,
            session_hash=session_hash,
        )
    return code


def _picker(
    request: Request,
    services: Services,
    req: AuthRequest,
    user: User,
    fields: list[tuple[str, str]],
) -> Response | str:
    """The chosen patient's id, or the picker page (search results, or a first empty page)."""
    secret = login.session_secret(request) or ""
    principal = picker.user_principal(user)
    query = login.first(fields, "patient_search").strip()
    chosen = login.first(fields, "patient").strip()
    message = ""
    if (chosen or query) and not _csrf_ok(request, fields):
        chosen, query, message = "", "", "The form expired; please search again."
    if chosen:
        if picker.read(services, principal, "Patient", chosen) is not None:
            return chosen
        message = "That patient cannot be opened; please search again."
    patients = picker.search_patients(services, principal, query) if query else []
    return pages.picker_page(
        action=f"{services.settings.auth_base}/authorize",
        app_name=req.client.name or req.client.client_id,
        user_display=user.display or user.username,
        fields=req.params,
        csrf=login.csrf_for_session(secret),
        query=query,
        patients=patients,
        message=message,
    )


def _decide(
    request: Request, services: Services, req: AuthRequest, fields: list[tuple[str, str]]
) -> Response | str:
    """The signed-in user's answer: a login redirect, a page, or an issued code."""
    user = login.signed_in_user(request)
    if user is None:
        next_url = f"{login.AUTHORIZE_PATH}?{urlencode(req.params)}"
        return RedirectResponse(login.login_location(services.settings, next_url), 303)
    role = user.role_info
    if not role.interactive:
        raise RedirectError("access_denied", f"a {role.display} cannot authorise apps")
    if login.first(fields, "decision") == "deny":
        raise RedirectError("access_denied", "the user cancelled")
    scope = grant(grant(req.scope, req.client.scopes), role.ceiling)
    if not scope:
        raise RedirectError("invalid_scope", "none of the requested scopes can be granted")
    granted = set(split(scope))
    ctx = _launch_context(services, req, user, granted) or Context(None, None, None)
    patient = ctx.patient
    if patient is None and role.patient_context == "self":
        wants = "launch/patient" in granted or any(
            s.context == "patient" for s in parse_scopes(scope)
        )
        patient = user.patient_id if wants else None
    elif patient is None and role.patient_context == "picker" and "launch/patient" in granted:
        choice = _picker(request, services, req, user, fields)
        if isinstance(choice, Response):
            return choice
        patient = choice
    ctx = Context(patient, ctx.encounter, ctx.launch_hash)
    secret = login.session_secret(request)
    session_hash = login.sha256_hex(secret) if secret is not None else None
    return _issue(services, req, user, scope, ctx, session_hash)


async def _authorize(request: Request, fields: list[tuple[str, str]]) -> Response:
    services: Services = request.app.state.services
    status = 303 if request.method == "POST" else 302
    try:
        req = await run_in_threadpool(check_request, services, fields)
    except PageError as exc:
        return pages.error_page(exc.title, exc.message, exc.status)
    except RedirectError as exc:
        return _redirect_error(fields, exc, status)
    try:
        outcome = await run_in_threadpool(_decide, request, services, req, fields)
    except RedirectError as exc:
        return _redirect_error(fields, exc, status)
    if isinstance(outcome, Response):
        return outcome
    location = login.with_query(req.redirect_uri, [("code", outcome), ("state", req.state)])
    return RedirectResponse(location, status, headers={"Cache-Control": "no-store"})


def _redirect_error(fields: list[tuple[str, str]], exc: RedirectError, status: int) -> Response:
    extra = [("error", exc.error), ("error_description", exc.description)]
    state = [v for k, v in fields if k == "state"]
    if len(state) == 1 and state[0] and len(state[0]) <= MAX_STATE:
        extra.append(("state", state[0]))
    uri = login.first(fields, "redirect_uri")  # checked against the registration already
    return RedirectResponse(
        login.with_query(uri, extra), status, headers={"Cache-Control": "no-store"}
    )


@router.get("/auth/authorize", include_in_schema=False)
async def authorize_get(request: Request) -> Response:
    return await _authorize(request, list(request.query_params.multi_items()))


@router.post("/auth/authorize", include_in_schema=False)
async def authorize_post(request: Request) -> Response:
    try:
        fields = await login.read_form(request)
    except login.FormError as exc:
        return pages.error_page("Invalid request", str(exc), 400)
    return await _authorize(request, fields)
