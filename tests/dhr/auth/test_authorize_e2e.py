"""Standalone and EHR launch end to end: authorise, sign in, redeem the code with the PKCE
verifier, and check the access token and the RS256 ``id_token`` against the server's JWKS.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/app-launch.html#obtain-access-token),
OpenID Connect Core 1.0 section 2 (ID token), RFC 7636 (PKCE).
"""

from __future__ import annotations

from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import Engine

from dhr.auth.clients import Client
from dhr.auth.service import AuthServer
from tests.conftest import LiveServer
from tests.dhr.auth import flow


def redeem(http: httpx.Client, client: Client, code: str, verifier: str) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.REDIRECT,
        "client_id": client.client_id,
        "code_verifier": verifier,
    }
    return http.post("/auth/token", data=form)


def verified(http: httpx.Client, token: str) -> dict[str, Any]:
    """The claims of a token whose RS256 signature the published JWKS verifies."""
    keys = KeySet.import_key_set(http.get("/auth/jwks").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"]
    return dict(decoded.claims)


def test_a_patient_standalone_launch_ends_in_tokens_for_their_own_record(
    server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    verifier, challenge = flow.pkce()
    params = flow.auth_params(
        server,
        app,
        challenge,
        scope="openid fhirUser launch/patient patient/*.rs user/*.cruds",
        nonce="nonce-123",
    )
    with flow.browser(server) as http:
        code = flow.redirected_to_app(flow.authorize_signed_in(http, server, params, jane.username))
        wrong = redeem(http, app, code["code"], flow.pkce()[0])
        assert wrong.status_code == 400
        assert wrong.json()["error"] == "invalid_grant"

    # a fresh code: the failed attempt above used the first one up
    with flow.browser(server) as http:
        code = flow.redirected_to_app(flow.authorize_signed_in(http, server, params, jane.username))
        answer = redeem(http, app, code["code"], verifier)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["token_type"].lower() == "bearer"
        assert body["scope"] == "openid fhirUser launch/patient patient/*.rs"
        assert body["patient"] == mine
        access = verified(http, body["access_token"])
        identity = verified(http, body["id_token"])
        fhir = http.get(
            f"/fhir/Patient/{mine}", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
    assert access["patient"] == mine
    assert access["aud"] == server.base
    assert access["sub"] == jane.username
    assert identity["aud"] == app.client_id
    assert identity["iss"] == server.settings.issuer
    assert identity["nonce"] == "nonce-123"
    assert identity["fhirUser"].endswith(f"Patient/{mine}")
    assert fhir.status_code == 200, fhir.text
    assert fhir.json()["id"] == mine


def test_a_clinician_ehr_launch_ends_in_a_token_with_patient_and_encounter(
    server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    patient = flow.store_patient(engine, "Smith", "Jane")
    encounter = flow.store_resource(
        engine,
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": f"Patient/{patient}"},
        },
    )
    house = flow.add_staff_user(engine)
    auth: AuthServer = server.app.state.auth
    ehr_token, _ = auth.issue_access_token(
        subject="ehr", client_id="the-ehr", scope="user/*.rs", lifetime=60, roles=["R8000"]
    )
    verifier, challenge = flow.pkce()
    with flow.browser(server) as http:
        made = http.post(
            "/auth/launch",
            json={"patient": patient, "encounter": encounter},
            headers={"Authorization": f"Bearer {ehr_token}"},
        )
        assert made.status_code == 201, made.text
        params = flow.auth_params(
            server,
            app,
            challenge,
            scope="launch openid fhirUser user/*.rs",
            launch=made.json()["launch"],
        )
        code = flow.redirected_to_app(
            flow.authorize_signed_in(http, server, params, house.username)
        )
        answer = redeem(http, app, code["code"], verifier)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        access = verified(http, body["access_token"])
        identity = verified(http, body["id_token"])
    assert (body["patient"], body["encounter"]) == (patient, encounter)
    assert (access["patient"], access["encounter"]) == (patient, encounter)
    assert access["roles"] == ["R8000"]
    assert access["org"] == flow.ODS
    assert identity["fhirUser"].endswith(f"Practitioner/{house.username}")


def refresh(http: httpx.Client, client: Client, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client.client_id}
    return http.post("/auth/token", data=form)


def test_online_access_ends_with_the_login_session_and_offline_access_outlives_it(
    server: LiveServer, engine: Engine
) -> None:
    """SMART "online_access": a refresh token usable only while the user stays signed in."""
    app = flow.register_app(engine, scopes=flow.APP_SCOPES + " online_access")
    mine = flow.store_patient(engine, "Smith", "Jane")
    jane = flow.add_patient_user(engine, mine)
    tokens: dict[str, str] = {}
    for kind in ("online_access", "offline_access"):
        verifier, challenge = flow.pkce()
        params = flow.auth_params(
            server, app, challenge, scope=f"launch/patient patient/*.rs {kind}"
        )
        with flow.browser(server) as http:
            code = flow.redirected_to_app(
                flow.authorize_signed_in(http, server, params, jane.username)
            )
            answer = redeem(http, app, code["code"], verifier)
            assert answer.status_code == 200, answer.text
            renewed = refresh(http, app, answer.json()["refresh_token"])
            assert renewed.status_code == 200, renewed.text  # still signed in
            tokens[kind] = renewed.json()["refresh_token"]
            out = http.post("/auth/logout")
            assert out.status_code == 200, out.text
    with flow.browser(server) as http:
        ended = refresh(http, app, tokens["online_access"])
        kept = refresh(http, app, tokens["offline_access"])
    assert ended.status_code == 400
    assert ended.json()["error"] == "invalid_grant"
    assert "session" in ended.json()["error_description"]
    assert kept.status_code == 200, kept.text
