"""``POST Patient/[id]/$break-glass`` (dhr.operations.break_glass), over real HTTP with real
tokens against the default-policy server (a care relationship is needed): a clinician of an
organisation that does not care for the patient cannot see the record until they declare
break-glass with a reason; while the declaration is in force the record opens to them alone,
each access is a security alert with purpose BTG, and the patient sees it in ``$access-log``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, update

from dhr.fhir.instant import now_micros
from dhr.store.policy_store import CLAIM
from tests.conftest import LiveServer
from tests.helpers import TokenIssuer, assert_outcome, bearer, created_id, observation

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SECURITY_ALERT = "110113"
HOME_PRACTICE = "A81001"
ELSEWHERE = "B82005"


@dataclass(frozen=True)
class Record:
    patient: str
    observation: str


def registered_patient(writer: httpx.Client, practice: str = HOME_PRACTICE) -> Record:
    """A patient registered at ``practice`` with one Observation (written by the test org)."""
    org = writer.post(
        "Organization",
        json={"resourceType": "Organization", "identifier": [{"system": ODS, "value": practice}]},
    )
    assert org.status_code == 201, org.text
    made = writer.post(
        "Patient",
        json={
            "resourceType": "Patient",
            "name": [{"family": "Glass"}],
            "generalPractitioner": [{"reference": f"Organization/{created_id(org)}"}],
        },
    )
    assert made.status_code == 201, made.text
    pid = created_id(made)
    obs = writer.post("Observation", json=observation(f"Patient/{pid}"))
    assert obs.status_code == 201, obs.text
    return Record(pid, created_id(obs))


def user_client(
    server: LiveServer,
    *,
    subject: str,
    roles: tuple[str, ...] = ("R8000",),
    organisation: str | None = ELSEWHERE,
    scope: str = "user/*.rs",
    patient: str | None = None,
) -> httpx.Client:
    """An HTTP client carrying a token the server minted for a user."""
    issue = TokenIssuer(server.app.state.auth)
    fhir_user = f"Patient/{patient}" if "patient" in roles else f"Practitioner/{subject}"
    token = issue(
        scope,
        subject=subject,
        roles=roles,
        organisation=organisation,
        fhir_user=fhir_user,
        patient=patient,
    )
    return httpx.Client(base_url=server.base + "/", timeout=30, headers=bearer(token))


def as_the_patient(server: LiveServer, patient: str) -> httpx.Client:
    """The patient themselves, with a ``patient/*.rs`` token for their own record."""
    return user_client(
        server,
        subject="the-patient",
        roles=("patient",),
        organisation=None,
        scope="patient/*.rs",
        patient=patient,
    )


def access_entries(log: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``access`` entries of a ``$access-log`` answer, each as ``{part name: value}``."""
    return [
        {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in a["part"]}
        for a in log["parameter"]
        if a["name"] == "access"
    ]


def declare(
    http: httpx.Client, patient: str, operation: str = "break-glass", **values: Any
) -> httpx.Response:
    parts = []
    for name, value in values.items():
        key = {"purpose": "valueCode", "minutes": "valueInteger"}.get(name, "valueString")
        parts.append({"name": name, key: value})
    return http.post(
        f"Patient/{patient}/${operation}", json={"resourceType": "Parameters", "parameter": parts}
    )


def parameter(body: dict[str, Any], name: str) -> Any:
    part = next(p for p in body["parameter"] if p["name"] == name)
    return next(v for k, v in part.items() if k.startswith("value"))


def expire_claims(engine: Engine, subject: str) -> None:
    """Let ``subject``'s declarations lapse (as if their minutes had passed)."""
    with engine.begin() as conn:
        conn.execute(update(CLAIM).where(CLAIM.c.subject == subject).values(expires=now_micros()))


def audit_events(auditor: httpx.Client, query: str) -> list[dict[str, Any]]:
    found = auditor.get(f"AuditEvent?{query}&_count=100")
    assert found.status_code == 200, found.text
    return [e["resource"] for e in found.json().get("entry", [])]


def subtype_codes(event: dict[str, Any]) -> set[str]:
    return {c["code"] for c in event["subtype"]}


def purposes(event: dict[str, Any]) -> set[str]:
    return {p["coding"][0]["code"] for p in event.get("purposeOfEvent", [])}


@pytest.fixture
def record(policy_client: httpx.Client) -> Record:
    return registered_patient(policy_client)


@pytest.fixture
def clinician(policy_server: LiveServer) -> Iterator[httpx.Client]:
    """A Clinical Practitioner of an organisation that does not care for the patient."""
    with user_client(policy_server, subject="dr-emergency") as http:
        yield http


def test_break_glass_opens_the_record_to_the_declarer_until_it_expires(
    policy_server: LiveServer,
    policy_client: httpx.Client,
    engine: Engine,
    record: Record,
    clinician: httpx.Client,
) -> None:
    obs = f"Observation/{record.observation}"
    search = f"Observation?patient=Patient/{record.patient}"
    assert_outcome(clinician.get(obs), 404)
    assert clinician.get(search).json().get("total") == 0

    declared = declare(clinician, record.patient, reason="unconscious in A&E, no history")
    assert declared.status_code == 200, declared.text
    body = declared.json()
    assert parameter(body, "purpose") == "BTG"
    assert parameter(body, "reason") == "unconscious in A&E, no history"
    assert parameter(body, "patient") == {"reference": f"Patient/{record.patient}"}
    assert parameter(body, "claim")
    assert parameter(body, "expires").endswith("Z")

    read = clinician.get(obs)
    assert read.status_code == 200, read.text
    found = clinician.get(search).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [record.observation]

    with user_client(policy_server, subject="dr-bystander") as other:
        assert_outcome(other.get(obs), 404)

    expire_claims(engine, "dr-emergency")
    assert_outcome(clinician.get(obs), 404)
    assert clinician.get(search).json().get("total") == 0


def test_accesses_opened_by_break_glass_are_security_alerts_with_purpose_btg(
    policy_client: httpx.Client, record: Record, clinician: httpx.Client
) -> None:
    assert declare(clinician, record.patient, reason="anaphylaxis").status_code == 200
    assert clinician.get(f"Observation/{record.observation}").status_code == 200

    events = audit_events(policy_client, f"patient={record.patient}&agent=dr-emergency")
    by_subtype = {code: e for e in events for code in subtype_codes(e)}
    declaration, read = by_subtype["break-glass"], by_subtype["read"]
    for event in (declaration, read):
        assert SECURITY_ALERT in subtype_codes(event)
        assert "BTG" in purposes(event)
        assert {"reference": f"Patient/{record.patient}"} in [e["what"] for e in event["entity"]]
    assert {"reference": f"Observation/{record.observation}"} in [e["what"] for e in read["entity"]]


def test_etreat_is_recorded_as_the_purpose_and_still_alerts(
    policy_client: httpx.Client, record: Record, clinician: httpx.Client
) -> None:
    declared = declare(clinician, record.patient, reason="stroke call", purpose="ETREAT")
    assert declared.status_code == 200, declared.text
    assert parameter(declared.json(), "purpose") == "ETREAT"
    [event] = audit_events(policy_client, f"patient={record.patient}&agent=dr-emergency")
    assert SECURITY_ALERT in subtype_codes(event)
    assert {"ETREAT", "BTG"} <= purposes(event)


def test_the_patient_sees_the_declaration_and_the_accesses_it_opened(
    policy_server: LiveServer, record: Record, clinician: httpx.Client
) -> None:
    assert declare(clinician, record.patient, reason="found collapsed").status_code == 200
    assert clinician.get(f"Observation/{record.observation}").status_code == 200

    with as_the_patient(policy_server, record.patient) as me:
        log = me.get(f"Patient/{record.patient}/$access-log")
    assert log.status_code == 200, log.text
    entries = access_entries(log.json())
    declared = next(e for e in entries if "break-glass" in e["action"])
    assert declared["action"] == "declared emergency access (break-glass)"
    assert declared["reason"] == "found collapsed"
    assert declared["breakGlass"] is True
    assert declared["organisation"] == ELSEWHERE
    assert declared["until"] > declared["when"]
    assert declared["data"] == "your whole record"
    looked = next(e for e in entries if e["data"] == "observations")
    assert looked["action"] == "looked at"
    assert looked["breakGlass"] is True
    assert looked["purpose"] == "emergency access (break-glass)"


def test_a_reason_is_required(record: Record, clinician: httpx.Client) -> None:
    assert_outcome(declare(clinician, record.patient), 400, code="invalid")
    assert_outcome(declare(clinician, record.patient, reason="   "), 400, code="invalid")
    assert_outcome(clinician.get(f"Observation/{record.observation}"), 404)


@pytest.mark.parametrize(
    "values",
    [
        {"reason": "x", "minutes": 0},
        {"reason": "x", "minutes": 241},
        {"reason": "x", "minutes": "60"},
        {"reason": "x", "purpose": "TREAT"},
        {"reason": "x", "reasons": "typo"},
    ],
    ids=["no-minutes", "over-four-hours", "minutes-as-text", "not-break-glass", "unknown-name"],
)
def test_bad_parameters_are_400(
    record: Record, clinician: httpx.Client, values: dict[str, Any]
) -> None:
    assert_outcome(declare(clinician, record.patient, **values), 400, code="invalid")


def test_a_body_that_is_not_parameters_is_400(record: Record, clinician: httpx.Client) -> None:
    got = clinician.post(f"Patient/{record.patient}/$break-glass", json={"resourceType": "Basic"})
    assert_outcome(got, 400)


def test_an_unknown_patient_is_404(clinician: httpx.Client, policy_server: LiveServer) -> None:
    assert_outcome(declare(clinician, "no-such-patient", reason="x"), 404, code="not-found")


@pytest.mark.parametrize(
    ("roles", "organisation", "scope"),
    [
        (("patient",), None, "patient/*.rs"),
        (("R8008",), ELSEWHERE, "user/Patient.rs"),
        (("R0001",), ELSEWHERE, "user/Patient.rs"),
        (("researcher",), None, "user/*.rs"),
    ],
    ids=["patient", "admin-staff", "privacy-officer", "researcher"],
)
def test_only_staff_giving_direct_care_may_break_glass(
    policy_server: LiveServer,
    record: Record,
    roles: tuple[str, ...],
    organisation: str | None,
    scope: str,
) -> None:
    patient = record.patient if "patient" in roles else None
    with user_client(
        policy_server,
        subject="not-a-clinician",
        roles=roles,
        organisation=organisation,
        scope=scope,
        patient=patient,
    ) as http:
        assert_outcome(declare(http, record.patient, reason="x"), 403, code="forbidden")


def test_a_system_client_without_a_user_may_not_break_glass(
    policy_client: httpx.Client, record: Record
) -> None:
    assert_outcome(declare(policy_client, record.patient, reason="x"), 403, code="forbidden")


def test_break_glass_takes_post_and_is_in_the_capability_statement(
    policy_client: httpx.Client, record: Record
) -> None:
    assert_outcome(policy_client.get(f"Patient/{record.patient}/$break-glass"), 405)
    meta = policy_client.get("metadata").json()
    patient = next(r for r in meta["rest"][0]["resource"] if r["type"] == "Patient")
    names = {op["name"] for op in patient["operation"]}
    assert {"break-glass", "claim-relationship"} <= names
