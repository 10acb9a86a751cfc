"""The server's signing keys: RFC 7517 JWK Set, RFC 7638 key ids, rotation with a grace period.

https://www.rfc-editor.org/rfc/rfc7517, https://www.rfc-editor.org/rfc/rfc7638,
SMART App Launch 2.2 ``jwks_uri`` (https://hl7.org/fhir/smart-app-launch/conformance.html).
"""

from __future__ import annotations

import base64
import hashlib
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine, delete, select

from dhr.auth.keys import KeyRing
from dhr.auth.principal import authenticate
from dhr.auth.service import AuthServer
from dhr.store.auth_models import SigningKeyRow
from dhr.store.db import unit_of_work
from tests.dhr.auth.conftest import Clock

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


def rfc7638_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 section 3: SHA-256 of the required members, lexically ordered, no whitespace."""
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def kid_of(token: str) -> str:
    header = token.split(".", maxsplit=1)[0]
    kid: str = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    return kid


def test_the_first_key_is_rsa_2048_named_by_its_rfc7638_thumbprint(
    auth: AuthServer, engine: Engine
) -> None:
    key = auth.keys.current()
    private = key.key.private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    assert key.kid == rfc7638_thumbprint(key.public_jwk())
    with unit_of_work(engine, write=False) as conn:
        stored = conn.execute(select(SigningKeyRow.kid, SigningKeyRow.retired_at)).all()
    assert (key.kid, None) in [tuple(r) for r in stored]


def test_another_process_signs_with_the_same_key(auth: AuthServer, engine: Engine) -> None:
    kid = auth.keys.current().kid
    assert KeyRing(engine).current().kid == kid


def test_the_jwks_endpoint_publishes_public_keys_only(root: httpx.Client, auth: AuthServer) -> None:
    response = root.get("/auth/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    keys = response.json()["keys"]
    assert auth.keys.current().kid in {k["kid"] for k in keys}
    for key in keys:
        assert key["kty"] == "RSA"
        assert key["alg"] == "RS256"
        assert key["use"] == "sig"
        assert {"n", "e", "kid"} <= set(key)
        assert not PRIVATE_MEMBERS & set(key)


def test_the_published_jwks_verifies_an_access_token_the_server_issued(
    root: httpx.Client, auth: AuthServer
) -> None:
    token, _ = auth.issue_access_token(
        subject="alice", client_id="app", scope="patient/*.rs", lifetime=300
    )
    keys = KeySet.import_key_set(root.get("/auth/jwks").json())
    claims = jwt.decode(token, keys, algorithms=["RS256"]).claims
    assert claims["sub"] == "alice"


def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    root: httpx.Client, auth: AuthServer
) -> None:
    before, _ = auth.issue_access_token(subject="a", client_id="app", scope="", lifetime=300)
    old_kid = kid_of(before)
    new_kid = auth.keys.rotate().kid
    after, _ = auth.issue_access_token(subject="a", client_id="app", scope="", lifetime=300)

    assert new_kid != old_kid
    assert kid_of(after) == new_kid
    published = [k["kid"] for k in root.get("/auth/jwks").json()["keys"]]
    assert published[0] == new_kid  # newest first
    assert old_kid in published
    assert authenticate(auth, f"Bearer {before}").subject == "a"
    assert authenticate(auth, f"Bearer {after}").subject == "a"


def test_a_retired_key_drops_out_after_its_grace_period(
    isolated_engine: Engine, clock: Clock
) -> None:
    ring = KeyRing(isolated_engine, grace_seconds=60, clock=clock)
    old = ring.current()
    new = ring.rotate()
    assert ring.verification_key(old.kid) is not None
    assert {old.kid, new.kid} <= set(ring.kids())

    clock.advance(61)
    assert ring.verification_key(old.kid) is None
    assert old.kid not in ring.kids()
    assert ring.verification_key(new.kid) is not None


def test_a_key_made_by_another_process_verifies_at_once(auth: AuthServer, engine: Engine) -> None:
    auth.keys.current()
    other = AuthServer(auth.settings, engine)
    other.keys.rotate()
    token, _ = other.issue_access_token(subject="b", client_id="app", scope="", lifetime=300)
    assert auth.verify_access_token(token) is not None


def test_an_unknown_kid_is_not_a_verification_key(auth: AuthServer) -> None:
    assert auth.keys.verification_key("no-such-kid") is None


def test_keys_survive_their_table_being_emptied(isolated_engine: Engine) -> None:
    ring = KeyRing(isolated_engine, refresh_seconds=0)
    kid = ring.current().kid
    with unit_of_work(isolated_engine, write=True) as conn:
        conn.execute(delete(SigningKeyRow))
    assert ring.current().kid == kid
    assert KeyRing(isolated_engine).current().kid == kid  # written back for other processes


@pytest.mark.parametrize("grace", [0, 30])
def test_rotation_forgets_keys_retired_longer_ago_than_the_grace_period(
    isolated_engine: Engine, clock: Clock, grace: int
) -> None:
    ring = KeyRing(isolated_engine, grace_seconds=grace, clock=clock)
    first = ring.current()
    second = ring.rotate()  # retires the first key now
    clock.advance(grace + 1)
    ring.rotate()  # retires the second key; the first one's grace is over
    with unit_of_work(isolated_engine, write=False) as conn:
        kids = set(conn.execute(select(SigningKeyRow.kid)).scalars())
    assert first.kid not in kids
    assert second.kid in kids
