"""The token endpoint and the ``authorization_code`` grant with PKCE.

RFC 6749 sections 3.2, 4.1.3, 5.1 and 5.2 (https://www.rfc-editor.org/rfc/rfc6749), RFC 7636
section 4.6 (S256 verifier) and SMART App Launch 2.2 "Obtain access token"
(https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token): a code is single
use, bound to its client and redirect URI and to the PKCE challenge; the response carries the
launch context, an ``id_token`` for ``openid`` (with ``fhirUser``) and a refresh token for
``offline_access``. Codes are inserted as ``/auth/authorize`` stores them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine

from dhr.auth.model import ClientKind
from dhr.auth.users import deactivate_user
from tests.conftest import LiveServer
from tests.dhr.auth import fixtures_clients as fx
from tests.dhr.auth.fixtures_clients import (
    REDIRECT,
    add_gp,
    insert_code,
    introspect,
    jwt_claims,
    pkce_pair,
    register,
)

token_http = fx.token_http


def _redeem(
    http: httpx.Client, client_id: str, code: str, verifier: str, /, **extra: str | None
) -> httpx.Response:
    form: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": client_id,
    }
    form.update(extra)
    return http.post("/auth/token", data={k: v for k, v in form.items() if v is not None})


def _error(resp: httpx.Response, status: int, error: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["error"] == error, body
    return str(body["error_description"])


@pytest.fixture
def public_app(engine: Engine) -> str:
    client, _ = register(engine, ClientKind.PUBLIC)
    return client.client_id


@pytest.fixture(scope="module")
def gp(engine: Engine) -> str:
    """One GP for the module (password hashing is slow on purpose); the user tables outlive
    each test. Tests that deactivate a user make their own."""
    return add_gp(engine)


def test_code_for_tokens_with_launch_context_and_id_token(
    server: LiveServer, engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    resp = _redeem(token_http, public_app, code, verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 3600
    assert body["scope"] == "openid fhirUser launch/patient patient/*.rs offline_access"
    assert body["patient"] == "pat-1"
    assert body["need_patient_banner"] is True
    assert body["refresh_token"]
    access = jwt_claims(body["access_token"])
    assert access["sub"] == gp
    assert access["client_id"] == public_app
    assert access["patient"] == "pat-1"
    assert access["roles"] == ["R8000"]
    assert access["org"] == "A81001"
    assert access["fhirUser"] == "Practitioner/gp-1"
    id_token = jwt_claims(body["id_token"])
    assert id_token["aud"] == public_app
    assert id_token["iss"] == server.settings.issuer
    assert id_token["sub"] == gp
    assert id_token["fhirUser"] == "Practitioner/gp-1"
    assert id_token["nonce"] == "n-0S6_WzA2Mj"
    seen = introspect(token_http, body["access_token"])
    assert seen["active"] is True
    assert seen["patient"] == "pat-1"


def test_no_openid_no_id_token_no_offline_no_refresh(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(
        engine,
        client_id=public_app,
        username=gp,
        challenge=challenge,
        scope="user/Patient.rs",
        patient=None,
    )
    body = _redeem(token_http, public_app, code, verifier).json()
    assert body["scope"] == "user/Patient.rs"
    for absent in ("id_token", "refresh_token", "patient", "need_patient_banner"):
        assert absent not in body


def test_openid_without_fhiruser_scope_has_no_fhiruser_claim(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(
        engine, client_id=public_app, username=gp, challenge=challenge, scope="openid user/*.rs"
    )
    body = _redeem(token_http, public_app, code, verifier).json()
    assert "fhirUser" not in jwt_claims(body["id_token"])


def test_encounter_context_is_returned(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(
        engine, client_id=public_app, username=gp, challenge=challenge, encounter="enc-7"
    )
    body = _redeem(token_http, public_app, code, verifier).json()
    assert body["encounter"] == "enc-7"
    assert jwt_claims(body["access_token"])["encounter"] == "enc-7"


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"code_verifier": "x" * 43}, 400, "invalid_grant"),  # wrong verifier
        ({"code_verifier": None}, 400, "invalid_request"),  # missing verifier
        ({"code_verifier": "short"}, 400, "invalid_request"),  # not an RFC 7636 verifier
        ({"redirect_uri": REDIRECT + "/other"}, 400, "invalid_grant"),
        ({"redirect_uri": None}, 400, "invalid_request"),
        ({"code": "not-a-code"}, 400, "invalid_grant"),
    ],
    ids=[
        "wrong-verifier",
        "no-verifier",
        "malformed-verifier",
        "wrong-redirect",
        "no-redirect",
        "unknown-code",
    ],
)
def test_bad_redemptions(
    engine: Engine,
    token_http: httpx.Client,
    public_app: str,
    gp: str,
    change: dict[str, str | None],
    status: int,
    error: str,
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    resp = _redeem(token_http, public_app, code, verifier, **change)
    _error(resp, status, error)


def test_plain_pkce_is_not_s256(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, _challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=verifier)
    _error(_redeem(token_http, public_app, code, verifier), 400, "invalid_grant")


def test_a_failed_redemption_burns_the_code(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    _error(_redeem(token_http, public_app, code, "y" * 43), 400, "invalid_grant")
    _error(_redeem(token_http, public_app, code, verifier), 400, "invalid_grant")


def test_a_code_is_single_use_and_reuse_revokes_its_refresh_token(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    first = _redeem(token_http, public_app, code, verifier)
    assert first.status_code == 200, first.text
    refresh = first.json()["refresh_token"]
    assert "already used" in _error(
        _redeem(token_http, public_app, code, verifier), 400, "invalid_grant"
    )
    resp = token_http.post(
        "/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh, "client_id": public_app},
    )
    _error(resp, 400, "invalid_grant")


def test_expired_code(engine: Engine, token_http: httpx.Client, public_app: str, gp: str) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(
        engine, client_id=public_app, username=gp, challenge=challenge, expires_in=-1
    )
    assert "expired" in _error(
        _redeem(token_http, public_app, code, verifier), 400, "invalid_grant"
    )


def test_code_of_another_client(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    other, _ = register(engine, ClientKind.PUBLIC)
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    _error(_redeem(token_http, other.client_id, code, verifier), 400, "invalid_grant")


def test_inactive_user_gets_no_token(
    engine: Engine, token_http: httpx.Client, public_app: str
) -> None:
    leaver = add_gp(engine)
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=leaver, challenge=challenge)
    assert deactivate_user(engine, leaver)
    _error(_redeem(token_http, public_app, code, verifier), 400, "invalid_grant")


def test_confidential_client_redeems_with_its_secret(
    engine: Engine, token_http: httpx.Client, gp: str
) -> None:
    client, secret = register(engine, ClientKind.CONFIDENTIAL_SYMMETRIC)
    assert secret is not None
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=client.client_id, username=gp, challenge=challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    unauthenticated = token_http.post("/auth/token", data={**form, "client_id": client.client_id})
    _error(unauthenticated, 401, "invalid_client")
    resp = token_http.post("/auth/token", data=form, auth=(client.client_id, secret))
    assert resp.status_code == 200, resp.text


def test_backend_clients_cannot_redeem_codes(
    server: LiveServer, engine: Engine, token_http: httpx.Client, gp: str
) -> None:
    key = fx.rsa_key()
    client, _ = register(engine, ClientKind.BACKEND, jwks=fx.jwks(key))
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=client.client_id, username=gp, challenge=challenge)
    form = fx.backend_form(fx.assertion(server, client.client_id, key))
    form.update(grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    form["code_verifier"] = verifier
    _error(token_http.post("/auth/token", data=form), 400, "unauthorized_client")


# --- the endpoint itself ---------------------------------------------------------------------


def test_json_bodies_are_refused(token_http: httpx.Client, public_app: str) -> None:
    resp = token_http.post(
        "/auth/token", json={"grant_type": "authorization_code", "client_id": public_app}
    )
    assert "x-www-form-urlencoded" in _error(resp, 400, "invalid_request")


def test_repeated_parameters_are_refused(token_http: httpx.Client, public_app: str) -> None:
    body = f"grant_type=authorization_code&client_id={public_app}&code=a&code=b"
    resp = token_http.post(
        "/auth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _error(resp, 400, "invalid_request")


def test_grant_type_is_required_and_must_be_known(
    token_http: httpx.Client, public_app: str
) -> None:
    _error(token_http.post("/auth/token", data={"client_id": public_app}), 400, "invalid_request")
    resp = token_http.post("/auth/token", data={"grant_type": "password", "client_id": public_app})
    _error(resp, 400, "unsupported_grant_type")
    resp = token_http.post("/auth/token", data={"grant_type": "implicit", "client_id": public_app})
    _error(resp, 400, "unsupported_grant_type")


def test_oversized_request(token_http: httpx.Client) -> None:
    resp = token_http.post("/auth/token", data={"grant_type": "x" * (70 * 1024)})
    _error(resp, 400, "invalid_request")


def test_get_is_not_allowed(token_http: httpx.Client) -> None:
    assert token_http.get("/auth/token").status_code == 405


def test_token_lifetimes_follow_settings(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str, server: LiveServer
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    body = _redeem(token_http, public_app, code, verifier).json()
    claims = jwt_claims(body["access_token"])
    assert claims["exp"] - claims["iat"] == server.settings.access_token_seconds
    assert abs(claims["exp"] - int(time.time()) - body["expires_in"]) <= 2


def test_a_code_redeemed_twice_at_once_succeeds_once(
    engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(
            pool.map(
                lambda _: _redeem(token_http, public_app, code, verifier).status_code, range(4)
            )
        )
    assert statuses == [200, 400, 400, 400]


def test_tokens_verify_against_the_published_jwks(
    server: LiveServer, engine: Engine, token_http: httpx.Client, public_app: str, gp: str
) -> None:
    verifier, challenge = pkce_pair()
    code = insert_code(engine, client_id=public_app, username=gp, challenge=challenge)
    body = _redeem(token_http, public_app, code, verifier).json()
    published = KeySet.import_key_set(token_http.get("/auth/jwks").json())
    for token in (body["access_token"], body["id_token"]):
        decoded = jwt.decode(token, published, algorithms=["RS256"])
        assert decoded.claims["iss"] == server.settings.issuer
