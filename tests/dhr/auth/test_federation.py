"""Signing in through an external OpenID Connect provider, then a normal SMART launch.

OpenID Connect Core 1.0 code flow (https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth,
ID token validation section 3.1.3.7), PKCE (RFC 7636), RFC 9207 ``iss``; a CIS2-like provider for
staff and an NHS login-like one for patients (:mod:`tests.dhr.auth.fake_idp`), both real HTTP
servers, in front of a second live DHR configured with them. After the provider, SMART App
Launch 2.2 goes on as for a local user (https://hl7.org/fhir/smart-app-launch/app-launch.html).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine

from dhr.auth import users
from dhr.config import Settings
from tests.conftest import LiveServer, make_settings
from tests.dhr.auth import fake_idp, flow
from tests.dhr.auth.test_authorize_e2e import redeem, verified

STAFF_SECRET = "staff secret: with spaces & symbols"
PATIENT_SECRET = "patient-secret"
SDS_USER_ID = "https://fhir.nhs.uk/Id/sds-user-id"
NHS_NUMBER = "9434765919"


@pytest.fixture(scope="module")
def cis2_idp() -> Iterator[fake_idp.FakeIdP]:
    idp = fake_idp.FakeIdP()
    idp.start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def nhs_idp() -> Iterator[fake_idp.FakeIdP]:
    idp = fake_idp.FakeIdP(alg="RS512")  # NHS login signs its ID tokens RS512
    idp.start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def fed_server(
    cis2_idp: fake_idp.FakeIdP,
    nhs_idp: fake_idp.FakeIdP,
    engine: Engine,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """A second live DHR that trusts both providers (and one that never answers)."""
    providers = [
        {
            "name": "cis2",
            "display_name": "NHS CIS2 (test)",
            "issuer": cis2_idp.issuer,
            "client_id": "dhr-staff",
            "client_secret": STAFF_SECRET,
            "kind": "staff",
        },
        {
            "name": "nhslogin",
            "display_name": "NHS login (test)",
            "issuer": nhs_idp.issuer,
            "client_id": "dhr-patients",
            "client_secret": PATIENT_SECRET,
            "token_endpoint_auth_method": "client_secret_post",
            "kind": "patient",
        },
        {
            "name": "offline",
            "display_name": "Offline IdP",
            "issuer": f"http://127.0.0.1:{fake_idp._free_port()}",
            "client_id": "x",
            "client_secret": "y",
            "kind": "staff",
        },
    ]
    settings = make_settings(
        database_url,
        tmp_path_factory.mktemp("fed"),
        identity_providers=providers,
        consent_implicit="direct-care",  # sign-in is under test here, not the consent policy
    )
    server = LiveServer(settings, engine)
    server.start()
    base = settings.auth_base
    cis2_idp.register(
        "dhr-staff", STAFF_SECRET, f"{base}/federate/cis2/callback", "client_secret_basic"
    )
    nhs_idp.register(
        "dhr-patients", PATIENT_SECRET, f"{base}/federate/nhslogin/callback", "client_secret_post"
    )
    yield server
    server.stop()


@pytest.fixture
def fed(
    server: LiveServer,
    fed_server: LiveServer,
    cis2_idp: fake_idp.FakeIdP,
    nhs_idp: fake_idp.FakeIdP,
) -> LiveServer:
    """The federating server, with empty FHIR tables and well-behaved providers."""
    cis2_idp.reset()
    nhs_idp.reset()
    return fed_server


def store_practitioner(engine: Engine, uid: str) -> str:
    return flow.store_resource(
        engine,
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": SDS_USER_ID, "value": uid}],
            "name": [{"family": "Lovelace", "given": ["Ada"]}],
        },
    )


def provider_link(page: httpx.Response, display: str) -> str:
    match = re.search(rf'href="([^"]*)">Sign in with {re.escape(display)}<', page.text)
    assert match, f"no link to {display} on the sign-in page"
    return match.group(1).replace("&amp;", "&")


def to_callback(http: httpx.Client, server: LiveServer, next_url: str, display: str) -> str:
    """Open the sign-in page, follow "Sign in with <display>" to the provider; the URL the
    provider sends the browser back to."""
    page = http.get("/auth/login", params={"next": next_url})
    start = http.get(provider_link(page, display))
    assert start.status_code == 302, start.text
    answer = http.get(start.headers["location"])  # the provider signs the user in at once
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{server.settings.auth_base}/federate/")
    return callback


def sign_in_via(
    http: httpx.Client, server: LiveServer, params: dict[str, str], display: str
) -> httpx.Response:
    """Send the authorisation request, sign in at the provider, come back; DHR's answer to
    the resumed authorisation request (or the callback's page if sign-in failed)."""
    first = http.get("/auth/authorize", params=params)
    assert first.status_code == 303
    assert "/auth/login" in first.headers["location"]
    next_url = flow.query_of(first)["next"]
    back = http.get(to_callback(http, server, next_url, display))
    if back.status_code != 303:
        return back
    assert back.headers["location"] == server.settings.issuer + next_url
    return http.get(back.headers["location"])


def test_the_sign_in_page_offers_each_provider_carrying_next(
    server: LiveServer, fed: LiveServer
) -> None:
    next_url = "/auth/authorize?client_id=app&state=s"
    with flow.browser(fed) as http:
        page = http.get("/auth/login", params={"next": next_url})
    with flow.browser(server) as http:
        plain = http.get("/auth/login", params={"next": next_url})
    assert "Sign in with" not in plain.text  # no provider configured there
    assert page.status_code == 200
    link = provider_link(page, "NHS CIS2 (test)")
    assert link.startswith(f"{fed.settings.auth_base}/federate/cis2?")
    assert parse_qs(urlsplit(link).query)["next"] == [next_url]
    assert "Sign in with NHS login (test)" in page.text


def test_a_cis2_clinician_completes_a_standalone_launch(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    practitioner = store_practitioner(engine, "555000111222")
    jane = flow.store_patient(engine, "Smith", "Jane", nhs_number=NHS_NUMBER)
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    app = flow.register_app(engine)
    verifier, challenge = flow.pkce()
    scope = "openid fhirUser launch/patient user/*.rs"
    params = flow.auth_params(fed, app, challenge, scope=scope, nonce="n-1")
    with flow.browser(fed) as http:
        picker = sign_in_via(http, fed, params, "NHS CIS2 (test)")
        assert picker.status_code == 200, picker.text
        assert "Choose a patient" in picker.text
        form = {**params, "csrf": flow.hidden(picker.text, "csrf"), "patient": jane}
        code = flow.redirected_to_app(http.post("/auth/authorize", data=form))["code"]
        answer = redeem(http, app, code, verifier)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        access = verified(http, body["access_token"])
        identity = verified(http, body["id_token"])
        read = http.get(f"/fhir/Patient/{jane}", headers=flow_bearer(body["access_token"]))
    assert body["patient"] == jane
    assert access["roles"] == ["R8000"]
    assert access["fhirUser"].endswith(f"Practitioner/{practitioner}")
    assert access["org"] == fake_idp.ODS
    assert access["sub"] == "cis2:555000111222"
    assert identity["fhirUser"].endswith(f"Practitioner/{practitioner}")
    assert identity["nonce"] == "n-1"
    assert read.status_code == 200
    asked = cis2_idp.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256"
    assert asked["scope"] == "openid profile nationalrbacaccess"
    assert asked["state"]
    assert asked["nonce"]
    assert asked["nonce"] != "n-1"
    assert cis2_idp.token_requests[-1]["code_verifier"]
    user = users.get_user(engine, "cis2:555000111222")
    assert user is not None
    assert user.display == "Dr Ada Lovelace"
    assert users.check_login(engine, "cis2:555000111222", "!federated") is None


def flow_bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_nhs_login_patient_gets_their_own_record(
    fed: LiveServer, engine: Engine, nhs_idp: fake_idp.FakeIdP
) -> None:
    mine = flow.store_patient(engine, "Smith", "Jane", nhs_number=NHS_NUMBER)
    other = flow.store_patient(engine, "Jones", "Mary", nhs_number="9000000009")
    nhs_idp.identity = fake_idp.nhs_login_user(NHS_NUMBER)
    app = flow.register_app(engine)
    verifier, challenge = flow.pkce()
    params = flow.auth_params(fed, app, challenge)  # openid fhirUser launch/patient patient/*.rs
    with flow.browser(fed) as http:
        code = flow.redirected_to_app(sign_in_via(http, fed, params, "NHS login (test)"))
        answer = redeem(http, app, code["code"], verifier)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        access = verified(http, body["access_token"])
        own = http.get(f"/fhir/Patient/{mine}", headers=flow_bearer(body["access_token"]))
        theirs = http.get(f"/fhir/Patient/{other}", headers=flow_bearer(body["access_token"]))
    assert body["patient"] == mine
    assert access["roles"] == ["patient"]
    assert access["fhirUser"].endswith(f"Patient/{mine}")
    assert own.status_code == 200
    assert theirs.status_code == 404
    assert nhs_idp.token_requests[-1]["client_secret"] == PATIENT_SECRET  # client_secret_post


def refused(
    http: httpx.Client, server: LiveServer, display: str, status: int, text: str
) -> httpx.Response:
    """Sign in at the provider and expect DHR to refuse with a page, and no session."""
    callback = to_callback(http, server, "/auth/authorize?client_id=a&state=s", display)
    answer = http.get(callback)
    assert answer.status_code == status, answer.text
    assert text in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "dhr_session" not in http.cookies
    assert "/auth/login?next=" in answer.text  # a way back to the sign-in page
    return answer


CIS2, NHS_LOGIN = "NHS CIS2 (test)", "NHS login (test)"
NO_ROLE = [("S8000:G8000:R9999", "A81001")]  # a national RBAC role DHR does not know
NO_ORG = [("S0080:G0450:R8000", "not an ODS code")]


@pytest.mark.parametrize(
    ("display", "stored", "identity", "text"),
    [
        (NHS_LOGIN, ["9000000009"], fake_idp.nhs_login_user(NHS_NUMBER), "holds no record"),
        (NHS_LOGIN, [NHS_NUMBER] * 2, fake_idp.nhs_login_user(NHS_NUMBER), "more than one"),
        (NHS_LOGIN, [NHS_NUMBER], fake_idp.nhs_login_user(NHS_NUMBER, "P5"), "to level P9"),
        (NHS_LOGIN, [NHS_NUMBER], fake_idp.nhs_login_user("9434765918"), "no valid NHS number"),
        (CIS2, ["555000999999"], fake_idp.cis2_user("501"), "no practitioner record with your"),
        (CIS2, ["502"] * 2, fake_idp.cis2_user("502"), "more than one practitioner record"),
        (CIS2, ["503"], fake_idp.cis2_user("503", roles=NO_ROLE), "None of your national RBAC"),
        (CIS2, ["504"], fake_idp.cis2_user("504", roles=NO_ORG), "not held at an organisation"),
    ],
    ids=[
        "unknown-nhs-number",
        "two-patients",
        "proofing-p5",
        "invalid-nhs-number",
        "unknown-practitioner",
        "two-practitioners",
        "no-known-role",
        "no-organisation",
    ],
)
def test_an_identity_dhr_cannot_match_exactly_is_refused(
    fed: LiveServer,
    engine: Engine,
    cis2_idp: fake_idp.FakeIdP,
    nhs_idp: fake_idp.FakeIdP,
    display: str,
    stored: list[str],
    identity: fake_idp.Identity,
    text: str,
) -> None:
    """Never a guess: no match, several matches or an unproven identity opens nothing."""
    idp = cis2_idp if display == CIS2 else nhs_idp
    for value in stored:
        if display == CIS2:
            store_practitioner(engine, value)
        else:
            flow.store_patient(engine, "Smith", "Jane", nhs_number=value)
    idp.identity = identity
    with flow.browser(fed) as http:
        refused(http, fed, display, 403, text)
    prefix = "cis2" if display == CIS2 else "nhslogin"
    assert users.get_user(engine, f"{prefix}:{identity.sub}") is None


def sign_in_staff(server: LiveServer) -> httpx.Response:
    with flow.browser(server) as http:
        callback = to_callback(http, server, "", "NHS CIS2 (test)")
        return http.get(callback)


def test_the_role_is_refreshed_at_each_sign_in_and_a_selected_role_wins(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    uid = "555000333444"
    store_practitioner(engine, uid)
    cis2_idp.identity = fake_idp.cis2_user(uid)
    assert sign_in_staff(fed).status_code == 200  # no next: the "signed in" page
    first = users.get_user(engine, f"cis2:{uid}")
    assert first is not None
    assert (first.role, first.organisation) == ("R8000", "A81001")
    roles = [("S0080:G0450:R8000", "A81001"), ("S0090:G0500:R8001", "B82002")]
    cis2_idp.identity = fake_idp.cis2_user(uid, roles=roles, selected="2")
    assert sign_in_staff(fed).status_code == 200
    second = users.get_user(engine, f"cis2:{uid}")
    assert second is not None
    assert (second.role, second.organisation) == ("R8001", "B82002")
    assert second.created_at == first.created_at


def test_a_deactivated_federated_user_stays_deactivated(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    uid = "555000555666"
    store_practitioner(engine, uid)
    cis2_idp.identity = fake_idp.cis2_user(uid)
    assert sign_in_staff(fed).status_code == 200
    assert users.deactivate_user(engine, f"cis2:{uid}")
    with flow.browser(fed) as http:
        refused(http, fed, "NHS CIS2 (test)", 403, "deactivated")
    user = users.get_user(engine, f"cis2:{uid}")
    assert user is not None
    assert not user.active


def _changes(**claims: Any) -> Callable[[fake_idp.FakeIdP], None]:
    def apply(idp: fake_idp.FakeIdP) -> None:
        idp.id_token_changes = claims

    return apply


def _tamper(idp: fake_idp.FakeIdP) -> None:
    idp.tamper_signature = True


def _other_userinfo(idp: fake_idp.FakeIdP) -> None:
    idp.userinfo_sub = "someone-else"


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (_tamper, "its signature is invalid"),
        (_changes(nonce="not-the-nonce-dhr-sent"), "(nonce)"),
        (_changes(nonce=None), "(nonce)"),
        (_changes(aud="another-client"), "(aud)"),
        (_changes(aud=["dhr-staff", "other"], azp="other"), "(azp)"),
        (_changes(iss="http://127.0.0.1:9/evil"), "(iss)"),
        (_changes(exp=int(time.time()) - 3600, iat=int(time.time()) - 3900), "expired"),
        (_changes(iat=int(time.time()) + 3600, exp=int(time.time()) + 3900), "in the future"),
        (_other_userinfo, "someone else (sub)"),
    ],
    ids=["signature", "nonce", "no-nonce", "aud", "azp", "iss", "expired", "future", "userinfo"],
)
def test_an_id_token_that_does_not_verify_is_refused(
    fed: LiveServer,
    engine: Engine,
    cis2_idp: fake_idp.FakeIdP,
    spoil: Callable[[fake_idp.FakeIdP], None],
    reason: str,
) -> None:
    store_practitioner(engine, "555000111222")
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    spoil(cis2_idp)
    with flow.browser(fed) as http:
        refused(http, fed, "NHS CIS2 (test)", 400, reason)


def test_a_state_is_used_once_and_only_in_the_browser_that_started_it(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    store_practitioner(engine, "555000111222")
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    with flow.browser(fed) as http:
        callback = to_callback(http, fed, "", "NHS CIS2 (test)")
        with flow.browser(fed) as other:  # login CSRF: the answer opened in another browser
            other.cookies.set("dhr_federation", "y" * 43, path="/auth/federate")
            stolen = other.get(callback)
        assert stolen.status_code == 400
        assert "not started in this browser" in stolen.text
        assert "dhr_session" not in other.cookies
        late = http.get(callback)  # the attempt used the state up
        assert late.status_code == 400
        assert "expired or was already used" in late.text
        callback = to_callback(http, fed, "", "NHS CIS2 (test)")
        elsewhere = http.get(callback.replace("/federate/cis2/", "/federate/nhslogin/"))
        assert elsewhere.status_code == 400  # a state answers only the provider it was sent to
        callback = to_callback(http, fed, "", "NHS CIS2 (test)")
        assert http.get(callback).status_code == 200
        again = http.get(callback)
        forged = http.get(f"{fed.settings.auth_base}/federate/cis2/callback?state=abc&code=x")
    assert again.status_code == 400
    assert "expired or was already used" in again.text
    assert forged.status_code == 400


def test_an_answer_naming_another_issuer_is_refused(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    """RFC 9207: the ``iss`` of the authorisation response must be the provider's (mix-up)."""
    store_practitioner(engine, "555000111222")
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    with flow.browser(fed) as http:
        callback = to_callback(http, fed, "", "NHS CIS2 (test)")
        assert f"iss={quote_plus(cis2_idp.issuer)}" in callback
        answer = http.get(callback.replace(quote_plus(cis2_idp.issuer), "https%3A%2F%2Fevil"))
    assert answer.status_code == 400
    assert "another issuer" in answer.text


def test_the_provider_refusing_shows_a_page(fed: LiveServer, cis2_idp: fake_idp.FakeIdP) -> None:
    cis2_idp.authorize_error = "access_denied"
    with flow.browser(fed) as http:
        answer = refused(http, fed, "NHS CIS2 (test)", 403, "access_denied: The user said no")
    assert "NHS CIS2 (test) did not sign you in" in answer.text


def test_the_provider_rotating_its_key_is_picked_up(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP
) -> None:
    store_practitioner(engine, "555000111222")
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    assert sign_in_staff(fed).status_code == 200
    cis2_idp.rotate_key()
    assert sign_in_staff(fed).status_code == 200


def test_a_provider_that_cannot_be_reached_or_is_unknown_shows_a_page(fed: LiveServer) -> None:
    with flow.browser(fed) as http:
        offline = http.get("/auth/federate/offline", params={"next": "/auth/authorize?x=1"})
        unknown = http.get("/auth/federate/nobody")
        no_state = http.get("/auth/federate/cis2/callback", params={"code": "x"})
    assert offline.status_code == 502
    assert "Offline IdP is not answering" in offline.text
    assert "/auth/login?next=%2Fauth%2Fauthorize%3Fx%3D1" in offline.text  # a way back
    assert unknown.status_code == 404
    assert no_state.status_code == 400


@pytest.mark.parametrize("target", ["https://evil.example/auth/authorize", "//evil.example/x"])
def test_next_is_never_an_open_redirect(
    fed: LiveServer, engine: Engine, cis2_idp: fake_idp.FakeIdP, target: str
) -> None:
    store_practitioner(engine, "555000111222")
    cis2_idp.identity = fake_idp.cis2_user("555000111222")
    with flow.browser(fed) as http:
        start = http.get("/auth/federate/cis2", params={"next": target})
        back = http.get(http.get(start.headers["location"]).headers["location"])
    assert back.status_code == 200
    assert "location" not in back.headers
    assert "signed in as Dr Ada Lovelace" in back.text


def test_a_federated_user_cannot_sign_in_with_a_password(fed: LiveServer, engine: Engine) -> None:
    username = "cis2:555000777888"
    with flow.browser(fed) as http:
        answer = flow.sign_in(http, username, "!federated")
    assert answer.status_code == 401


def test_providers_are_configured_as_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider = {
        "name": "cis2",
        "display_name": "CIS2",
        "issuer": "https://am.example.nhs.uk/openam/oauth2/realms/root/realms/oidc/",
        "client_id": "c",
        "client_secret": "s",
        "kind": "staff",
        "default_role": "nurse",
    }
    monkeypatch.setenv("DHR_IDENTITY_PROVIDERS", json.dumps([provider]))
    (parsed,) = Settings().identity_providers
    assert parsed.issuer == "https://am.example.nhs.uk/openam/oauth2/realms/root/realms/oidc"
    assert parsed.default_role == "R8001"
    assert parsed.request_scopes == "openid profile nationalrbacaccess"
    assert "s" not in repr(parsed.client_secret)
    for bad in (
        {"issuer": "http://idp.example.org"},  # http only on loopback
        {"default_role": "patient"},  # not a staff role
        {"name": "Bad Name"},
    ):
        monkeypatch.setenv("DHR_IDENTITY_PROVIDERS", json.dumps([{**provider, **bad}]))
        with pytest.raises(ValidationError):
            Settings()
    monkeypatch.setenv("DHR_IDENTITY_PROVIDERS", json.dumps([provider, provider]))
    with pytest.raises(ValidationError, match="unique"):
        Settings()
