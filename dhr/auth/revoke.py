"""Token revocation, ``POST /auth/revoke`` (RFC 7009, https://www.rfc-editor.org/rfc/rfc7009).

The client names the token (``token``, optional ``token_type_hint``) and authenticates as at
the token endpoint (a public client names itself with ``client_id``). A revoked access token
fails from the next request on (see :mod:`dhr.auth.service` for other processes); a revoked
refresh token (``auth_refresh_token``, keyed by the SHA-256 hex of the token) can no longer be
exchanged. A token the server does not know, or that has already expired, is answered 200 as
section 2.2 says; a token issued to another client is refused (section 2.1). Every answer
carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from dhr.auth.client_auth import OAuthError, authenticate_client
from dhr.auth.introspect import NO_STORE, oauth_error
from dhr.auth.oauth_form import read_form
from dhr.auth.service import AuthServer
from dhr.store import auth_client_store
from dhr.store.db import unit_of_work

router = APIRouter(include_in_schema=False)

HINTS = frozenset({"access_token", "refresh_token"})


def _not_yours() -> OAuthError:
    return OAuthError("unauthorized_client", "the token was not issued to this client")


def revoke_token(auth: AuthServer, client_id: str, token: str, hint: str | None) -> None:
    """Revoke ``token`` if it is one of ``client_id``'s access or refresh tokens.

    Raises OAuthError ``unauthorized_client`` for another client's token; unknown tokens are
    ignored. ``hint`` only decides which kind is tried first.
    """
    kinds = ("access_token", "refresh_token")
    for kind in reversed(kinds) if hint == "refresh_token" else kinds:
        if kind == "access_token" and token.count(".") == 2:
            claims = auth.verify_access_token(token)
            if claims is not None:
                if claims.get("client_id") != client_id:
                    raise _not_yours()
                auth.revoke_access_token(claims)
                return
        elif kind == "refresh_token" and _revoke_refresh(auth, client_id, token):
            return


def _revoke_refresh(auth: AuthServer, client_id: str, token: str) -> bool:
    """True when ``token`` is a known refresh token (now revoked)."""
    token_hash = hashlib.sha256(token.encode("utf-8")).hexdigest()
    with unit_of_work(auth.engine, write=True) as conn:
        row = auth_client_store.refresh_row(conn, token_hash)
        if row is None:
            return False
        if row.client_id != client_id:
            raise _not_yours()
        auth_client_store.revoke_refresh_token(conn, token_hash)
    return True


def _revoke(auth: AuthServer, form: dict[str, str], authorization: str | None) -> Response:
    try:
        client = authenticate_client(auth, form, authorization, required=True)
        token = form.get("token", "")
        if client is None or not token:
            raise OAuthError("invalid_request", "the token parameter is required")
        hint = form.get("token_type_hint")
        revoke_token(auth, client.client_id, token, hint if hint in HINTS else None)
    except OAuthError as exc:
        return oauth_error(exc)
    return Response(status_code=200, headers=NO_STORE)


@router.post("/auth/revoke")
async def revoke_endpoint(request: Request) -> Response:
    try:
        form = await read_form(request)
    except OAuthError as exc:
        return oauth_error(exc)
    auth: AuthServer = request.app.state.auth
    return await run_in_threadpool(_revoke, auth, form, request.headers.get("authorization"))
