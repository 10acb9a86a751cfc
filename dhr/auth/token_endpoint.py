"""``POST /auth/token``: the OAuth 2.0 token endpoint of DHR's SMART authorisation server.

RFC 6749 sections 3.2, 5.1 and 5.2 (https://www.rfc-editor.org/rfc/rfc6749#section-3.2): the
request is ``application/x-www-form-urlencoded`` with each parameter at most once; success and
error responses are JSON with ``Cache-Control: no-store`` and ``Pragma: no-cache``. The grants
live in :mod:`dhr.auth.grants`; client authentication in :mod:`dhr.auth.client_auth`.
SMART App Launch 2.2: https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token
and https://hl7.org/fhir/smart-app-launch/backend-services.html#obtaining-an-access-token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dhr.auth import grants
from dhr.auth.client_auth import OAuthError, authenticate_client
from dhr.auth.clients import Client
from dhr.auth.oauth_form import read_form
from dhr.auth.service import AuthServer

log = logging.getLogger(__name__)
router = APIRouter()

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
Grant = Callable[[AuthServer, Client, Mapping[str, str]], dict[str, Any]]
GRANTS: Mapping[str, Grant] = {
    "authorization_code": grants.authorization_code,
    "refresh_token": grants.refresh_token,
    "client_credentials": grants.client_credentials,
}


def _json(
    body: Mapping[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers={**NO_STORE, **(headers or {})})


def _error(exc: OAuthError) -> JSONResponse:
    return _json(exc.body(), exc.status, exc.headers)


def _token(auth: AuthServer, form: Mapping[str, str], authorization: str | None) -> dict[str, Any]:
    grant_type = form.get("grant_type", "")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    run = GRANTS.get(grant_type)
    if run is None:
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
    client = authenticate_client(auth, form, authorization, required=True)
    assert client is not None  # required=True never returns None
    return run(auth, client, form)


@router.post("/auth/token", include_in_schema=False)
async def token_endpoint(request: Request) -> JSONResponse:
    """Exchange a grant for an access token (RFC 6749 section 3.2)."""
    auth: AuthServer = request.app.state.auth
    try:
        form = await read_form(request)
        body = await run_in_threadpool(_token, auth, form, request.headers.get("authorization"))
    except OAuthError as exc:
        log.info("token request refused: %s", exc)
        return _error(exc)
    return _json(body)
