"""Client authentication at the token endpoint.

RFC 6749 section 2.3 (https://www.rfc-editor.org/rfc/rfc6749#section-2.3) and section 5.2 (a
failed authentication is ``invalid_client``, 401, with ``WWW-Authenticate`` when the client used
HTTP Basic); SMART confidential-symmetric clients
(https://hl7.org/fhir/smart-app-launch/client-confidential-symmetric.html) use
``client_secret_basic`` or ``client_secret_post``; public clients name themselves with
``client_id`` only; confidential-asymmetric clients use ``private_key_jwt``
(https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html).

Each request below redeems a code that does not exist: a client that authenticates gets
``invalid_grant`` (400) for the code, one that does not gets ``invalid_client`` (401).
"""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.client_auth import OAuthError, authenticate_client
from dhr.auth.clients import deactivate_client
from dhr.auth.model import ClientKind
from tests.conftest import LiveServer
from tests.dhr.auth import fixtures_clients as fx
from tests.dhr.auth.fixtures_clients import register

token_http = fx.token_http
NO_CODE = {
    "grant_type": "authorization_code",
    "code": "does-not-exist",
    "redirect_uri": fx.REDIRECT,
    "code_verifier": "v" * 43,
}


def _authenticated(resp: httpx.Response) -> None:
    """The client got past authentication: the (made-up) code is what failed."""
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_grant"


def _unauthenticated(resp: httpx.Response, *, basic: bool = False) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.json()["error"] == "invalid_client"
    assert resp.json()["error_description"]
    if basic:
        assert resp.headers["www-authenticate"].startswith("Basic ")


@pytest.fixture
def confidential(engine: Engine) -> tuple[str, str]:
    client, secret = register(engine, ClientKind.CONFIDENTIAL_SYMMETRIC)
    assert secret is not None
    return client.client_id, secret


def test_client_secret_basic(token_http: httpx.Client, confidential: tuple[str, str]) -> None:
    client_id, secret = confidential
    _authenticated(token_http.post("/auth/token", data=NO_CODE, auth=(client_id, secret)))
    wrong = token_http.post("/auth/token", data=NO_CODE, auth=(client_id, secret + "x"))
    _unauthenticated(wrong, basic=True)


def test_basic_credentials_are_form_encoded_first(
    token_http: httpx.Client, confidential: tuple[str, str]
) -> None:
    client_id, secret = confidential
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    header = {"Authorization": "Basic " + base64.b64encode(raw).decode()}
    _authenticated(token_http.post("/auth/token", data=NO_CODE, headers=header))


def test_malformed_basic_header(token_http: httpx.Client) -> None:
    for value in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        resp = token_http.post("/auth/token", data=NO_CODE, headers={"Authorization": value})
        _unauthenticated(resp, basic=True)


def test_client_secret_post(token_http: httpx.Client, confidential: tuple[str, str]) -> None:
    client_id, secret = confidential
    form = {**NO_CODE, "client_id": client_id, "client_secret": secret}
    _authenticated(token_http.post("/auth/token", data=form))
    form["client_secret"] = "wrong"
    _unauthenticated(token_http.post("/auth/token", data=form))


def test_one_method_per_request(token_http: httpx.Client, confidential: tuple[str, str]) -> None:
    client_id, secret = confidential
    form = {**NO_CODE, "client_id": client_id, "client_secret": secret}
    resp = token_http.post("/auth/token", data=form, auth=(client_id, secret))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


def test_basic_and_form_client_id_must_agree(
    engine: Engine, token_http: httpx.Client, confidential: tuple[str, str]
) -> None:
    client_id, secret = confidential
    other = register(engine, ClientKind.PUBLIC)[0].client_id
    form = {**NO_CODE, "client_id": other}
    resp = token_http.post("/auth/token", data=form, auth=(client_id, secret))
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


def test_confidential_client_cannot_skip_authentication(
    token_http: httpx.Client, confidential: tuple[str, str]
) -> None:
    client_id, _secret = confidential
    _unauthenticated(token_http.post("/auth/token", data={**NO_CODE, "client_id": client_id}))


def test_public_client_names_itself(engine: Engine, token_http: httpx.Client) -> None:
    client_id = register(engine, ClientKind.PUBLIC)[0].client_id
    _authenticated(token_http.post("/auth/token", data={**NO_CODE, "client_id": client_id}))


def test_public_client_has_no_secret_to_use(engine: Engine, token_http: httpx.Client) -> None:
    client_id = register(engine, ClientKind.PUBLIC)[0].client_id
    resp = token_http.post("/auth/token", data=NO_CODE, auth=(client_id, "anything"))
    _unauthenticated(resp, basic=True)


def test_asymmetric_client_must_sign(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    key = fx.ec_key()
    client = register(engine, ClientKind.CONFIDENTIAL_ASYMMETRIC, jwks=fx.jwks(key))[0]
    _unauthenticated(
        token_http.post("/auth/token", data={**NO_CODE, "client_id": client.client_id})
    )
    signed = fx.assertion(server, client.client_id, key)
    form = {
        **NO_CODE,
        "client_assertion_type": fx.ASSERTION_TYPE,
        "client_assertion": signed,
    }
    _authenticated(token_http.post("/auth/token", data=form))


def test_symmetric_client_cannot_use_an_assertion(
    server: LiveServer, engine: Engine, token_http: httpx.Client, confidential: tuple[str, str]
) -> None:
    client_id, _secret = confidential
    signed = fx.assertion(server, client_id, fx.rsa_key())
    form = {**NO_CODE, "client_assertion_type": fx.ASSERTION_TYPE, "client_assertion": signed}
    _unauthenticated(token_http.post("/auth/token", data=form))


def test_unknown_and_deactivated_clients(
    engine: Engine, token_http: httpx.Client, confidential: tuple[str, str]
) -> None:
    _unauthenticated(token_http.post("/auth/token", data={**NO_CODE, "client_id": "nobody"}))
    _unauthenticated(token_http.post("/auth/token", data=NO_CODE, auth=("nobody", "x")), basic=True)
    client_id, secret = confidential
    assert deactivate_client(engine, client_id)
    resp = token_http.post("/auth/token", data=NO_CODE, auth=(client_id, secret))
    _unauthenticated(resp, basic=True)


def test_no_client_at_all(token_http: httpx.Client) -> None:
    _unauthenticated(token_http.post("/auth/token", data=NO_CODE))


def test_authenticate_client_without_a_client_when_optional(
    server: LiveServer, engine: Engine
) -> None:
    auth = server.app.state.auth
    assert authenticate_client(auth, {}, None, required=False) is None
    with pytest.raises(OAuthError) as raised:
        authenticate_client(auth, {}, None, required=True)
    assert (raised.value.error, raised.value.status) == ("invalid_client", 401)
    client_id = register(engine, ClientKind.PUBLIC)[0].client_id
    found = authenticate_client(auth, {"client_id": client_id}, None, required=False)
    assert found is not None
    assert found.client_id == client_id
