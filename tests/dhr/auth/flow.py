"""Helpers for driving SMART App Launch 2.2 flows over real HTTP in tests.

https://hl7.org/fhir/smart-app-launch/app-launch.html: register an app, add users, sign in,
send the authorisation request, read what the server stored. Patients are stored through the
repository (test set-up only), so these helpers do not depend on how the FHIR API is protected.
The authorisation tables are not emptied between tests, so apps and users get unique names.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import Engine, RowMapping, select

from dhr.auth import users
from dhr.auth.clients import Client, register_client
from dhr.auth.model import ClientKind
from dhr.store.auth_models import AuthorizationCodeRow
from dhr.store.db import unit_of_work
from dhr.store.repository import ResourceRepository
from tests.conftest import LiveServer

REDIRECT = "http://127.0.0.1:1/callback"
PASSWORD = "correct horse battery staple"
APP_SCOPES = (
    "openid fhirUser profile launch launch/patient launch/encounter offline_access "
    "patient/*.cruds user/*.cruds"
)
ODS = "A81001"


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 section 4)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def register_app(
    engine: Engine,
    *,
    scopes: str = APP_SCOPES,
    redirect_uris: tuple[str, ...] = (REDIRECT,),
    launch_uri: str | None = None,
    origins: tuple[str, ...] = (),
) -> Client:
    """A public SMART app with a unique client id."""
    client, _secret = register_client(
        engine,
        client_id=unique("app"),
        name="Test App",
        kind=ClientKind.PUBLIC,
        redirect_uris=redirect_uris,
        scopes=scopes,
        launch_uri=launch_uri,
        origins=origins,
    )
    return client


def add_patient_user(engine: Engine, patient_id: str, name: str = "jane") -> users.User:
    """A patient user (unique username starting with ``name``) bound to ``Patient/<id>``."""
    return users.add_user(
        engine,
        username=unique(name),
        password=PASSWORD,
        role="patient",
        fhir_user=f"Patient/{patient_id}",
        display=name.title(),
    )


def add_staff_user(engine: Engine, role: str = "R8000", name: str = "house") -> users.User:
    """A staff user (unique username) bound to a Practitioner of the same name, at ``ODS``."""
    username = unique(name)
    return users.add_user(
        engine,
        username=username,
        password=PASSWORD,
        role=role,
        fhir_user=f"Practitioner/{username}",
        organisation=ODS,
        display=f"Dr {name.title()}",
    )


def store_resource(engine: Engine, resource: dict[str, Any]) -> str:
    """Store a resource directly (test set-up) and return its id."""
    res_id = str(resource.get("id") or secrets.token_hex(8))
    body = {**resource, "id": res_id}
    with unit_of_work(engine, write=True) as conn:
        ResourceRepository(conn).create(body["resourceType"], res_id, body)
    return res_id


def store_patient(engine: Engine, family: str, given: str, nhs_number: str | None = None) -> str:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1970-01-01",
    }
    if nhs_number:
        body["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}]
    return store_resource(engine, body)


def auth_params(
    server: LiveServer, client: Client, challenge: str, **overrides: str | None
) -> dict[str, str]:
    """A complete, valid authorisation request; ``None`` in ``overrides`` drops a parameter."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid fhirUser launch/patient patient/*.rs",
        "state": secrets.token_urlsafe(12),
        "aud": server.base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def browser(server: LiveServer) -> httpx.Client:
    """A cookie-keeping client at the server root that does not follow redirects."""
    return httpx.Client(base_url=server.settings.issuer, follow_redirects=False, timeout=30)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert match, f"no hidden field {name} in the page"
    return match.group(1).replace("&amp;", "&").replace("&quot;", '"')


def sign_in(http: httpx.Client, username: str, password: str, next_url: str = "") -> httpx.Response:
    """Open the sign-in form (which sets its anti-forgery cookie) and submit it."""
    form = http.get("/auth/login", params={"next": next_url} if next_url else None)
    assert form.status_code == 200, form.text
    data = {
        "username": username,
        "password": password,
        "next": hidden(form.text, "next"),
        "csrf": hidden(form.text, "csrf"),
    }
    return http.post("/auth/login", data=data)


def query_of(response: httpx.Response) -> dict[str, str]:
    """The query parameters of a redirect's Location (one value each)."""
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def redirected_to_app(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), response.text
    assert response.headers["location"].startswith(REDIRECT + "?"), response.headers["location"]
    return query_of(response)


def code_row(engine: Engine, code: str) -> RowMapping:
    code_hash = hashlib.sha256(code.encode()).hexdigest()
    with unit_of_work(engine, write=False) as conn:
        row = (
            conn.execute(
                select(AuthorizationCodeRow.__table__).where(
                    AuthorizationCodeRow.code_hash == code_hash
                )
            )
            .mappings()
            .first()
        )
    assert row is not None, "the code is not stored"
    return row


def authorize_signed_in(
    http: httpx.Client, server: LiveServer, params: dict[str, str], username: str
) -> httpx.Response:
    """Send the request, sign in when asked, and return the answer after sign-in."""
    first = http.get("/auth/authorize", params=params)
    if first.status_code == 303 and "/auth/login" in first.headers["location"]:
        next_url = query_of(first)["next"]
        signed = sign_in(http, username, PASSWORD, next_url)
        assert signed.status_code == 303, signed.text
        return http.get(signed.headers["location"])
    return first
