"""FastAPI routes: HTTP in, :class:`FhirRequest` to the dispatcher, HTTP out. No FHIR rules here.

The FHIR base is ``/fhir`` (https://hl7.org/fhir/R4/http.html#general). Bodies are read with a
size limit (413 past it) before anything parses them.

Every request but ``GET /fhir/metadata`` (the CapabilityStatement is public, like SMART
discovery) carries a bearer access token (RFC 6750, https://www.rfc-editor.org/rfc/rfc6750):
:func:`dhr.auth.principal.authenticate` turns it into the principal the request runs as, and
a missing, malformed, expired or revoked token is a 401 with an OperationOutcome (issue type
``login``) and the ``WWW-Authenticate`` challenge, checked before the body is read. With
``auth_enabled = false`` (benchmark baselines only) requests run as the open principal.

A failed authentication is audited (IHE BALP; :mod:`dhr.audit.events`, subtype
``authentication-failure``, outcome 4) with an unknown agent and, when the presented token's
payload can be read (unverified, so only as a hint), its ``client_id``; an audit that cannot be
written turns the 401 into a 503 (fail closed).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from dhr.access.system import ANONYMOUS
from dhr.api.content_coding import decode
from dhr.api.dispatch import Services, handle
from dhr.api.http import CONTENT_TYPE, representation
from dhr.api.message import FhirRequest, FhirResponse
from dhr.audit.events import build_event
from dhr.audit.recorder import now_micros
from dhr.audit.sink import AuditUnavailable
from dhr.auth.model import OPEN_ACCESS, Principal
from dhr.auth.principal import AuthenticationFailed, authenticate
from dhr.auth.service import AuthServer
from dhr.digits import natural
from dhr.errors import FhirError, too_large
from dhr.fhir import jsonio
from dhr.fhir.ids import new_id
from dhr.interactions.common import error_response

log = logging.getLogger(__name__)
router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    length = natural(declared)
    if declared and declared.isdigit() and (length is None or length > limit):
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def to_http(req: FhirRequest, resp: FhirResponse) -> Response:
    headers = dict(resp.headers)
    content: bytes = b""
    if resp.json is not None:
        content = jsonio.dumps(resp.json, _pretty(req))
    elif resp.body is not None:
        # Bytes as built (a stored version, or a Bundle holding stored versions), indented
        # again only when ``_pretty`` asks.
        content = jsonio.dumps(jsonio.loads(resp.body), True) if _pretty(req) else resp.body
    if req.method == "HEAD" or resp.status == 304:
        content = b""
    media = CONTENT_TYPE if (resp.json is not None or resp.body is not None) else None
    return Response(content=content, status_code=resp.status, headers=headers, media_type=media)


def _pretty(req: FhirRequest) -> bool:
    try:
        return representation(req).pretty
    except FhirError:
        return False


def is_public(method: str, path: str) -> bool:
    """``GET``/``HEAD /fhir/metadata``: the CapabilityStatement needs no token."""
    return method in ("GET", "HEAD") and path == "metadata"


def unauthenticated(exc: AuthenticationFailed) -> FhirResponse:
    """401: an OperationOutcome (``login``) with the RFC 6750 challenge."""
    error = FhirError(
        401,
        "login",
        f"Authentication required: {exc}",
        "unauthenticated",
        headers={"WWW-Authenticate": exc.www_authenticate},
    )
    return error_response(error)


MAX_TOKEN_PAYLOAD = 8192


def presented_client_id(header: str | None) -> str | None:
    """The ``client_id`` claim of a bearer JWT's payload, read WITHOUT verifying it (a hint for
    the audit of a refused token only); None when there is none or it looks odd."""
    scheme, _, token = (header or "").strip().partition(" ")
    parts = token.strip().split(".")
    if scheme.lower() != "bearer" or len(parts) != 3 or len(parts[1]) > MAX_TOKEN_PAYLOAD:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = orjson.loads(payload)
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return None
    found = claims.get("client_id") if isinstance(claims, dict) else None
    if isinstance(found, str) and 0 < len(found) <= 128 and found.isprintable():
        return found
    return None


def refused(svc: Services, exc: AuthenticationFailed, header: str | None) -> FhirResponse:
    """The 401 of a failed authentication, audited first (503 when the audit fails)."""
    if not svc.sink.enabled:
        return unauthenticated(exc)
    who = Principal(subject="unknown", client_id=presented_client_id(header))
    record = build_event(
        event_id=new_id(),
        recorded=now_micros(),
        subtype="authentication-failure",
        action="E",
        outcome="4",
        principal=who,
        request_id=new_id(),
        patient=None,
        entities=(),
        query=None,
        outcome_desc=f"Authentication failed: {exc}",
        purpose=None,
        break_glass=False,
        server=svc.settings.fhir_base,
    )
    try:
        svc.sink.write([record])
    except AuditUnavailable as unavailable:
        return error_response(unavailable)
    return unauthenticated(exc)


def _serve(
    svc: Services, auth: AuthServer | None, header: str | None, req: FhirRequest
) -> FhirResponse:
    """Authenticate (when ``auth`` is given), then run the request as that principal."""
    principal: Principal
    if auth is None:
        principal = ANONYMOUS if svc.settings.auth_enabled else OPEN_ACCESS
    else:
        try:
            principal = authenticate(auth, header)
        except AuthenticationFailed as exc:
            return refused(svc, exc, header)
    return handle(svc, req, principal)


@router.api_route("/fhir", methods=METHODS, include_in_schema=False)
@router.api_route("/fhir/{path:path}", methods=METHODS, include_in_schema=False)
async def fhir_endpoint(
    request: Request, svc: Annotated[Services, Depends(services)], path: str = ""
) -> Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = tuple(request.query_params.multi_items())
    req = FhirRequest(request.method, path.strip("/"), query, headers, None)
    auth: AuthServer | None = None
    if svc.settings.auth_enabled and not is_public(request.method, req.path):
        auth = request.app.state.auth
    bodiless = request.method in ("GET", "HEAD", "DELETE") and not headers.get("content-length")
    if auth is not None and not bodiless:  # refuse a stranger before reading a large body
        header = headers.get("authorization")
        try:
            await run_in_threadpool(authenticate, auth, header)
        except AuthenticationFailed as exc:
            return to_http(req, await run_in_threadpool(refused, svc, exc, header))
    try:
        body = await read_body(request, svc.settings.max_body_bytes)
        if headers.get("content-encoding"):
            coding = headers.pop("content-encoding")
            body = await run_in_threadpool(decode, body, coding, svc.settings.max_body_bytes)
    except FhirError as exc:
        return to_http(req, error_response(exc))
    req = FhirRequest(request.method, req.path, query, headers, body)
    resp = await run_in_threadpool(_serve, svc, auth, headers.get("authorization"), req)
    return to_http(req, resp)
