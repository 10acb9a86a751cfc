"""The decision point's combining rule as a truth table (consent.pdp): role x purpose x
relationship x consent x labels x controllers x opt-out x break-glass -> permit or deny."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consent.model import DataItem, Decision, Facts, Label, PatientConsent, Provision, Requester
from consent.pdp import decide
from consent.rules.sensitivity import ACT_CODE, CONFIDENTIALITY

PRACTICE, NATIONAL, PRIVATE, HOSPITAL = "A81001", "X24", "P99999", "RRK"
CONTROLLER_PURPOSES = {
    NATIONAL: frozenset({"TREAT", "ETREAT", "BTG", "POPHLTH", "HRESCH", "PATRQT"}),
    PRACTICE: frozenset({"TREAT", "ETREAT", "BTG", "PATRQT"}),
    HOSPITAL: frozenset({"TREAT", "ETREAT", "BTG", "PATRQT"}),
}
GP = Requester("gp", ("R8000",), PRACTICE, practitioner="Practitioner/gp-1")
RESEARCHER = Requester("res", ("researcher",), "R1A00", purpose="HRESCH")
MH = Label(ACT_CODE, "MH")
VERY = Label(CONFIDENTIALITY, "V")
OBS = DataItem("Observation", "p1", controllers=(PRACTICE, NATIONAL), date="2024-01-01")


def facts(**changes: object) -> Facts:
    base = Facts(
        relationship="registered",
        controller_purposes=CONTROLLER_PURPOSES,
        today="2026-11-25",
        national=NATIONAL,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def consent(provision: Provision, scope: str = "patient-privacy") -> PatientConsent:
    return PatientConsent("c1", scope, provision)


DENY_ALL = consent(Provision("deny"))
DENY_ALL_BUT_PRACTICE = consent(
    Provision("deny", provisions=(Provision("permit", actors=(f"org:{PRACTICE}",)),))
)
PERMIT_MH_TO_GP = consent(
    Provision(
        "permit", provisions=(Provision("permit", labels=(MH,), actors=("Practitioner/gp-1",)),)
    )
)
RESEARCH_YES = consent(Provision("permit", purposes=("HRESCH",)), scope="research")

ROWS: list[tuple[str, Requester, DataItem, Facts, str]] = [
    ("registered GP, no consent: permit", GP, OBS, facts(), "permit"),
    (
        "GP without a relationship, another organisation's data: deny",
        GP,
        replace(OBS, controllers=(HOSPITAL, NATIONAL)),
        facts(relationship=None),
        "deny",
    ),
    (
        "self-claimed relationship: permit, flagged",
        GP,
        OBS,
        facts(relationship="self-claimed"),
        "permit",
    ),
    ("patient's blanket deny beats the relationship", GP, OBS, facts(consents=(DENY_ALL,)), "deny"),
    (
        "deny all but my practice: my practice permitted",
        GP,
        OBS,
        facts(consents=(DENY_ALL_BUT_PRACTICE,)),
        "permit",
    ),
    (
        "deny all but my practice: another practice denied",
        replace(GP, organisation="B82005"),
        OBS,
        facts(consents=(DENY_ALL_BUT_PRACTICE,), relationship="encounter"),
        "deny",
    ),
    (
        "mental-health label hidden without consent",
        GP,
        replace(OBS, labels=frozenset({MH}), controllers=(HOSPITAL, NATIONAL)),
        facts(),
        "deny",
    ),
    (
        "the originating practice sees the mental-health data it recorded",
        GP,
        replace(OBS, labels=frozenset({MH})),
        facts(),
        "permit",
    ),
    (
        "the originating practice still sees its own data without a registration",
        GP,
        OBS,
        facts(relationship=None),
        "permit",
    ),
    (
        "the national controller is never an originator",
        replace(GP, organisation=NATIONAL),
        replace(OBS, controllers=(NATIONAL,)),
        facts(relationship=None),
        "deny",
    ),
    (
        "mental-health label shown when the patient permits this GP",
        GP,
        replace(OBS, labels=frozenset({MH})),
        facts(consents=(PERMIT_MH_TO_GP,)),
        "permit",
    ),
    (
        "for now a general permit consent also opens labelled data",
        GP,
        replace(OBS, labels=frozenset({VERY})),
        facts(consents=(PERMIT_MH_TO_GP,)),
        "permit",
    ),
    (
        "unlabelled data of a patient whose consent permits: permit",
        GP,
        OBS,
        facts(consents=(PERMIT_MH_TO_GP,)),
        "permit",
    ),
    ("researcher: the practice does not permit research", RESEARCHER, OBS, facts(), "deny"),
    (
        "researcher on national-only data: permit",
        RESEARCHER,
        replace(OBS, controllers=(NATIONAL,)),
        facts(),
        "permit",
    ),
    (
        "researcher with the patient's research consent: permit",
        RESEARCHER,
        OBS,
        facts(consents=(RESEARCH_YES,)),
        "permit",
    ),
    (
        "researcher, national-only data, opted out: deny",
        RESEARCHER,
        replace(OBS, controllers=(NATIONAL,)),
        facts(opted_out=True),
        "deny",
    ),
    (
        "research consent overrides the opt-out",
        RESEARCHER,
        replace(OBS, controllers=(NATIONAL,)),
        facts(opted_out=True, consents=(RESEARCH_YES,)),
        "permit",
    ),
    ("opt-out never applies to direct care", GP, OBS, facts(opted_out=True), "permit"),
    (
        "break-glass opens a blanket deny",
        replace(GP, purpose="BTG", break_glass_reason="collapsed"),
        OBS,
        facts(consents=(DENY_ALL,)),
        "permit",
    ),
    (
        "break-glass opens data without a relationship",
        replace(GP, purpose="ETREAT", break_glass_reason="A&E, unconscious"),
        OBS,
        facts(relationship=None),
        "permit",
    ),
    (
        "break-glass opens sensitive data",
        replace(GP, purpose="BTG", break_glass_reason="overdose"),
        replace(OBS, labels=frozenset({MH})),
        facts(),
        "permit",
    ),
    (
        "BTG without a reason is no break-glass",
        replace(GP, purpose="BTG"),
        OBS,
        facts(consents=(DENY_ALL,)),
        "deny",
    ),
    (
        "break-glass cannot open research",
        replace(RESEARCHER, break_glass_reason="urgent"),
        OBS,
        facts(),
        "deny",
    ),
    (
        "private provider: the practice withholds TREAT from it",
        replace(GP, organisation=PRIVATE),
        OBS,
        facts(controller_purposes={**CONTROLLER_PURPOSES, PRACTICE: frozenset()}),
        "deny",
    ),
    (
        "a patient sees their own record",
        Requester("olivia", ("patient",), patient="p1"),
        replace(OBS, labels=frozenset({MH})),
        facts(consents=(DENY_ALL,)),
        "permit",
    ),
    (
        "a patient never sees another's",
        Requester("olivia", ("patient",), patient="p2"),
        OBS,
        facts(),
        "deny",
    ),
    (
        "data of no patient: scopes decide",
        RESEARCHER,
        DataItem("Organization", None),
        facts(),
        "permit",
    ),
    ("unknown purpose: deny", replace(GP, purpose="MARKETING"), OBS, facts(), "deny"),
]


@pytest.mark.parametrize(
    ("requester", "item", "given", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_decision(requester: Requester, item: DataItem, given: Facts, expected: str) -> None:
    decision = decide(requester, item, given)
    assert decision.effect == expected, decision.reasons
    assert decision.reasons  # every decision says why


def test_break_glass_carries_its_obligations_and_reasons() -> None:
    glass = replace(GP, purpose="BTG", break_glass_reason="collapsed in clinic")
    decision: Decision = decide(glass, OBS, facts(consents=(DENY_ALL,)))
    assert decision.obligations == ("security-alert", "notify-patient", "privacy-officer-review")
    assert "collapsed in clinic" in decision.reasons[0]


def test_a_self_claimed_relationship_is_flagged_for_review() -> None:
    decision = decide(GP, OBS, facts(relationship="self-claimed"))
    assert decision.obligations == ("flag-for-review",)


def test_a_denial_names_every_reason() -> None:
    hospital_mh = replace(OBS, labels=frozenset({MH}), controllers=(HOSPITAL, NATIONAL))
    decision = decide(GP, hospital_mh, facts(relationship=None))
    assert decision.effect == "deny"
    assert len(decision.reasons) == 2
