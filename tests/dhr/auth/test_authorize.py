"""``GET``/``POST /auth/authorize``: SMART App Launch 2.2 "Obtain authorization code" over HTTP.

https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-authorization-code, RFC 6749
section 4.1 (errors: 4.1.2.1) and RFC 7636 (PKCE; only S256). A bad client or redirect URI gets
an error page and no redirect; other errors go back to the app with ``error`` and ``state``.
"""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import Engine

from dhr.auth.clients import Client, deactivate_client, register_client
from dhr.auth.model import ClientKind
from dhr.auth.users import add_user
from tests.conftest import LiveServer
from tests.dhr.auth import flow
from tests.dhr.auth.fixtures_clients import jwks, rsa_key


@pytest.fixture
def app(server: LiveServer, engine: Engine) -> Client:
    """A registered public SMART app (the live server is running, FHIR tables empty)."""
    return flow.register_app(engine)


def assert_error_page(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


# --- the client and redirect URI: an error page, never a redirect ---------------------------


def test_an_unknown_client_gets_an_error_page_not_a_redirect(
    server: LiveServer, app: Client
) -> None:
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        answer = http.get(
            "/auth/authorize", params=flow.auth_params(server, app, challenge, client_id="nope")
        )
    assert_error_page(answer)
    assert "not registered" in answer.text


def test_a_withdrawn_client_gets_an_error_page(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    deactivate_client(engine, app.client_id)
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        assert_error_page(
            http.get("/auth/authorize", params=flow.auth_params(server, app, challenge))
        )


def test_a_backend_services_client_cannot_use_the_authorisation_endpoint(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    backend, _ = register_client(
        engine,
        client_id=flow.unique("gp-system"),
        name="GP system",
        kind=ClientKind.BACKEND,
        scopes="system/*.rs",
        jwks=jwks(rsa_key()),
    )
    _, challenge = flow.pkce()
    params = flow.auth_params(server, backend, challenge)
    with flow.browser(server) as http:
        assert_error_page(http.get("/auth/authorize", params=params))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        flow.REDIRECT + "/extra",
        flow.REDIRECT + "?x=1",
        flow.REDIRECT.upper(),
        None,
    ],
)
def test_a_redirect_uri_that_is_not_exactly_registered_is_never_redirected_to(
    server: LiveServer, app: Client, redirect_uri: str | None
) -> None:
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, redirect_uri=redirect_uri)
    with flow.browser(server) as http:
        answer = http.get("/auth/authorize", params=params)
    assert_error_page(answer)
    assert "evil.example" not in answer.headers.get("location", "")


def test_interpolated_values_are_escaped_on_error_pages(server: LiveServer, app: Client) -> None:
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, client_id="<script>alert(1)</script>")
    with flow.browser(server) as http:
        answer = http.get("/auth/authorize", params=params)
    assert_error_page(answer)
    assert "<script>" not in answer.text


# --- errors redirected to the app --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"aud": "https://other.example/fhir"}, "invalid_request"),
        ({"aud": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": None}, "invalid_scope"),
    ],
)
def test_bad_requests_are_sent_back_to_the_app_with_error_and_state(
    server: LiveServer, app: Client, overrides: dict[str, str | None], error: str
) -> None:
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, **overrides)
    with flow.browser(server) as http:
        answer = http.get("/auth/authorize", params=params)
    query = flow.redirected_to_app(answer)
    assert query["error"] == error
    assert query["error_description"]
    assert query["state"] == params["state"]
    assert "code" not in query


def test_plain_pkce_is_refused_by_name(server: LiveServer, app: Client) -> None:
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, code_challenge_method="plain")
    with flow.browser(server) as http:
        query = flow.redirected_to_app(http.get("/auth/authorize", params=params))
    assert "S256" in query["error_description"]


def test_a_missing_state_is_an_invalid_request(server: LiveServer, app: Client) -> None:
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        answer = http.get(
            "/auth/authorize", params=flow.auth_params(server, app, challenge, state=None)
        )
    query = flow.redirected_to_app(answer)
    assert query["error"] == "invalid_request"
    assert "state" not in query


def test_a_parameter_sent_twice_is_an_invalid_request(server: LiveServer, app: Client) -> None:
    _, challenge = flow.pkce()
    params = [*flow.auth_params(server, app, challenge).items(), ("scope", "openid")]
    with flow.browser(server) as http:
        query = flow.redirected_to_app(http.get("/auth/authorize", params=params))
    assert query["error"] == "invalid_request"


# --- signing in and the patient context ---------------------------------------------------------


def test_a_browser_that_is_not_signed_in_is_sent_to_the_sign_in_page(
    server: LiveServer, app: Client
) -> None:
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge)
    with flow.browser(server) as http:
        answer = http.get("/auth/authorize", params=params)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(server.settings.auth_base + "/login?next=")
    next_url = flow.query_of(answer)["next"]
    assert next_url.startswith("/auth/authorize?")
    assert f"state={params['state']}" in next_url


def test_a_patient_standalone_launch_gets_their_own_record(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    mine = flow.store_patient(engine, "Smith", "Jane")
    flow.store_patient(engine, "Smith", "John")
    jane = flow.add_patient_user(engine, mine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, nonce="n-0S6_WzA2Mj")
    started = int(time.time())
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, jane.username)
    query = flow.redirected_to_app(answer)
    assert query["state"] == params["state"]
    row = flow.code_row(engine, query["code"])
    assert row["patient"] == mine
    assert row["encounter"] is None
    assert row["username"] == jane.username
    assert row["client_id"] == app.client_id
    assert row["redirect_uri"] == flow.REDIRECT
    assert row["code_challenge"] == challenge
    assert row["nonce"] == "n-0S6_WzA2Mj"
    assert row["scope"] == "openid fhirUser launch/patient patient/*.rs"
    assert started + 50 <= row["expires_at"] <= int(time.time()) + server.settings.code_seconds
    assert not row["used"]


def test_a_patient_never_gets_more_than_reading_their_own_compartment(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    _, challenge = flow.pkce()
    scope = "openid fhirUser launch/patient user/*.cruds patient/*.cruds system/*.cruds"
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(
            http, server, flow.auth_params(server, app, challenge, scope=scope), jane.username
        )
    row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
    assert row["scope"] == "openid fhirUser launch/patient patient/*.rs"
    assert row["patient"] == mine


def test_a_patient_asking_only_for_user_scopes_gets_invalid_scope(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    jane = flow.add_patient_user(engine, flow.store_patient(engine, "Smith", "Jane"))
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(
            http,
            server,
            flow.auth_params(server, app, challenge, scope="user/*.cruds"),
            jane.username,
        )
    assert flow.redirected_to_app(answer)["error"] == "invalid_scope"


def test_the_client_registration_narrows_the_scopes_too(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    narrow = flow.register_app(engine, scopes="openid launch/patient patient/Observation.rs")
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, narrow, challenge)
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, jane.username)
    row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
    assert row["scope"] == "openid launch/patient patient/Observation.rs"  # no fhirUser, no */


def test_a_clinician_chooses_the_patient_in_a_picker(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    jane = flow.store_patient(engine, "Smith", "Jane", nhs_number="9000000009")
    flow.store_patient(engine, "Jones", "Mary")
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(
        server, app, challenge, scope="openid fhirUser launch/patient user/*.rs"
    )
    with flow.browser(server) as http:
        picker = flow.authorize_signed_in(http, server, params, house.username)
        assert picker.status_code == 200
        assert "Choose a patient" in picker.text
        assert picker.headers["x-frame-options"] == "DENY"
        csrf = flow.hidden(picker.text, "csrf")
        form = {**params, "csrf": csrf}
        by_name = http.post("/auth/authorize", data={**form, "patient_search": "Smith"})
        assert by_name.status_code == 200
        assert "Jane Smith" in by_name.text
        assert "Mary Jones" not in by_name.text
        by_number = http.post("/auth/authorize", data={**form, "patient_search": "900 000 0009"})
        assert "Jane Smith" in by_number.text
        chosen = http.post("/auth/authorize", data={**form, "patient": jane})
    query = flow.redirected_to_app(chosen)
    assert chosen.status_code == 303
    row = flow.code_row(engine, query["code"])
    assert row["patient"] == jane
    assert row["username"] == house.username
    assert row["scope"] == "openid fhirUser launch/patient user/*.rs"


def test_the_picker_will_not_take_a_choice_without_its_anti_forgery_token(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    jane = flow.store_patient(engine, "Smith", "Jane")
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch/patient user/*.rs")
    with flow.browser(server) as http:
        flow.authorize_signed_in(http, server, params, house.username)
        forged = http.post("/auth/authorize", data={**params, "patient": jane, "csrf": "x" * 64})
    assert forged.status_code == 200
    assert "location" not in forged.headers
    assert "expired" in forged.text


def test_the_picker_refuses_a_patient_that_does_not_exist(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch/patient user/*.rs")
    with flow.browser(server) as http:
        picker = flow.authorize_signed_in(http, server, params, house.username)
        form = {**params, "csrf": flow.hidden(picker.text, "csrf"), "patient": "no-such-id"}
        answer = http.post("/auth/authorize", data=form)
    assert answer.status_code == 200
    assert "cannot be opened" in answer.text


def test_cancelling_the_picker_answers_access_denied(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch/patient user/*.rs")
    with flow.browser(server) as http:
        picker = flow.authorize_signed_in(http, server, params, house.username)
        form = {**params, "csrf": flow.hidden(picker.text, "csrf"), "decision": "deny"}
        answer = http.post("/auth/authorize", data=form)
    query = flow.redirected_to_app(answer)
    assert query["error"] == "access_denied"
    assert query["state"] == params["state"]


def test_a_clinician_without_launch_patient_gets_a_code_with_no_patient(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="openid fhirUser user/*.rs")
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, house.username)
    row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
    assert row["patient"] is None
    assert row["scope"] == "openid fhirUser user/*.rs"


def test_a_nurse_gets_narrower_writes_than_a_clinician(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    nurse = flow.add_staff_user(engine, "R8001", name="nurse")
    _, challenge = flow.pkce()
    scope = "user/Observation.cruds user/MedicationRequest.cruds"
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(
            http, server, flow.auth_params(server, app, challenge, scope=scope), nurse.username
        )
    row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
    assert row["scope"] == "user/Observation.crus user/MedicationRequest.rs"


def test_a_researcher_may_not_authorise_apps(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    res = add_user(engine, username=flow.unique("res"), password=flow.PASSWORD, role="researcher")
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(
            http, server, flow.auth_params(server, app, challenge), res.username
        )
    assert flow.redirected_to_app(answer)["error"] == "access_denied"


def test_post_works_like_get(server: LiveServer, app: Client, engine: Engine) -> None:
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge)
    with flow.browser(server) as http:
        first = http.post("/auth/authorize", data=params)
        assert first.status_code == 303
        next_url = flow.query_of(first)["next"]
        assert flow.sign_in(http, jane.username, flow.PASSWORD, next_url).status_code == 303
        answer = http.post("/auth/authorize", data=params)
    assert answer.status_code == 303
    query = flow.redirected_to_app(answer)
    assert query["state"] == params["state"]
    assert flow.code_row(engine, query["code"])["patient"] == mine
    with flow.browser(server) as http:
        bad = http.post("/auth/authorize", data={**params, "code_challenge_method": "plain"})
    assert flow.redirected_to_app(bad)["error"] == "invalid_request"


def test_a_redirect_uri_with_its_own_query_keeps_it(server: LiveServer, engine: Engine) -> None:
    tenant = "http://127.0.0.1:1/cb?tenant=7"
    app = flow.register_app(engine, redirect_uris=(tenant,))
    jane = flow.add_patient_user(engine, flow.store_patient(engine, "Smith", "Jane"))
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, redirect_uri=tenant)
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, jane.username)
    assert answer.headers["location"].startswith(tenant + "&code=")
