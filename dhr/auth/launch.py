"""``POST /auth/launch``: the launching EHR obtains an opaque launch context for an EHR launch.

SMART App Launch 2.2 EHR launch
(https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch): the EHR opens
the app at its registered launch URL with ``iss`` (the FHIR base) and ``launch`` (an opaque
handle); the app passes ``launch`` to ``/auth/authorize``, which turns it into the patient and
encounter context of the token.

The EHR authenticates with a bearer access token of this server (a staff user's token or a
system token; the role's ``may_create_launch`` in ``roles.json`` decides) and sends JSON or a
form: ``patient`` (required), ``encounter`` (optional, must be that patient's), ``client_id``
(optional). The patient and encounter are read through the normal API as the token's principal,
so an EHR cannot launch on a record it may not see. The answer::

    {"launch": "<opaque>", "expires_in": 300,
     "launch_url": "<client launch_uri>?iss=<fhir base>&launch=<opaque>"}

``launch_url`` is present when ``client_id`` names an app with a registered launch URI: the EHR
opens it in a browser. Only the SHA-256 of the handle is stored; it expires after five minutes
and is consumed when ``/auth/authorize`` issues a code.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dhr.api.dispatch import Services
from dhr.auth import login, picker
from dhr.auth.clients import get_client
from dhr.auth.model import ClientKind, Principal
from dhr.auth.principal import AuthenticationFailed, authenticate
from dhr.auth.roles import UnknownRoleError, role
from dhr.store import auth_user_store as store
from dhr.store.db import unit_of_work

router = APIRouter()
LAUNCH_SECONDS = 300
BODY_LIMIT = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class LaunchError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _oauth_error(exc: LaunchError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers={**_NO_STORE, **(headers or {})})


def _may_launch(principal: Principal) -> bool:
    for code in principal.roles:
        try:
            if role(code).may_create_launch:
                return True
        except UnknownRoleError:
            continue
    return False


async def _fields(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == login.FORM_TYPE:
        try:
            return dict(await login.read_form(request, BODY_LIMIT))
        except login.FormError as exc:
            raise LaunchError(400, "invalid_request", str(exc)) from None
    if media not in ("application/json", "application/fhir+json"):
        raise LaunchError(415, "invalid_request", "send JSON or a urlencoded form")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > BODY_LIMIT:
            raise LaunchError(413, "invalid_request", "the body is too large")
    try:
        value: Any = json.loads(body or b"{}")
    except ValueError:
        raise LaunchError(400, "invalid_request", "the body is not JSON") from None
    if not isinstance(value, dict):
        raise LaunchError(400, "invalid_request", "the body must be a JSON object")
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def create_launch(
    services: Services, principal: Principal, fields: dict[str, str]
) -> dict[str, Any]:
    """Check the context against what the principal may read, store it, return the answer."""
    patient = fields.get("patient", "").strip()
    encounter = fields.get("encounter", "").strip() or None
    client_id = fields.get("client_id", "").strip()
    if patient.startswith("Patient/"):
        patient = patient.removeprefix("Patient/")
    if encounter is not None and encounter.startswith("Encounter/"):
        encounter = encounter.removeprefix("Encounter/")
    if not patient:
        raise LaunchError(400, "invalid_request", "patient is required")
    if picker.read(services, principal, "Patient", patient) is None:
        raise LaunchError(400, "invalid_request", f"Patient/{patient} is not known to this token")
    if encounter is not None:
        found = picker.read(services, principal, "Encounter", encounter)
        if found is None or not picker.encounter_belongs_to(found, patient):
            raise LaunchError(
                400, "invalid_request", f"Encounter/{encounter} is not this patient's"
            )
    launch_uri: str | None = None
    if client_id:
        client = get_client(services.engine, client_id)
        if client is None or not client.active or client.kind == ClientKind.BACKEND:
            raise LaunchError(400, "invalid_request", f"no SMART app {client_id!r} is registered")
        launch_uri = client.launch_uri
    handle = secrets.token_urlsafe(32)
    now = int(time.time())
    with unit_of_work(services.engine, write=True) as conn:
        store.purge_expired_launches(conn, now)
        store.insert_launch(
            conn,
            launch_hash=login.sha256_hex(handle),
            patient=patient,
            encounter=encounter,
            created_by=principal.subject,
            expires_at=now + LAUNCH_SECONDS,
            client_id=client_id or None,
        )
    answer: dict[str, Any] = {"launch": handle, "expires_in": LAUNCH_SECONDS}
    if launch_uri:
        answer["launch_url"] = login.with_query(
            launch_uri, [("iss", services.settings.fhir_base), ("launch", handle)]
        )
    return answer


@router.post("/auth/launch", include_in_schema=False)
async def launch_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services
    auth = getattr(request.app.state, "auth", None)
    if auth is None:
        return _oauth_error(LaunchError(503, "temporarily_unavailable", "no authorisation server"))
    try:
        principal = await run_in_threadpool(
            authenticate, auth, request.headers.get("authorization")
        )
    except AuthenticationFailed as exc:
        error = LaunchError(401, exc.error or "invalid_token", str(exc))
        return _oauth_error(error, {"WWW-Authenticate": exc.www_authenticate})
    try:
        if not _may_launch(principal):
            raise LaunchError(
                403, "insufficient_scope", "only staff or EHR systems may launch apps"
            )
        fields = await _fields(request)
        answer = await run_in_threadpool(create_launch, services, principal, fields)
    except LaunchError as exc:
        return _oauth_error(exc)
    return JSONResponse(answer, 201, headers=_NO_STORE)
