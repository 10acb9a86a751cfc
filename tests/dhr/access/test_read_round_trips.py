"""A read under the consent policy costs one round trip on PostgreSQL: the resource, its decision
by the policy the same requester had last, and the request state (Consent and arrangement
generations, relationships, claims) that confirms that policy, in one statement (docs/adr/0010;
``RequestPolicy.read_confirming``)."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine

from dhr.access.system import cli_principal
from dhr.api.dispatch import Services, handle
from dhr.api.message import FhirRequest
from dhr.audit.sink import NullSink
from tests.conftest import LiveServer
from tests.dhr.store.test_unit_of_work import round_trips

JSON = {"content-type": "application/fhir+json"}


def test_a_read_under_consent_is_one_statement(
    policy_server: LiveServer, engine: Engine, engine_name: str
) -> None:
    if engine_name != "postgresql":
        pytest.skip("PostgreSQL round trips")
    settings = policy_server.settings.model_copy(update={"audit_enabled": False})
    services = Services(settings, engine, NullSink())
    practice = cli_principal("test", organisation="B00099")

    def post(body: dict[str, object]) -> str:
        resp = handle(
            services,
            FhirRequest("POST", str(body["resourceType"]), headers=JSON, body=orjson.dumps(body)),
            practice,
        )
        assert resp.status == 201
        return resp.headers["Location"].split("/fhir/")[1].split("/_history")[0]

    patient = post({"resourceType": "Patient", "name": [{"family": "Trips"}]})
    observation = post(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "pulse"},
            "subject": {"reference": patient},
        }
    )
    read = FhirRequest("GET", observation)
    for _ in range(3):  # compile the policy, prepare the statements on the pooled connections
        assert handle(services, read, practice).status == 200
    with round_trips(engine) as trips:
        resp = handle(services, read, practice)
    assert resp.status == 200
    assert orjson.loads(resp.body or b"{}")["id"] == observation.split("/")[1]
    assert trips == [1]
