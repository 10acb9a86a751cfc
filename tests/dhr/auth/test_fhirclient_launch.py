"""A real third-party SMART client against the running server: the PyPI ``fhirclient``.

It discovers the endpoints from the CapabilityStatement, builds the standalone-launch
authorisation URL with PKCE S256 itself, exchanges the code, and then reads and searches with
the token it got (https://hl7.org/fhir/smart-app-launch/app-launch.html, standalone launch).
The user's browser is played by ``httpx`` (sign-in form, redirects).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from sqlalchemy import Engine

from tests.conftest import LiveServer
from tests.dhr.auth import flow


def _observation(patient: str, code: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def test_fhirclient_standalone_launch_with_pkce_then_reads_and_searches(
    server: LiveServer, engine: Engine
) -> None:
    app = flow.register_app(engine)
    mine = flow.store_patient(engine, "Smith", "Jane")
    other = flow.store_patient(engine, "Jones", "Mary")
    flow.store_resource(engine, _observation(mine, "8867-4"))
    flow.store_resource(engine, _observation(other, "8310-5"))
    jane = flow.add_patient_user(engine, mine)
    smart = smart_client.FHIRClient(
        settings={
            "app_id": app.client_id,
            "api_base": server.base,
            "redirect_uri": flow.REDIRECT,
            "scope": "openid fhirUser launch/patient patient/*.rs",
        }
    )
    url = smart.authorize_url
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert query["code_challenge_method"] == "S256"
    assert url.startswith(f"{server.settings.auth_base}/authorize?")

    with flow.browser(server) as http:
        first = http.get(url)
        assert first.status_code == 303, first.text
        signed = flow.sign_in(http, jane.username, flow.PASSWORD, flow.query_of(first)["next"])
        assert signed.status_code == 303, signed.text
        callback = http.get(signed.headers["location"])
    assert callback.status_code in (302, 303), callback.text
    smart.handle_callback(callback.headers["location"])

    assert smart.ready
    assert smart.patient_id == mine
    patient = Patient.read(mine, smart.server)
    assert patient.name[0].family == "Smith"
    search = Observation.where(struct={"_count": "10"})
    found = list(search.perform_resources_iter(smart.server))
    assert [o.code.coding[0].code for o in found] == ["8867-4"]  # only her own record
