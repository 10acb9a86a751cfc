"""The client registry: what each SMART client type must register, and how secrets are kept.

SMART App Launch 2.2: public and confidential apps register redirect URIs
(https://hl7.org/fhir/smart-app-launch/app-launch.html#register-app-with-ehr); asymmetric and
Backend Services clients register a JWK Set or its URL, each key with ``kty`` and ``kid``
(https://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html#registering-a-client-communicating-public-keys);
redirect URIs are absolute without a fragment (RFC 6749 section 3.1.2). Client secrets are
shown once and stored only as salted hashes.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select

from dhr.auth.clients import (
    ClientRegistrationError,
    deactivate_client,
    get_client,
    hash_secret,
    list_clients,
    register_client,
    verify_secret,
)
from dhr.auth.model import ClientKind
from dhr.store.auth_models import ClientRow
from tests.dhr.auth.fixtures_clients import REDIRECT, ec_key, jwks, rsa_key


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The test database (the authorisation tables are kept for the whole session, so each
    test uses its own client ids)."""
    return engine


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _stored(engine: Engine, client_id: str) -> Any:
    table = ClientRow.__table__
    with engine.connect() as conn:
        return conn.execute(select(table).where(table.c.client_id == client_id)).one()


def test_confidential_symmetric_gets_a_secret_shown_once(db: Engine) -> None:
    client, secret = register_client(
        db,
        name="GP app",
        kind=ClientKind.CONFIDENTIAL_SYMMETRIC,
        redirect_uris=[REDIRECT],
        scopes="launch/patient patient/*.rs",
    )
    assert secret is not None
    assert len(secret) >= 40
    row = _stored(db, client.client_id)
    assert secret not in row.secret_hash
    assert row.secret_hash.startswith("scrypt$")
    fetched = get_client(db, client.client_id)
    assert fetched is not None
    assert verify_secret(secret, fetched.secret_hash)
    assert not verify_secret(secret[:-1], fetched.secret_hash)
    assert "secret_hash" not in repr(fetched)


def test_secret_hashes_are_salted() -> None:
    first, second = hash_secret("same"), hash_secret("same")
    assert first != second
    assert verify_secret("same", first)
    assert verify_secret("same", second)
    assert not verify_secret("same", None)
    assert not verify_secret("same", "garbage")
    assert not verify_secret("same", "pbkdf2$1$2$3$4$5")


def test_public_client_round_trip(db: Engine) -> None:
    my_app = _unique("my-app")
    client, secret = register_client(
        db,
        client_id=my_app,
        name="  Patient app ",
        kind=ClientKind.PUBLIC,
        redirect_uris=[REDIRECT, "com.example.app:/callback", REDIRECT],
        scopes="openid fhirUser patient/*.rs patient/*.rs",
        origins=["HTTPS://App.Example.org:443", "http://localhost:3000"],
        launch_uri="https://app.example.org/launch",
    )
    assert secret is None
    fetched = get_client(db, my_app)
    assert fetched == client
    assert fetched.name == "Patient app"
    assert fetched.redirect_uris == (REDIRECT, "com.example.app:/callback")
    assert fetched.origins == ("https://app.example.org", "http://localhost:3000")
    assert fetched.scopes == "openid fhirUser patient/*.rs"
    assert fetched.is_public
    assert fetched.active
    assert json.loads(_stored(db, my_app).redirect_uris) == list(fetched.redirect_uris)


def test_backend_with_inline_jwks_and_organisation(db: Engine) -> None:
    keys = jwks(rsa_key(), ec_key())
    client, secret = register_client(
        db,
        name="EMIS feed",
        kind=ClientKind.BACKEND,
        scopes="system/*.cruds",
        organisation="a81001",
        jwks=keys,
    )
    assert secret is None
    fetched = get_client(db, client.client_id)
    assert fetched is not None
    assert fetched.jwks == keys
    assert fetched.organisation == "A81001"
    assert fetched.uses_private_key_jwt


def test_backend_with_jwks_url(db: Engine) -> None:
    client, _ = register_client(
        db,
        name="TPP feed",
        kind=ClientKind.BACKEND,
        scopes="system/Patient.rs",
        jwks_url="https://tpp.example.org/.well-known/jwks.json",
    )
    fetched = get_client(db, client.client_id)
    assert fetched is not None
    assert fetched.jwks is None
    assert fetched.jwks_url == "https://tpp.example.org/.well-known/jwks.json"


def test_list_and_deactivate(db: Engine) -> None:
    a, _ = register_client(
        db, name="a", kind=ClientKind.PUBLIC, redirect_uris=[REDIRECT], scopes="patient/*.rs"
    )
    b, _ = register_client(
        db, name="b", kind=ClientKind.BACKEND, scopes="system/*.rs", jwks=jwks(rsa_key())
    )
    assert {a.client_id, b.client_id} <= {c.client_id for c in list_clients(db)}
    assert deactivate_client(db, a.client_id)
    assert not deactivate_client(db, "nobody")
    fetched = get_client(db, a.client_id)
    assert fetched is not None
    assert not fetched.active
    assert get_client(db, "nobody") is None


def test_client_ids_are_unique(db: Engine) -> None:
    args: dict[str, Any] = {
        "client_id": _unique("dup"),
        "name": "x",
        "kind": ClientKind.PUBLIC,
        "redirect_uris": [REDIRECT],
        "scopes": "patient/*.rs",
    }
    register_client(db, **args)
    with pytest.raises(ClientRegistrationError, match="already registered"):
        register_client(db, **args)


def test_generated_ids_differ(db: Engine) -> None:
    ids = {
        register_client(
            db, name="x", kind=ClientKind.PUBLIC, redirect_uris=[REDIRECT], scopes="patient/*.rs"
        )[0].client_id
        for _ in range(3)
    }
    assert len(ids) == 3


PRIVATE = dict(rsa_key().key.as_dict(private=True))
BAD_REGISTRATIONS: list[tuple[str, dict[str, Any], str]] = [
    ("public-no-redirect", {"kind": ClientKind.PUBLIC, "redirect_uris": []}, "redirect URI"),
    ("relative-redirect", {"redirect_uris": ["/callback"]}, "absolute"),
    ("redirect-fragment", {"redirect_uris": [REDIRECT + "#x"]}, "fragment"),
    ("http-without-host", {"redirect_uris": ["https:///cb"]}, "host"),
    (
        "confidential-no-redirect",
        {"kind": ClientKind.CONFIDENTIAL_SYMMETRIC, "redirect_uris": []},
        "redirect URI",
    ),
    (
        "backend-no-keys",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"},
        "JWK Set",
    ),
    (
        "asymmetric-no-keys",
        {"kind": ClientKind.CONFIDENTIAL_ASYMMETRIC},
        "JWK Set",
    ),
    (
        "both-jwks-and-url",
        {
            "kind": ClientKind.BACKEND,
            "redirect_uris": [],
            "scopes": "system/*.rs",
            "jwks": jwks(rsa_key()),
            "jwks_url": "https://x.example/jwks",
        },
        "exactly one",
    ),
    ("public-with-jwks", {"jwks": jwks(rsa_key())}, "does not use"),
    (
        "backend-redirect",
        {"kind": ClientKind.BACKEND, "scopes": "system/*.rs", "jwks": jwks(rsa_key())},
        "no redirect",
    ),
    (
        "backend-patient-scope",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "patient/*.rs"}
        | {"jwks": jwks(rsa_key())},
        "system/",
    ),
    ("public-system-scope", {"scopes": "system/*.rs"}, "backend"),
    ("malformed-scope", {"scopes": "patient/Observation.xyz"}, "malformed"),
    ("no-scope", {"scopes": "  "}, "scope"),
    ("bad-ods", {"organisation": "not an ods"}, "ODS"),
    ("bad-origin", {"origins": ["https://app.example.org/path"]}, "origin"),
    ("bad-client-id", {"client_id": "has space"}, "client id"),
    ("no-name", {"name": " "}, "name"),
    (
        "jwks-private-key",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks": {"keys": [PRIVATE]}},
        "private",
    ),
    (
        "jwks-no-kid",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks": {"keys": [{k: v for k, v in rsa_key().public_jwk.items() if k != "kid"}]}},
        "kid",
    ),
    (
        "jwks-duplicate-kid",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks": jwks(rsa_key("same"), ec_key("same"))},
        "twice",
    ),
    (
        "jwks-symmetric-key",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks": {"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}},
        "RSA or EC",
    ),
    (
        "jwks-unreadable",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks": {"keys": [{"kty": "RSA", "kid": "k", "n": "!!", "e": "AQAB"}]}},
        "cannot be read",
    ),
    (
        "jwks-url-not-http",
        {"kind": ClientKind.BACKEND, "redirect_uris": [], "scopes": "system/*.rs"}
        | {"jwks_url": "file:///etc/passwd"},
        "http",
    ),
]


@pytest.mark.parametrize(
    ("changes", "message"),
    [(c, m) for _, c, m in BAD_REGISTRATIONS],
    ids=[i for i, _, _ in BAD_REGISTRATIONS],
)
def test_registrations_the_server_refuses(
    db: Engine, changes: dict[str, Any], message: str
) -> None:
    args: dict[str, Any] = {
        "name": "app",
        "kind": ClientKind.PUBLIC,
        "redirect_uris": [REDIRECT],
        "scopes": "launch/patient patient/*.rs",
    }
    args.update(changes)
    before = len(list_clients(db))
    with pytest.raises(ClientRegistrationError, match=message):
        register_client(db, **args)
    assert len(list_clients(db)) == before
