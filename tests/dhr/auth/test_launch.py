"""EHR launch: ``POST /auth/launch`` makes a launch context; ``/auth/authorize`` redeems it.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/app-launch.html#launch-app-ehr-launch):
the EHR opens the app with ``iss`` and an opaque ``launch``; the app sends ``launch`` in its
authorisation request and the token carries the patient and encounter the EHR chose.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import Engine, update

from dhr.auth.clients import Client
from dhr.auth.service import AuthServer
from dhr.store.auth_models import LaunchRow
from dhr.store.db import unit_of_work
from tests.conftest import LiveServer
from tests.dhr.auth import flow

LAUNCH_URI = "http://127.0.0.1:1/launch"


@pytest.fixture
def app(server: LiveServer, engine: Engine) -> Client:
    """A registered SMART app with a launch URL (the live server is running)."""
    return flow.register_app(engine, launch_uri=LAUNCH_URI)


def staff_token(server: LiveServer, role: str = "R8000", scope: str = "launch user/*.cruds") -> str:
    auth: AuthServer = server.app.state.auth
    token, _ = auth.issue_access_token(
        subject="ehr-user",
        client_id="the-ehr",
        scope=scope,
        lifetime=300,
        roles=[role],
        fhir_user="Practitioner/ehr-user",
        organisation=flow.ODS,
    )
    return token


def post_launch(server: LiveServer, token: str | None, **body: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with flow.browser(server) as http:
        return http.post("/auth/launch", json=body, headers=headers)


def patient_with_encounter(engine: Engine) -> tuple[str, str]:
    patient = flow.store_patient(engine, "Smith", "Jane")
    encounter = flow.store_resource(
        engine,
        {
            "resourceType": "Encounter",
            "status": "in-progress",
            "class": {
                "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                "code": "AMB",
            },
            "subject": {"reference": f"Patient/{patient}"},
        },
    )
    return patient, encounter


def test_an_ehr_launch_carries_patient_and_encounter_into_the_code(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient, encounter = patient_with_encounter(engine)
    made = post_launch(server, staff_token(server), patient=patient, encounter=encounter)
    assert made.status_code == 201, made.text
    assert made.headers["cache-control"] == "no-store"
    launch = made.json()["launch"]
    assert made.json()["expires_in"] == 300
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(
        server, app, challenge, scope="launch openid fhirUser user/*.rs patient/*.rs", launch=launch
    )
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, house.username)
        row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
        assert (row["patient"], row["encounter"]) == (patient, encounter)
        assert row["scope"] == "launch openid fhirUser user/*.rs patient/*.rs"
        again = http.get("/auth/authorize", params={**params, "state": "second"})
    query = flow.redirected_to_app(again)
    assert query["error"] == "invalid_request"  # a launch is used once
    assert query["state"] == "second"


def test_the_launch_url_opens_the_app_with_iss_and_launch(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    made = post_launch(
        server, staff_token(server), patient=f"Patient/{patient}", client_id=app.client_id
    )
    assert made.status_code == 201, made.text
    url = urlsplit(made.json()["launch_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == LAUNCH_URI
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query == {"iss": server.base, "launch": made.json()["launch"]}


def test_a_form_body_is_accepted_too(server: LiveServer, app: Client, engine: Engine) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    with flow.browser(server) as http:
        made = http.post(
            "/auth/launch",
            data={"patient": patient},
            headers={"Authorization": f"Bearer {staff_token(server)}"},
        )
    assert made.status_code == 201, made.text
    assert "launch_url" not in made.json()


def test_the_launch_context_replaces_the_picker_for_launch_patient(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    launch = post_launch(server, staff_token(server), patient=patient).json()["launch"]
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    params = flow.auth_params(
        server, app, challenge, scope="launch/patient user/*.rs", launch=launch
    )
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, house.username)
    row = flow.code_row(engine, flow.redirected_to_app(answer)["code"])
    assert (row["patient"], row["encounter"]) == (patient, None)


def test_without_a_token_the_launch_endpoint_answers_401(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    answer = post_launch(server, None, patient=patient)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer")
    bad = post_launch(server, "not-a-token", patient=patient)
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_token"


@pytest.mark.parametrize("role", ["patient", "R0001", "researcher"])
def test_only_roles_that_may_launch_get_a_launch(
    server: LiveServer, app: Client, engine: Engine, role: str
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    answer = post_launch(server, staff_token(server, role=role), patient=patient)
    assert answer.status_code == 403
    assert answer.json()["error"] == "insufficient_scope"


def test_a_system_token_of_an_ehr_may_launch(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    token = staff_token(server, role="system", scope="system/*.rs")
    assert post_launch(server, token, patient=patient).status_code == 201


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "patient is required"),
        ({"patient": "no-such-patient"}, "not known"),
        ({"patient": "PATIENT", "encounter": "ENCOUNTER"}, "not this patient's"),
        ({"patient": "PATIENT", "client_id": "no-such-app"}, "no SMART app"),
    ],
)
def test_bad_launch_contexts_are_refused(
    server: LiveServer, app: Client, engine: Engine, body: dict[str, str], message: str
) -> None:
    patient, _encounter = patient_with_encounter(engine)
    other = flow.store_patient(engine, "Jones", "Mary")
    _, others_encounter = patient_with_encounter(engine)
    del other
    values = {
        k: v.replace("PATIENT", patient).replace("ENCOUNTER", others_encounter)
        for k, v in body.items()
    }
    answer = post_launch(server, staff_token(server), **values)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert message in answer.json()["error_description"]


def test_an_unknown_or_expired_launch_is_an_invalid_request(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    patient = flow.store_patient(engine, "Smith", "Jane")
    launch = post_launch(server, staff_token(server), patient=patient).json()["launch"]
    with unit_of_work(engine, write=True) as conn:
        conn.execute(
            update(LaunchRow)
            .where(LaunchRow.launch_id == hashlib.sha256(launch.encode()).hexdigest())
            .values(expires_at=0)
        )
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        for value in (launch, "made-up-launch"):
            params = flow.auth_params(
                server, app, challenge, scope="launch user/*.rs", launch=value
            )
            query = flow.redirected_to_app(
                flow.authorize_signed_in(http, server, params, house.username)
            )
            assert query["error"] == "invalid_request"
            assert "launch" in query["error_description"]


def test_a_patient_cannot_use_a_launch_about_another_patient(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    mine = flow.store_patient(engine, "Smith", "Jane")
    theirs = flow.store_patient(engine, "Jones", "Mary")
    jane = flow.add_patient_user(engine, mine)
    launch = post_launch(server, staff_token(server), patient=theirs).json()["launch"]
    _, challenge = flow.pkce()
    params = flow.auth_params(server, app, challenge, scope="launch patient/*.rs", launch=launch)
    with flow.browser(server) as http:
        query = flow.redirected_to_app(
            flow.authorize_signed_in(http, server, params, jane.username)
        )
    assert query["error"] == "access_denied"
    own = post_launch(server, staff_token(server), patient=mine).json()["launch"]
    params = flow.auth_params(server, app, challenge, scope="launch patient/*.rs", launch=own)
    with flow.browser(server) as http:
        answer = flow.authorize_signed_in(http, server, params, jane.username)
    assert flow.code_row(engine, flow.redirected_to_app(answer)["code"])["patient"] == mine


def test_a_launch_made_for_one_app_cannot_be_redeemed_by_another(
    server: LiveServer, app: Client, engine: Engine
) -> None:
    other = flow.register_app(engine)
    patient = flow.store_patient(engine, "Smith", "Jane")
    made = post_launch(server, staff_token(server), patient=patient, client_id=app.client_id)
    launch = made.json()["launch"]
    house = flow.add_staff_user(engine)
    _, challenge = flow.pkce()
    with flow.browser(server) as http:
        params = flow.auth_params(server, other, challenge, scope="launch user/*.rs", launch=launch)
        query = flow.redirected_to_app(
            flow.authorize_signed_in(http, server, params, house.username)
        )
        assert query["error"] == "invalid_request"
        assert "another app" in query["error_description"]
        params = flow.auth_params(server, app, challenge, scope="launch user/*.rs", launch=launch)
        answer = flow.authorize_signed_in(http, server, params, house.username)
    assert flow.code_row(engine, flow.redirected_to_app(answer)["code"])["patient"] == patient
