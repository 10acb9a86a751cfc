"""The consent decision as a user of the FHIR API notices it: a truth table.

ARCHITECTURE.md "The policy layer" and docs/adr/0009: who may see a patient's Observation depends
on the requester's role and purpose of use (``X-DHR-Purpose-Of-Use``, TREAT by default), the care
relationship of their organisation (registration through ``Patient.generalPractitioner``, an
in-progress Encounter), the patient's Consents (https://hl7.org/fhir/R4/consent.html), security
labels (https://hl7.org/fhir/R4/security-labels.html), the joint controllers of the data (a
practice permits only direct care by default), the national data opt-out and break-glass
(``X-DHR-Break-Glass-Reason``, or a declaration in force). Each row builds one world on the
default-policy server and checks what the reader gets: a read is 200 or 404, and a search with
``_total=accurate`` lists the Observation (and counts it) or does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytest

from dhr.access import policy_support
from tests.dhr.consent.conftest import (
    ELSEWHERE,
    GP,
    HOSPITAL,
    MH,
    NHS_NUMBERS,
    RESOURCE_TYPES,
    World,
    ods_actor,
)

PURPOSE = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
SDS_ROLE = "https://fhir.nhs.uk/Id/sds-role-code"

Relationship = Literal["registered", "encounter", "finished-encounter", "none"]

# The patient's Consents the rows choose from: (scope, provision).
CONSENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "deny-all": ("patient-privacy", {"type": "deny"}),
    "deny-the-reader's-organisation": (
        "patient-privacy",
        {"type": "deny", "actor": [ods_actor(GP)]},
    ),
    "deny-another-organisation": (
        "patient-privacy",
        {"type": "deny", "actor": [ods_actor(ELSEWHERE)]},
    ),
    "deny-nurses": (
        "patient-privacy",
        {
            "type": "deny",
            "actor": [
                {
                    "role": {"coding": [{"system": SDS_ROLE, "code": "R8001"}]},
                    "reference": {"display": "any nurse"},
                }
            ],
        },
    ),
    "permit-all-but-observations": (
        "patient-privacy",
        {
            "type": "permit",
            "provision": [
                {"type": "deny", "class": [{"system": RESOURCE_TYPES, "code": "Observation"}]}
            ],
        },
    ),
    "permit-mental-health": ("patient-privacy", {"type": "permit", "securityLabel": [MH]}),
    "permit-all": ("patient-privacy", {"type": "permit"}),
    "research": (
        "research",
        {"type": "permit", "purpose": [{"system": PURPOSE, "code": "HRESCH"}]},
    ),
}


@dataclass(frozen=True)
class Row:
    """One world and one reader; ``sees``: whether the reader sees the Observation."""

    sees: bool
    relationship: Relationship = "registered"  # of the reader's organisation with the patient
    written_by: Literal["reader's organisation", "another organisation"] = "another organisation"
    consents: tuple[str, ...] = ()
    mental_health: bool = False  # the Observation is labelled MH
    opted_out: bool = False
    purpose: str | None = None  # X-DHR-Purpose-Of-Use
    reason: str | None = None  # X-DHR-Break-Glass-Reason
    roles: tuple[str, ...] = ("R8000",)
    declared_break_glass: bool = False  # a break-glass declaration of the reader in force
    writer_permits_research: bool = False  # the arrangement lets the writer permit research


ROWS: dict[str, Row] = {
    # direct care needs a care relationship (or the reader's own data)
    "registered practice sees what another organisation wrote": Row(True),
    "organisation with an in-progress encounter sees it": Row(True, "encounter"),
    "a finished encounter is no relationship": Row(False, "finished-encounter"),
    "no relationship sees nothing": Row(False, "none"),
    "no relationship, but the organisation wrote it, sees it": Row(
        True, "none", "reader's organisation"
    ),
    "a nurse of the registered practice sees it": Row(True, roles=("R8001",)),
    # the patient's Consent
    "deny-all consent hides it from the registered practice": Row(False, consents=("deny-all",)),
    "deny-all consent hides it even from the organisation that wrote it": Row(
        False, "none", "reader's organisation", ("deny-all",)
    ),
    "consent denying the reader's organisation hides it": Row(
        False, consents=("deny-the-reader's-organisation",)
    ),
    "consent denying another organisation leaves the reader alone": Row(
        True, consents=("deny-another-organisation",)
    ),
    "consent denying nurses hides it from a nurse": Row(
        False, consents=("deny-nurses",), roles=("R8001",)
    ),
    "consent denying nurses leaves a doctor alone": Row(True, consents=("deny-nurses",)),
    "permit with a nested deny of Observations hides Observations": Row(
        False, consents=("permit-all-but-observations",)
    ),
    "a research consent does not open direct care without a relationship": Row(
        False, "none", consents=("research",)
    ),
    # sensitive labels
    "mental-health data is hidden from the registered practice": Row(False, mental_health=True),
    "mental-health data is seen by the organisation that wrote it": Row(
        True, written_by="reader's organisation", mental_health=True
    ),
    "mental-health data is seen when the consent permits MH": Row(
        True, consents=("permit-mental-health",), mental_health=True
    ),
    "mental-health data is seen when the consent permits everything": Row(
        True, consents=("permit-all",), mental_health=True
    ),
    "a consent permitting MH does not replace the care relationship": Row(
        False, "none", consents=("permit-mental-health",), mental_health=True
    ),
    # the national data opt-out
    "the opt-out does not touch direct care": Row(True, opted_out=True),
    # secondary uses and the controllers
    "research on practice data without consent is denied": Row(False, "none", purpose="HRESCH"),
    "research on practice data with a research consent is permitted": Row(
        True, "none", consents=("research",), purpose="HRESCH"
    ),
    "a researcher's role implies research: denied without consent": Row(
        False, "none", roles=("researcher",)
    ),
    "a researcher's role implies research: permitted with a research consent": Row(
        True, "none", consents=("research",), roles=("researcher",)
    ),
    "research consent beats the opt-out": Row(
        True, "none", consents=("research",), opted_out=True, purpose="HRESCH"
    ),
    "research consent permits labelled data for research": Row(
        True, "none", consents=("research",), mental_health=True, purpose="HRESCH"
    ),
    "a deny-all privacy consent beats the research consent": Row(
        False, "none", consents=("research", "deny-all"), purpose="HRESCH"
    ),
    "a research consent does not open planning": Row(
        False, "none", consents=("research",), purpose="POPHLTH"
    ),
    "a permit-all privacy consent opens planning over practice data": Row(
        True, "none", consents=("permit-all",), purpose="POPHLTH"
    ),
    "research where the writer permits it is permitted without consent": Row(
        True, "none", purpose="HRESCH", writer_permits_research=True
    ),
    "research where the writer permits it is denied by the opt-out": Row(
        False, "none", opted_out=True, purpose="HRESCH", writer_permits_research=True
    ),
    "research where the writer permits it still hides mental-health data": Row(
        False, "none", mental_health=True, purpose="HRESCH", writer_permits_research=True
    ),
    "a registered practice may not do research on another practice's data": Row(
        False, purpose="HRESCH"
    ),
    # break-glass
    "break-glass opens it without a relationship": Row(
        True, "none", purpose="BTG", reason="collapsed in clinic"
    ),
    "a reason alone means break-glass": Row(True, "none", reason="collapsed in clinic"),
    "emergency treatment with a reason opens it": Row(
        True, "none", purpose="ETREAT", reason="anaphylaxis"
    ),
    "break-glass overrides a deny-all consent": Row(
        True, consents=("deny-all",), purpose="BTG", reason="collapsed in clinic"
    ),
    "break-glass opens mental-health data": Row(
        True, "none", mental_health=True, purpose="BTG", reason="collapsed in clinic"
    ),
    "a declared break-glass in force opens it": Row(True, "none", declared_break_glass=True),
    "a declared break-glass does not open research": Row(
        False, "none", purpose="HRESCH", declared_break_glass=True
    ),
}


def build(world: World, row: Row, subject: str) -> tuple[str, str]:
    """Write the row's world; (patient id, Observation id)."""
    reader_org = GP
    registered_with = reader_org if row.relationship == "registered" else ELSEWHERE
    nhs_number = NHS_NUMBERS[0]
    pid = world.patient(nhs_number, registered_with)
    if row.relationship in ("encounter", "finished-encounter"):
        status = "in-progress" if row.relationship == "encounter" else "finished"
        world.encounter(pid, reader_org, status)
    writer = reader_org if row.written_by == "reader's organisation" else HOSPITAL
    labels = (MH,) if row.mental_health else ()
    oid = world.observation(pid, writer, labels)
    for name in row.consents:
        scope, provision = CONSENTS[name]
        world.consent(pid, provision, scope)
    if row.opted_out:
        world.opt_out(nhs_number)
    if row.declared_break_glass:
        world.declare_break_glass(subject, pid, reader_org)
    if row.writer_permits_research:
        world.let_research(writer)
    return pid, oid


def headers(row: Row) -> dict[str, str]:
    found: dict[str, str] = {}
    if row.purpose is not None:
        found["X-DHR-Purpose-Of-Use"] = row.purpose
    if row.reason is not None:
        found["X-DHR-Break-Glass-Reason"] = row.reason
    return found


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_who_sees_the_observation(world: World, row: Row) -> None:
    subject = "dr-truth"
    pid, oid = build(world, row, subject)
    with world.reader(GP, row.roles, subject, headers(row)) as reader:
        read = reader.get(f"Observation/{oid}")
        assert read.status_code == (200 if row.sees else 404), read.text
        found = reader.get("Observation", params={"patient": pid, "_total": "accurate"})
        assert found.status_code == 200, found.text
        bundle = found.json()
        # no criterion to drive it: a bounded decision drives it by the rows it may permit
        # (dhr/access/policy_support.py), and must still find the Observation when it sees it
        unscoped = _search_ids(reader, {})
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert ids == ([oid] if row.sees else [])
    assert bundle["total"] == len(ids)
    assert unscoped == ids


def _search_ids(reader: Any, query: dict[str, str]) -> list[str]:
    found = reader.get("Observation", params={**query, "_total": "accurate"})
    assert found.status_code == 200, found.text
    bundle = found.json()
    ids = [e["resource"]["id"] for e in bundle.get("entry", [])]
    assert bundle["total"] == len(ids)
    return ids


def test_data_an_organisation_wrote_for_one_patient_opens_no_other_patients_record(
    world: World,
) -> None:
    """The originator rule is about the item itself: GP wrote for patient one, and has no
    relationship with patient two, whose Observation the hospital wrote."""
    one = world.patient(NHS_NUMBERS[0], ELSEWHERE)
    two = world.patient(NHS_NUMBERS[1], ELSEWHERE)
    own = world.observation(one, GP)
    theirs = world.observation(two, HOSPITAL)
    with world.reader(GP) as reader:
        assert reader.get(f"Observation/{own}").status_code == 200
        assert reader.get(f"Observation/{theirs}").status_code == 404
        assert _search_ids(reader, {"patient": two}) == []
        assert _search_ids(reader, {}) == [own]


def test_a_requester_with_more_patients_than_the_bound_is_judged_row_by_row_alike(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``policy_support.MAX_PATIENTS`` a search with no other criterion is not driven by
    the decision's rows (dhr/access/policy_support.py) but judges every row: same answers."""
    monkeypatch.setattr(policy_support, "MAX_PATIENTS", 0)
    mine = world.patient(NHS_NUMBERS[0], GP)
    other = world.patient(NHS_NUMBERS[1], ELSEWHERE)
    seen = world.observation(mine, HOSPITAL)
    own = world.observation(other, GP)
    world.observation(other, HOSPITAL)
    with world.reader(GP) as reader:
        assert sorted(_search_ids(reader, {})) == sorted([seen, own])


def test_a_label_on_one_observation_hides_only_that_observation(world: World) -> None:
    pid = world.patient(NHS_NUMBERS[0], GP)
    plain = world.observation(pid, HOSPITAL)
    labelled = world.observation(pid, HOSPITAL, (MH,))
    with world.reader(GP) as reader:
        assert reader.get(f"Observation/{plain}").status_code == 200
        assert reader.get(f"Observation/{labelled}").status_code == 404
        assert _search_ids(reader, {"patient": pid}) == [plain]


def test_has_does_not_reveal_an_observation_the_reader_may_not_see(world: World) -> None:
    """``_has`` (https://hl7.org/fhir/R4/search.html#has) only looks at what the reader sees."""
    pid = world.patient(NHS_NUMBERS[0], GP)
    hidden = world.observation(pid, HOSPITAL, (MH,))
    with world.reader(GP) as reader:
        assert reader.get(f"Observation/{hidden}").status_code == 404
        found = reader.get("Patient", params={"_has:Observation:subject:code": "8867-4"})
        assert found.status_code == 200, found.text
        assert found.json().get("entry", []) == []


def test_a_chain_through_a_hidden_patient_finds_nothing(world: World) -> None:
    """The registered practice sees its own Observation of a patient registered elsewhere, but
    not the Patient; a chained search on the Patient's name must not tell it who that is."""
    pid = world.patient(NHS_NUMBERS[0], ELSEWHERE)
    own = world.observation(pid, GP)
    with world.reader(GP) as reader:
        assert reader.get(f"Patient/{pid}").status_code == 404
        assert reader.get(f"Observation/{own}").status_code == 200
        found = reader.get("Observation", params={"subject:Patient.family": "Truth"})
        assert found.status_code == 200, found.text
        assert found.json().get("entry", []) == []


def test_an_observation_of_two_patients_is_seen_only_by_who_may_see_both(world: World) -> None:
    """A resource in two Patients' records (https://hl7.org/fhir/R4/compartmentdefinition-patient.html)
    is shown only when the decision permits it for each of them, however the second Patient is
    named: relatively, or by an absolute URL of this server."""
    mine = world.patient(NHS_NUMBERS[0], GP)
    other = world.patient(NHS_NUMBERS[1], ELSEWHERE)
    obs = world.observation(mine, HOSPITAL)
    assert world.server.base.startswith("http")

    def of_both(performer: str) -> str:
        body = world.writers[HOSPITAL].get(f"Observation/{obs}").json()
        body.pop("id")
        body.pop("meta")
        return world.write(HOSPITAL, {**body, "performer": [{"reference": performer}]})

    with_mine_twice = of_both(f"Patient/{mine}")
    relative = of_both(f"Patient/{other}")
    absolute = of_both(f"{world.server.base}/Patient/{other}")
    with world.reader(GP) as reader:
        for hidden in (relative, absolute):
            assert reader.get(f"Observation/{hidden}").status_code == 404
        assert reader.get(f"Observation/{with_mine_twice}").status_code == 200
        assert sorted(_search_ids(reader, {"patient": mine})) == sorted([obs, with_mine_twice])
        assert sorted(_search_ids(reader, {})) == sorted([obs, with_mine_twice])


def test_a_row_of_two_patients_both_in_the_readers_care_is_found_by_the_next_search(
    world: World,
) -> None:
    """A search of a type with no row of several patients leaves their branch of the decision
    out (ADR 0010 item 13); the first such row written is judged by the next search, not
    refused."""
    first, second = world.patient(NHS_NUMBERS[0], GP), world.patient(NHS_NUMBERS[1], GP)
    obs = world.observation(first, HOSPITAL)
    with world.reader(GP) as reader:
        assert _search_ids(reader, {}) == [obs]
        body = world.writers[HOSPITAL].get(f"Observation/{obs}").json()
        body.pop("id")
        body.pop("meta")
        both = world.write(HOSPITAL, {**body, "performer": [{"reference": f"Patient/{second}"}]})
        assert sorted(_search_ids(reader, {})) == sorted([obs, both])
        assert _search_ids(reader, {"performer": f"Patient/{second}"}) == [both]
        counted = reader.get("Observation", params={"_summary": "count"}).json()
        assert counted["total"] == 2


def test_a_transaction_finds_the_row_of_two_patients_it_wrote_itself(world: World) -> None:
    """Within one request, a search after the request wrote the type asks again whether rows of
    several patients exist: a conditional create finds the row of two patients an earlier entry
    of the same transaction created (https://hl7.org/fhir/R4/http.html#trules), after an
    earlier conditional create had searched the type when it had none."""
    first, second = world.patient(NHS_NUMBERS[0], GP), world.patient(NHS_NUMBERS[1], GP)
    system = "urn:example:obs"

    def entry(value: str, performer: str | None) -> dict[str, object]:
        body: dict[str, object] = {
            "resourceType": "Observation",
            "identifier": [{"system": system, "value": value}],
            "status": "final",
            "code": {"text": "pulse"},
            "subject": {"reference": f"Patient/{first}"},
        }
        if performer is not None:
            body["performer"] = [{"reference": performer}]
        return {
            "resource": body,
            "request": {
                "method": "POST",
                "url": "Observation",
                "ifNoneExist": f"identifier={system}|{value}",
            },
        }

    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry("one", None),
            entry("both", f"Patient/{second}"),
            entry("both", f"Patient/{second}"),
        ],
    }
    got = world.writers[HOSPITAL].post("", json=bundle)
    # found: two entries conditionally creating one resource is this server's 409 (not a copy)
    assert got.status_code == 409, got.text
    assert "created earlier in this same transaction" in got.text
