"""Token introspection, ``POST /auth/introspect`` (RFC 7662, https://www.rfc-editor.org/rfc/rfc7662).

SMART App Launch 2.2 "Token Introspection"
(https://hl7.org/fhir/smart-app-launch/token-introspection.html): an active access token is
described with ``active``, ``scope``, ``client_id``, ``sub``, ``exp``, ``iat``, ``iss``,
``aud``, ``token_type`` and its launch context (``patient``, ``encounter``, ``fhirUser``);
anything else (junk, expired, revoked, a refresh token) is exactly ``{"active": false}``.

The caller must prove who it is (RFC 7662 section 2.1): either as a confidential client, the
way it would at the token endpoint, or with a valid bearer access token of its own. A public
client naming itself with ``client_id`` alone is not enough.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dhr.auth.client_auth import OAuthError, authenticate_client
from dhr.auth.model import ClientKind
from dhr.auth.oauth_form import read_form
from dhr.auth.principal import AuthenticationFailed, authenticate
from dhr.auth.service import AuthServer

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ECHOED = ("scope", "client_id", "sub", "exp", "iat", "iss", "aud", "jti")
_CONTEXT = ("patient", "encounter", "fhirUser")


def oauth_error(exc: OAuthError) -> JSONResponse:
    """An RFC 6749 section 5.2 error body, never cached."""
    return JSONResponse(exc.body(), status_code=exc.status, headers={**exc.headers, **NO_STORE})


def _auth(request: Request) -> AuthServer:
    auth: AuthServer = request.app.state.auth
    return auth


def authenticate_caller(auth: AuthServer, form: dict[str, str], authorization: str | None) -> str:
    """Who is asking: a confidential client, or the holder of a valid access token.

    Returns the caller's client_id; raises OAuthError ``invalid_client`` (401) otherwise.
    """
    if authorization and authorization.strip().lower().startswith("bearer "):
        try:
            principal = authenticate(auth, authorization)
        except AuthenticationFailed as exc:
            raise OAuthError(
                "invalid_client",
                exc.description or "authentication is required",
                status=401,
                headers={"WWW-Authenticate": exc.www_authenticate},
            ) from None
        return principal.client_id or principal.subject
    client = authenticate_client(auth, form, authorization, required=True)
    if client is None or client.kind == ClientKind.PUBLIC:
        raise OAuthError(
            "invalid_client",
            "introspection needs a confidential client's credentials or a bearer token",
            status=401,
        )
    return client.client_id


def describe(auth: AuthServer, token: str) -> dict[str, Any]:
    """The RFC 7662 description of ``token``: ``{"active": false}`` unless a valid access token."""
    claims = auth.verify_access_token(token)
    if claims is None:
        return {"active": False}
    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    body.update({k: claims[k] for k in (*_ECHOED, *_CONTEXT) if k in claims})
    return body


def _introspect(auth: AuthServer, form: dict[str, str], authorization: str | None) -> Response:
    try:
        authenticate_caller(auth, form, authorization)
        token = form.get("token", "")
        if not token:
            raise OAuthError("invalid_request", "the token parameter is required")
    except OAuthError as exc:
        return oauth_error(exc)
    return JSONResponse(describe(auth, token), headers=NO_STORE)


@router.post("/auth/introspect")
async def introspect_endpoint(request: Request) -> Response:
    try:
        form = await read_form(request)
    except OAuthError as exc:
        return oauth_error(exc)
    auth = _auth(request)
    authorization = request.headers.get("authorization")
    return await run_in_threadpool(_introspect, auth, form, authorization)
