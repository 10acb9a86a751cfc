"""Discovery documents: SMART configuration, OpenID Connect metadata, CapabilityStatement security.

SMART App Launch 2.2 "Metadata" (https://hl7.org/fhir/smart-app-launch/conformance.html#metadata)
and the ``oauth-uris`` extension
(https://hl7.org/fhir/smart-app-launch/conformance.html#declaring-support-for-oauth2-endpoints);
OpenID Connect Discovery 1.0 section 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fhirclient.auth import FHIRAuth
from fhirclient.models.capabilitystatement import CapabilityStatement
from sqlalchemy import Engine

from tests.conftest import LiveServer, make_settings

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def test_smart_configuration_has_every_required_and_recommended_field(
    client: httpx.Client, server: LiveServer
) -> None:
    response = client.get(".well-known/smart-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    config = response.json()
    auth = f"{server.settings.issuer}/auth"
    assert config["issuer"] == server.settings.issuer
    assert config["jwks_uri"] == f"{auth}/jwks"
    assert config["authorization_endpoint"] == f"{auth}/authorize"
    assert config["token_endpoint"] == f"{auth}/token"
    assert config["introspection_endpoint"] == f"{auth}/introspect"
    assert config["revocation_endpoint"] == f"{auth}/revoke"
    assert set(config["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
    }
    assert config["code_challenge_methods_supported"] == ["S256"]  # never "plain"
    assert config["response_types_supported"] == ["code"]
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert "client_secret_basic" in config["token_endpoint_auth_methods_supported"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert {"openid", "fhirUser", "launch", "launch/patient", "offline_access"} <= set(
        config["scopes_supported"]
    )
    assert {
        "launch-ehr",
        "launch-standalone",
        "authorize-post",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "sso-openid-connect",
        "context-ehr-patient",
        "context-ehr-encounter",
        "context-standalone-patient",
        "context-banner",
        "permission-offline",
        "permission-online",
        "permission-patient",
        "permission-user",
        "permission-v1",
        "permission-v2",
    } <= set(config["capabilities"])


def test_the_well_known_path_is_not_taken_for_a_fhir_resource(client: httpx.Client) -> None:
    response = client.get(".well-known/smart-configuration")
    assert "resourceType" not in response.json()


def test_openid_configuration_describes_the_id_tokens(
    root: httpx.Client, client: httpx.Client
) -> None:
    response = root.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    oidc = response.json()
    smart = client.get(".well-known/smart-configuration").json()
    assert oidc["issuer"] == smart["issuer"]
    for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert oidc[field] == smart[field]
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["subject_types_supported"] == ["public"]
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "fhirUser"} <= set(oidc["scopes_supported"])
    assert {"fhirUser", "nonce"} <= set(oidc["claims_supported"])


def test_the_capability_statement_declares_smart_and_its_oauth_uris(
    client: httpx.Client,
) -> None:
    statement = client.get("metadata").json()
    security = statement["rest"][0]["security"]
    coding = security["service"][0]["coding"][0]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/restful-security-service"
    assert coding["code"] == "SMART-on-FHIR"
    (oauth,) = [e for e in security["extension"] if e["url"] == OAUTH_URIS]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    smart = client.get(".well-known/smart-configuration").json()
    assert uris == {
        "authorize": smart["authorization_endpoint"],
        "token": smart["token_endpoint"],
        "introspect": smart["introspection_endpoint"],
        "revoke": smart["revocation_endpoint"],
    }
    # The PyPI fhirclient finds the endpoints from the strictly parsed statement.
    parsed = CapabilityStatement(statement, strict=True)
    state: dict[str, str] = {}
    found = FHIRAuth.from_capability_security(parsed.rest[0].security, state)
    assert type(found).__name__ == "FHIROAuth2Auth"
    assert state["authorize_uri"] == smart["authorization_endpoint"]
    assert state["token_uri"] == smart["token_endpoint"]


@pytest.fixture
def open_server(engine: Engine, database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(database_url, tmp_path, auth_enabled=False)
    server = LiveServer(settings, engine)
    server.start()
    yield server
    server.stop()


def test_an_open_server_declares_no_security(open_server: LiveServer) -> None:
    statement = httpx.get(f"{open_server.base}/metadata", timeout=30).json()
    assert "security" not in statement["rest"][0]
