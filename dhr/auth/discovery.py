"""Discovery: SMART configuration, OpenID Connect provider metadata and the server's JWK Set.

- ``GET /fhir/.well-known/smart-configuration``: SMART App Launch 2.2 section "Metadata"
  (https://hl7.org/fhir/smart-app-launch/conformance.html#metadata), capabilities from
  https://hl7.org/fhir/smart-app-launch/conformance.html#capabilities.
- ``GET /.well-known/openid-configuration``: OpenID Connect Discovery 1.0 section 3
  (https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata); the issuer is
  the server root, so this is ``{issuer}/.well-known/openid-configuration``.
- ``GET /auth/jwks``: the JWK Set (RFC 7517 section 5) that verifies access and ID tokens.

Every document is public and any origin may read it (see :mod:`dhr.auth.cors`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from dhr.auth.service import AuthServer
from dhr.config import Settings

router = APIRouter(include_in_schema=False)

GRANT_TYPES = ["authorization_code", "client_credentials", "refresh_token"]
TOKEN_AUTH_METHODS = ["private_key_jwt", "client_secret_basic", "client_secret_post"]
ASSERTION_ALGS = ["RS384", "ES384"]
CAPABILITIES = [
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
    "context-banner",  # the token response carries need_patient_banner with a patient
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
# Non-resource scopes, then resource scopes in v2 and v1 syntax (any type may replace "*").
SCOPES = [
    "openid",
    "fhirUser",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "patient/*.rs",
    "user/*.cruds",
    "user/*.rs",
    "system/*.cruds",
    "system/*.rs",
    "patient/*.read",
    "patient/*.write",
    "patient/*.*",
    "user/*.read",
    "user/*.write",
    "user/*.*",
    "system/*.read",
    "system/*.write",
    "system/*.*",
]
OIDC_SCOPES = ["openid", "fhirUser", "launch", "launch/patient", "offline_access", "online_access"]
DISCOVERY_CACHE = "public, max-age=300"
JWKS_CACHE = "public, max-age=60"


def endpoints(auth_base: str) -> dict[str, str]:
    """The OAuth endpoint URLs under ``auth_base``: discovery and the CapabilityStatement."""
    base = auth_base.rstrip("/")
    return {
        "authorize": f"{base}/authorize",
        "token": f"{base}/token",
        "introspect": f"{base}/introspect",
        "revoke": f"{base}/revoke",
        "jwks": f"{base}/jwks",
    }


def smart_configuration(settings: Settings) -> dict[str, Any]:
    urls = endpoints(settings.auth_base)
    return {
        "issuer": settings.issuer,
        "jwks_uri": urls["jwks"],
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "capabilities": CAPABILITIES,
        "code_challenge_methods_supported": ["S256"],
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    urls = endpoints(settings.auth_base)
    return {
        "issuer": settings.issuer,
        "authorization_endpoint": urls["authorize"],
        "token_endpoint": urls["token"],
        "jwks_uri": urls["jwks"],
        "introspection_endpoint": urls["introspect"],
        "revocation_endpoint": urls["revoke"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANT_TYPES,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "scopes_supported": OIDC_SCOPES,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "code_challenge_methods_supported": ["S256"],
    }


def _auth(request: Request) -> AuthServer:
    auth: AuthServer = request.app.state.auth
    return auth


@router.get("/fhir/.well-known/smart-configuration")
def smart_configuration_endpoint(request: Request) -> JSONResponse:
    body = smart_configuration(_auth(request).settings)
    return JSONResponse(body, headers={"Cache-Control": DISCOVERY_CACHE})


@router.get("/.well-known/openid-configuration")
def openid_configuration_endpoint(request: Request) -> JSONResponse:
    body = openid_configuration(_auth(request).settings)
    return JSONResponse(body, headers={"Cache-Control": DISCOVERY_CACHE})


@router.get("/auth/jwks")
def jwks_endpoint(request: Request) -> JSONResponse:
    """The JWK Set (``application/jwk-set+json``, RFC 7517 section 8.5)."""
    return JSONResponse(
        _auth(request).keys.public_jwks(),
        media_type="application/jwk-set+json",
        headers={"Cache-Control": JWKS_CACHE},
    )
