"""SMART Backend Services: ``client_credentials`` with a signed client assertion.

https://hl7.org/fhir/smart-app-launch/backend-services.html and
https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html (RFC 7523 section 3):
the assertion is signed RS384 or ES384 by a key the client registered (inline JWK Set or a JWK
Set URL) and named by ``kid``; ``iss`` = ``sub`` = client_id, ``aud`` = the token URL, ``exp``
no more than five minutes ahead, ``jti`` never reused. Failures are ``invalid_client``; tokens
live at most five minutes and are never cached.
"""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.clients import deactivate_client
from dhr.auth.model import ClientKind
from tests.conftest import LiveServer
from tests.dhr.auth import fixtures_clients as fx
from tests.dhr.auth.fixtures_clients import (
    JwksHost,
    assertion,
    backend_form,
    ec_key,
    introspect,
    jwks,
    jwt_claims,
    register,
    rsa_key,
)

token_http = fx.token_http
jwks_host = fx.jwks_host
RSA = rsa_key("rsa-1", 0)
EC = ec_key("ec-1", 0)


def _backend(engine: Engine, **kwargs: object) -> str:
    kwargs.setdefault("jwks", jwks(RSA, EC))
    client, secret = register(engine, ClientKind.BACKEND, organisation="A81001", **kwargs)
    assert secret is None
    return client.client_id


def _refused(resp: httpx.Response, status: int = 401, error: str = "invalid_client") -> str:
    assert resp.status_code == status, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["error"] == error, body
    assert body["error_description"]
    return str(body["error_description"])


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS384", "ES384"])
def test_backend_service_gets_a_short_lived_system_token(
    server: LiveServer, engine: Engine, token_http: httpx.Client, key: object
) -> None:
    client_id = _backend(engine)
    signed = assertion(server, client_id, key)  # type: ignore[arg-type]
    resp = token_http.post("/auth/token", data=backend_form(signed, "system/Patient.rs"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["pragma"] == "no-cache"
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"
    assert "refresh_token" not in body
    claims = jwt_claims(body["access_token"])
    assert claims["client_id"] == claims["sub"] == client_id
    assert claims["exp"] - claims["iat"] <= 300
    assert claims["org"] == "A81001"
    assert claims["roles"] == ["system"]
    seen = introspect(token_http, body["access_token"])
    assert seen["active"] is True
    assert seen["scope"] == "system/Patient.rs"


def test_scopes_are_narrowed_to_the_registration(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)  # registered for system/Patient.rs system/Observation.rs
    signed = assertion(server, client_id, RSA)
    form = backend_form(signed, "system/*.rs system/Condition.rs patient/*.rs launch")
    resp = token_http.post("/auth/token", data=form)
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"].split() == ["system/Patient.rs", "system/Observation.rs"]


def test_v1_write_scope_is_cut_to_what_the_client_may_do(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    resp = token_http.post(
        "/auth/token", data=backend_form(assertion(server, client_id, RSA), "system/Patient.*")
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "system/Patient.rs"


def test_nothing_grantable_is_invalid_scope(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    form = backend_form(assertion(server, client_id, RSA), "system/Condition.rs patient/*.rs")
    _refused(token_http.post("/auth/token", data=form), 400, "invalid_scope")


def test_scope_is_required(server: LiveServer, engine: Engine, token_http: httpx.Client) -> None:
    client_id = _backend(engine)
    form = backend_form(assertion(server, client_id, RSA))
    del form["scope"]
    _refused(token_http.post("/auth/token", data=form), 400, "invalid_request")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "https://elsewhere.example.org/token"}, "aud"),
        ({"exp": lambda: int(time.time()) - 120}, "expired"),
        ({"exp": lambda: int(time.time()) + 600}, "five minutes"),
        ({"sub": "someone-else"}, "iss and sub"),
        ({"drop": ("exp",)}, "exp"),
        ({"drop": ("jti",)}, "jti"),
        ({"drop": ("aud",)}, "aud"),
        ({"nbf": lambda: int(time.time()) + 120}, "nbf"),
    ],
    ids=["wrong-aud", "expired", "exp-too-far", "iss-not-sub", "no-exp", "no-jti", "no-aud", "nbf"],
)
def test_bad_assertion_claims_are_invalid_client(
    server: LiveServer,
    engine: Engine,
    token_http: httpx.Client,
    overrides: dict[str, object],
    reason: str,
) -> None:
    # Times are taken when the test runs, not when the module is collected: a suite slower
    # than the two minutes of nbf's margin let the "not yet valid" assertion become valid.
    claims = {k: v() if callable(v) else v for k, v in overrides.items()}
    client_id = _backend(engine)
    signed = assertion(server, client_id, RSA, **claims)  # type: ignore[arg-type]
    description = _refused(token_http.post("/auth/token", data=backend_form(signed)))
    assert reason in description


def test_a_jti_is_accepted_once(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    signed = assertion(server, client_id, EC, jti="once-only")
    assert token_http.post("/auth/token", data=backend_form(signed)).status_code == 200
    assert "already used" in _refused(token_http.post("/auth/token", data=backend_form(signed)))
    again = assertion(server, client_id, EC, jti="once-only")  # a new JWT, the same jti
    assert "already used" in _refused(token_http.post("/auth/token", data=backend_form(again)))


def test_jti_is_remembered_per_client(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    first, second = _backend(engine), _backend(engine)
    for client_id in (first, second):
        signed = assertion(server, client_id, RSA, jti="shared-nonce")
        assert token_http.post("/auth/token", data=backend_form(signed)).status_code == 200


def test_unknown_kid(server: LiveServer, engine: Engine, token_http: httpx.Client) -> None:
    client_id = _backend(engine)
    signed = assertion(server, client_id, RSA.with_kid("not-registered"))
    assert "kid" in _refused(token_http.post("/auth/token", data=backend_form(signed)))


def test_missing_kid(server: LiveServer, engine: Engine, token_http: httpx.Client) -> None:
    client_id = _backend(engine)
    signed = assertion(server, client_id, RSA, header={"kid": None})
    assert "kid" in _refused(token_http.post("/auth/token", data=backend_form(signed)))


@pytest.mark.parametrize("alg", ["RS256", "PS384", "RS512"])
def test_only_rs384_and_es384_are_accepted(
    server: LiveServer, engine: Engine, token_http: httpx.Client, alg: str
) -> None:
    client_id = _backend(engine)
    signed = assertion(server, client_id, RSA, alg=alg)
    assert "alg" in _refused(token_http.post("/auth/token", data=backend_form(signed)))


def test_es256_with_a_p256_key_is_refused(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    p256 = ec_key("ec-256", 0, curve="P-256")
    client_id = _backend(engine, jwks=jwks(p256))
    signed = assertion(server, client_id, p256, alg="ES256")
    _refused(token_http.post("/auth/token", data=backend_form(signed)))


def test_signature_by_another_key_with_a_registered_kid(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    impostor = rsa_key("rsa-1", 1)  # same kid as the registered key, different key pair
    signed = assertion(server, client_id, impostor)
    assert "signature" in _refused(token_http.post("/auth/token", data=backend_form(signed)))


def test_unknown_and_deactivated_clients(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    signed = assertion(server, "nobody", RSA)
    _refused(token_http.post("/auth/token", data=backend_form(signed)))
    client_id = _backend(engine)
    assert deactivate_client(engine, client_id)
    signed = assertion(server, client_id, RSA)
    _refused(token_http.post("/auth/token", data=backend_form(signed)))


def test_client_id_parameter_must_match_the_assertion(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id, other = _backend(engine), _backend(engine)
    form = backend_form(assertion(server, client_id, RSA), client_id=other)
    _refused(token_http.post("/auth/token", data=form))


def test_wrong_assertion_type_is_a_bad_request(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    form = backend_form(assertion(server, client_id, RSA))
    form["client_assertion_type"] = "not_an_assertion_type"
    _refused(token_http.post("/auth/token", data=form), 400, "invalid_request")
    del form["client_assertion_type"]
    _refused(token_http.post("/auth/token", data=form), 400, "invalid_request")


def test_garbage_assertion(server: LiveServer, engine: Engine, token_http: httpx.Client) -> None:
    _backend(engine)
    for junk in ("not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.e30."):
        _refused(token_http.post("/auth/token", data=backend_form(junk)))


def test_alg_none_is_refused(server: LiveServer, engine: Engine, token_http: httpx.Client) -> None:
    client_id = _backend(engine)
    good = assertion(server, client_id, RSA)
    _header, payload, _sig = good.split(".")
    none_header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "kid": "rsa-1", "typ": "JWT"}).encode()
    ).rstrip(b"=")
    unsigned = f"{none_header.decode()}.{payload}."
    _refused(token_http.post("/auth/token", data=backend_form(unsigned)))


def test_unsupported_grant_type(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    form = backend_form(assertion(server, client_id, RSA), grant_type="not_a_grant_type")
    _refused(token_http.post("/auth/token", data=form), 400, "unsupported_grant_type")


def test_only_backend_clients_use_client_credentials(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client, secret = register(engine, ClientKind.CONFIDENTIAL_SYMMETRIC)
    assert secret is not None
    resp = token_http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "user/*.rs"},
        auth=(client.client_id, secret),
    )
    _refused(resp, 400, "unauthorized_client")


def test_backend_clients_cannot_use_a_secret(
    server: LiveServer, engine: Engine, token_http: httpx.Client
) -> None:
    client_id = _backend(engine)
    resp = token_http.post(
        "/auth/token",
        data={"grant_type": "client_credentials", "scope": "system/Patient.rs"},
        auth=(client_id, "guess"),
    )
    _refused(resp, 401)
    assert resp.headers["www-authenticate"].startswith("Basic")


# --- JWK Set URL -----------------------------------------------------------------------------


def test_jwks_url_and_key_rotation(
    server: LiveServer, engine: Engine, token_http: httpx.Client, jwks_host: JwksHost
) -> None:
    jwks_host.jwks = jwks(EC)
    client_id = _backend(engine, jwks=None, jwks_url=jwks_host.url)
    resp = token_http.post("/auth/token", data=backend_form(assertion(server, client_id, EC)))
    assert resp.status_code == 200, resp.text
    resp = token_http.post("/auth/token", data=backend_form(assertion(server, client_id, EC)))
    assert resp.status_code == 200, resp.text
    assert jwks_host.hits == 1  # cached
    # The client rotates: a new key appears at its URL and the old one goes.
    new = ec_key("ec-2", 1)
    jwks_host.jwks = jwks(new)
    resp = token_http.post("/auth/token", data=backend_form(assertion(server, client_id, new)))
    assert resp.status_code == 200, resp.text  # unknown kid -> fetched again
    assert jwks_host.hits == 2
    stale = assertion(server, client_id, EC)
    _refused(token_http.post("/auth/token", data=backend_form(stale)))
    assert jwks_host.hits == 3  # an unknown kid is looked for once more, no further


def test_jwks_url_honours_no_store(
    server: LiveServer, engine: Engine, token_http: httpx.Client, jwks_host: JwksHost
) -> None:
    jwks_host.jwks, jwks_host.cache_control = jwks(RSA), "no-store"
    client_id = _backend(engine, jwks=None, jwks_url=jwks_host.url)
    for _ in range(2):
        resp = token_http.post("/auth/token", data=backend_form(assertion(server, client_id, RSA)))
        assert resp.status_code == 200, resp.text
    assert jwks_host.hits == 2
    # Keys fetched just now are not fetched again for an unknown kid.
    signed = assertion(server, client_id, RSA.with_kid("unknown"))
    _refused(token_http.post("/auth/token", data=backend_form(signed)))
    assert jwks_host.hits == 3


def test_jku_must_be_the_registered_url(
    server: LiveServer, engine: Engine, token_http: httpx.Client, jwks_host: JwksHost
) -> None:
    jwks_host.jwks = jwks(RSA)
    client_id = _backend(engine, jwks=None, jwks_url=jwks_host.url)
    good = assertion(server, client_id, RSA, header={"jku": jwks_host.url})
    assert token_http.post("/auth/token", data=backend_form(good)).status_code == 200
    bad = assertion(server, client_id, RSA, header={"jku": "https://attacker.example/jwks"})
    assert "jku" in _refused(token_http.post("/auth/token", data=backend_form(bad)))


def test_unreachable_jwks_url(
    server: LiveServer, engine: Engine, token_http: httpx.Client, jwks_host: JwksHost
) -> None:
    jwks_host.jwks, jwks_host.status = jwks(RSA), 500
    client_id = _backend(engine, jwks=None, jwks_url=jwks_host.url)
    signed = assertion(server, client_id, RSA)
    assert "fetched" in _refused(token_http.post("/auth/token", data=backend_form(signed)))
