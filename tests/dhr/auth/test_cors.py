"""CORS (https://fetch.spec.whatwg.org/#http-cors-protocol) for browser SMART apps.

Discovery, ``/fhir/metadata`` and the JWK Set answer any origin; the FHIR API and the token
endpoint answer only origins registered on an active client, with proper preflights.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.clients import deactivate_client
from dhr.auth.cors import OriginRegistry, normalise_origin
from tests.conftest import LiveServer
from tests.dhr.auth.conftest import register


@pytest.fixture
def origin(server: LiveServer, engine: Engine) -> str:
    """An origin registered (with a trailing port) on a fresh active client."""
    value = f"https://app-{uuid.uuid4().hex[:8]}.example.org:8443"
    register(engine, origins=(value,))
    origins: OriginRegistry = server.app.state.cors_origins
    origins.invalidate()
    return value


def preflight(
    http: httpx.Client, path: str, origin: str, method: str = "GET", headers: str = ""
) -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        request_headers["Access-Control-Request-Headers"] = headers
    return http.options(path, headers=request_headers)


def allowed_headers(response: httpx.Response) -> set[str]:
    return {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}


@pytest.mark.parametrize(
    ("path", "method"),
    [("/fhir/Patient", "GET"), ("/fhir/Patient/123", "PUT"), ("/fhir", "POST")],
)
def test_a_registered_origin_passes_the_fhir_preflight(
    root: httpx.Client, origin: str, path: str, method: str
) -> None:
    response = preflight(root, path, origin, method, "authorization, content-type, if-match")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert "Origin" in response.headers["vary"]
    assert method in response.headers["access-control-allow-methods"]
    assert {"authorization", "content-type", "if-match", "prefer"} <= allowed_headers(response)


def test_a_registered_origin_passes_the_token_endpoint_preflight(
    root: httpx.Client, origin: str
) -> None:
    response = preflight(root, "/auth/token", origin, "POST", "content-type")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == origin
    assert "POST" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize("path", ["/fhir/Patient", "/auth/token"])
def test_an_unregistered_origin_fails_the_preflight(
    root: httpx.Client, origin: str, path: str
) -> None:
    response = preflight(root, path, "https://evil.example.com", "POST")
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert "Origin" in response.headers["vary"]


def test_an_actual_request_echoes_only_a_registered_origin(root: httpx.Client, origin: str) -> None:
    ok = root.get("/fhir/Patient", headers={"Origin": origin})
    assert ok.headers["access-control-allow-origin"] == origin
    assert "location" in ok.headers["access-control-expose-headers"].lower()
    refused = root.get("/fhir/Patient", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in refused.headers
    assert "Origin" in refused.headers["vary"]


def test_a_deactivated_clients_origin_is_refused(
    root: httpx.Client, server: LiveServer, engine: Engine
) -> None:
    value = f"https://gone-{uuid.uuid4().hex[:8]}.example.org"
    client = register(engine, origins=(value,))
    server.app.state.cors_origins.invalidate()
    assert preflight(root, "/fhir/Patient", value).status_code == 204
    deactivate_client(engine, client.client_id)
    server.app.state.cors_origins.invalidate()
    assert preflight(root, "/fhir/Patient", value).status_code == 403


def test_a_newly_registered_origin_works_within_a_second(
    root: httpx.Client, engine: Engine
) -> None:
    value = f"https://new-{uuid.uuid4().hex[:8]}.example.org"
    assert preflight(root, "/fhir/Patient", value).status_code == 403  # loads the cache
    register(engine, origins=(value,))
    time.sleep(1.1)
    assert preflight(root, "/fhir/Patient", value).status_code == 204


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/.well-known/smart-configuration",
        "/.well-known/openid-configuration",
        "/fhir/metadata",
        "/auth/jwks",
    ],
)
def test_discovery_and_metadata_answer_any_origin(root: httpx.Client, path: str) -> None:
    anyone = "https://anyone.example.net"
    response = root.get(path, headers={"Origin": anyone})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    check = preflight(root, path, anyone, "GET", "accept")
    assert check.status_code == 204
    assert check.headers["access-control-allow-origin"] == "*"


def test_pages_that_are_not_apis_get_no_cors_headers(root: httpx.Client, origin: str) -> None:
    response = root.get("/", headers={"Origin": origin})
    assert "access-control-allow-origin" not in response.headers


def test_requests_without_an_origin_get_no_cors_headers(root: httpx.Client) -> None:
    response = root.get("/fhir/metadata")
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("https://App.Example.org", "https://app.example.org"),
        ("https://app.example.org:443", "https://app.example.org"),
        ("http://localhost:3000/", "http://localhost:3000"),
        ("null", None),
        ("file://", None),
        ("https://app.example.org/path", None),
    ],
)
def test_origins_are_compared_in_their_serialised_form(raw: str, normal: str | None) -> None:
    assert normalise_origin(raw) == normal
