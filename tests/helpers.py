"""Small helpers the tests share: resource factories, OperationOutcome checks and bearer
tokens (server-minted, or obtained as a SMART Backend Services client)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Generator
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import Engine

from dhr.auth.clients import register_client
from dhr.auth.model import ClientKind
from dhr.auth.service import AuthServer
from dhr.config import Settings

FHIR_JSON = "application/fhir+json"


def patient(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Smith", "given": ["Jane"]}],
        "gender": "female",
        "birthDate": "1980-04-02",
    }
    body.update(extra)
    return body


def observation(subject: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": 72,
            "unit": "beats/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    body.update(extra)
    return body


def refusal_consent(patient_id: str) -> dict[str, Any]:
    """An active privacy Consent of ``patient_id`` refusing all sharing (opt-out, deny)
    (https://hl7.org/fhir/R4/consent.html)."""
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}
            ]
        },
        "provision": {"type": "deny"},
    }


def created_id(response: httpx.Response) -> str:
    """The logical id from a create's Location header."""
    location = response.headers["location"]
    return location.split("/_history/")[0].rsplit("/", 1)[1]


def assert_outcome(
    response: httpx.Response, status: int, *, code: str | None = None, expression: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with an OperationOutcome (issue code / expression if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    if code is not None:
        assert any(i["code"] == code for i in body["issue"]), body
    if expression is not None:
        assert any(expression in i.get("expression", []) for i in body["issue"]), body
    return body


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header of a bearer token (RFC 6750)."""
    return {"Authorization": f"Bearer {token}"}


# The organisation (an ODS-shaped code) the test clients and users act for: data they write is
# attributed to it as originating controller, so they see it again for direct care (consent's
# originator rule); tests of the consent policy choose other organisations explicitly.
TEST_ORG = "T9Z01"


class TokenIssuer:
    """Mints real access tokens with the live server's own :class:`AuthServer` (its signing key,
    issuer and audience), as its token endpoint would after a SMART launch."""

    def __init__(self, auth: AuthServer) -> None:
        self.auth = auth

    def __call__(
        self,
        scope: str,
        *,
        patient: str | None = None,
        lifetime: int = 300,
        subject: str = "test-user",
        client_id: str = "test-app",
        fhir_user: str | None = None,
        roles: tuple[str, ...] = (),
        organisation: str | None = TEST_ORG,
    ) -> str:
        token, _ = self.auth.issue_access_token(
            subject=subject,
            client_id=client_id,
            scope=scope,
            lifetime=lifetime,
            patient=patient,
            fhir_user=fhir_user,
            roles=roles,
            organisation=organisation,
        )
        return token


class BackendClient(httpx.Auth):
    """A SMART Backend Services client (https://hl7.org/fhir/smart-app-launch/backend-services.html)
    registered with an RS384 key; as an ``httpx.Auth`` it puts a bearer token on each request,
    fetched with ``client_credentials`` and a signed assertion, renewed under a minute left."""

    RENEW_SECONDS = 60

    def __init__(
        self, engine: Engine, settings: Settings, scope: str, organisation: str | None = TEST_ORG
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.scope = scope
        self.organisation = organisation
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self.key = RSAKey.import_key(pem, {"kid": "test-backend-1"})
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self.client_id = self._register()

    def _register(self) -> str:
        client, _ = register_client(
            self.engine,
            client_id=f"test-backend-{uuid.uuid4().hex[:12]}",
            name="Test GP system",
            kind=ClientKind.BACKEND,
            scopes=self.scope,
            organisation=self.organisation,
            jwks={"keys": [dict(self.key.as_dict(private=False))]},
        )
        return client.client_id

    @property
    def token_url(self) -> str:
        return f"{self.settings.auth_base}/token"

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "exp": now + 240,
            "jti": uuid.uuid4().hex,
        }
        header = {"alg": "RS384", "kid": "test-backend-1", "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["RS384"])

    def _request_token(self) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.assertion(),
        }
        return httpx.post(self.token_url, data=form, timeout=30)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._expires - time.time() < self.RENEW_SECONDS:
                response = self._request_token()
                if response.status_code == 401:  # the client was removed: register again
                    self.client_id = self._register()
                    response = self._request_token()
                assert response.status_code == 200, response.text
                body = response.json()
                self._token = str(body["access_token"])
                self._expires = time.time() + int(body["expires_in"])
            return self._token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        yield request
