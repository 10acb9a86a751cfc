"""The bearer-token check: ``Authorization: Bearer <jwt>`` to a :class:`Principal`.

RFC 6750 (https://www.rfc-editor.org/rfc/rfc6750): a request without credentials gets a bare
``WWW-Authenticate: Bearer realm="DHR"`` challenge; a bad token gets ``error="invalid_token"``
with a description (section 3). SMART App Launch 2.2 scopes
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html) are parsed into the
principal. Authentication only: what the principal may do is decided in ``dhr.enforce``.

A token seen before costs a dict lookup plus the revocation check: verified tokens are cached
(bounded, each entry dropped when its token expires) on the :class:`AuthServer`.
"""

from __future__ import annotations

import re
from typing import Any

from dhr.auth.model import Principal
from dhr.auth.scopes import parse_scopes
from dhr.auth.service import AuthServer
from dhr.auth.tokens import LEEWAY_SECONDS, InvalidToken

REALM = "DHR"
_UNSAFE = re.compile(r"[^\x20-\x21\x23-\x5b\x5d-\x7e]")  # RFC 6750 error_description charset


class AuthenticationFailed(Exception):  # noqa: N818 - named for what the caller sees
    """No usable bearer token. ``www_authenticate`` is the RFC 6750 challenge to answer 401 with.

    ``error`` is None when the request carried no token at all, else ``invalid_token``.
    """

    status = 401

    def __init__(self, description: str | None = None) -> None:
        self.description = description
        self.error: str | None = None if description is None else "invalid_token"
        challenge = f'Bearer realm="{REALM}"'
        if description is not None:
            text = _UNSAFE.sub("", description)
            challenge += f', error="invalid_token", error_description="{text}"'
        self.www_authenticate = challenge
        super().__init__(description or "a bearer access token is required")


def bearer_token(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer`` header; raises AuthenticationFailed."""
    if authorization_header is None or not authorization_header.strip():
        raise AuthenticationFailed()
    scheme, _, token = authorization_header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationFailed("expected an Authorization header of the form: Bearer <token>")
    return token


def authenticate(auth: AuthServer, authorization_header: str | None) -> Principal:
    """The principal of a valid, unexpired, unrevoked access token issued by this server."""
    token = bearer_token(authorization_header)
    now = auth.clock()
    principal = auth.principals.get(token, now)
    if principal is None:
        try:
            claims = auth.check_access_token(token)
        except InvalidToken as exc:
            raise AuthenticationFailed(str(exc)) from None
        principal = _principal(claims)
        auth.principals.put(token, principal, claims["exp"] + LEEWAY_SECONDS, now)
    elif principal.token_id is None or auth.is_revoked(principal.token_id):
        auth.principals.discard(token)
        raise AuthenticationFailed("the token has been revoked")
    revocations = auth.revocations
    if principal.client_id in revocations.inactive_clients:
        raise AuthenticationFailed("the client this token was issued to has been deactivated")
    if principal.subject in revocations.inactive_users:
        raise AuthenticationFailed("the user this token was issued to has been deactivated")
    return principal


def _principal(claims: dict[str, Any]) -> Principal:
    scope = str(claims["scope"])
    roles = claims.get("roles")
    return Principal(
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        scopes=parse_scopes(scope),
        scope_text=scope,
        patient=_text(claims.get("patient")),
        encounter=_text(claims.get("encounter")),
        fhir_user=_text(claims.get("fhirUser")),
        roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
        organisation=_text(claims.get("org")),
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
