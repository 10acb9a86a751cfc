"""The external provider as DHR's sign-in sees it: discovery, ID token checks, claim mapping.

OpenID Connect Discovery 1.0 section 4.3 (the document names the issuer it is fetched for),
Core 1.0 section 3.1.3.7 (ID token validation: only the algorithms the provider advertises,
never ``none`` or an HMAC keyed with the client secret) against :mod:`tests.dhr.auth.fake_idp`
over real HTTP; CIS2 national RBAC roles and NHS numbers as DHR reads them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import OctKey

from dhr.auth import federation_provider as fp
from dhr.config import IdentityProviderConfig
from tests.dhr.auth import fake_idp

NONCE = "the-nonce"
NHS_NUMBER = "9434765919"


@pytest.fixture(scope="module")
def idp() -> Iterator[fake_idp.FakeIdP]:
    server = fake_idp.FakeIdP()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def provider(idp: fake_idp.FakeIdP) -> Iterator[fp.Provider]:
    idp.reset()
    config = IdentityProviderConfig.model_validate(
        {
            "name": "cis2",
            "display_name": "CIS2",
            "issuer": idp.issuer,
            "client_id": "dhr",
            "client_secret": "secret",
            "kind": "staff",
        }
    )
    with httpx.Client(timeout=5) as http:
        yield fp.Provider(config, http, time.time)


def claims(idp: fake_idp.FakeIdP, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": idp.issuer, "sub": "u1", "aud": "dhr", "exp": now + 60, "iat": now}
    return {**base, "nonce": NONCE, **changes}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_good_id_token_verifies(idp: fake_idp.FakeIdP, provider: fp.Provider) -> None:
    token = idp.sign(claims(idp))
    assert provider.verify_id_token(token, fp.sha256_hex(NONCE))["sub"] == "u1"


def test_unsigned_and_hmac_id_tokens_are_refused(
    idp: fake_idp.FakeIdP, provider: fp.Provider
) -> None:
    unsigned = f"{b64({'alg': 'none'})}.{b64(claims(idp))}."
    hmac_key = OctKey.import_key(b"secret" * 6)  # the client secret as a key
    hmac = jws.serialize_compact(
        {"alg": "HS256", "kid": idp.key.kid}, json.dumps(claims(idp)), hmac_key, ["HS256"]
    )
    for token in (unsigned, hmac, "not.a.jwt", "x" * 20_000):
        with pytest.raises(fp.FederationError) as caught:
            provider.verify_id_token(token, fp.sha256_hex(NONCE))
        assert caught.value.status == 400


def test_only_advertised_algorithms_are_accepted(
    idp: fake_idp.FakeIdP, provider: fp.Provider
) -> None:
    idp.discovery_changes = {"id_token_signing_alg_values_supported": ["RS512", "HS256"]}
    with pytest.raises(fp.FederationError, match="not one of RS512"):
        provider.verify_id_token(idp.sign(claims(idp)), fp.sha256_hex(NONCE))


def test_a_discovery_document_for_another_issuer_is_not_used(
    idp: fake_idp.FakeIdP, provider: fp.Provider
) -> None:
    idp.discovery_changes = {"issuer": "https://evil.example"}
    with pytest.raises(fp.FederationError) as caught:
        provider.metadata()
    assert caught.value.status == 502


def test_keys_are_cached_and_refetched_for_an_unknown_kid(
    idp: fake_idp.FakeIdP, provider: fp.Provider
) -> None:
    first = idp.sign(claims(idp))
    assert provider.verify_id_token(first, fp.sha256_hex(NONCE))
    idp.rotate_key()
    second = idp.sign(claims(idp))
    assert provider.verify_id_token(second, fp.sha256_hex(NONCE))
    with pytest.raises(fp.FederationError, match="not signed by a key"):
        provider.verify_id_token(first, fp.sha256_hex(NONCE))  # the old key has left the set


def test_claims_map_to_dhr_roles_and_usernames() -> None:
    roles = {
        "nhsid_nrbac_roles": [
            {"person_roleid": "1", "role_code": "S1:G1:R9999", "org_code": "X1"},
            {"person_roleid": "2", "role_code": "S0080:G0450:R8000", "org_code": "a81001"},
            {"person_roleid": "3", "role_code": "S1:G1:patient", "org_code": "A81001"},
        ]
    }
    assert fp.staff_role(roles, None) == ("R8000", "A81001")
    assert fp.staff_role({**roles, "selected_roleid": "3"}, None) == (None, None)
    assert fp.staff_role({**roles, "selected_roleid": "3"}, "R8003") == ("R8003", "A81001")
    assert fp.staff_role({}, None) == (None, None)
    assert fp.username_for("cis2", "555") == "cis2:555"
    assert fp.username_for("cis2", "x" * 200).startswith("cis2:sha256:")
    assert fp.valid_nhs_number(NHS_NUMBER)
    assert not fp.valid_nhs_number("9434765918")
    assert not fp.valid_nhs_number("943476591")
    assert not fp.valid_nhs_number("٩٤٣٤٧٦٥٩١٩")  # Arabic-Indic digits are not ASCII
