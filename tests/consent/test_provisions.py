"""The patient's Consents as a truth table (consent.provisions): real FHIR R4 Consent JSON,
parsed, then evaluated for a requester, a data item and an action on a day -> permit, deny or no
say. https://hl7.org/fhir/R4/consent.html#Consent.provision"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from consent.model import DataItem, Effect, Label, PatientConsent, Period, Provision, Requester
from consent.provisions import (
    CONSENT_SCOPE,
    ODS_SYSTEM,
    SDS_ROLE_SYSTEM,
    actor_keys,
    evaluate,
    evaluate_consents,
    parse_consent,
)

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
TODAY = "2026-11-25"
PRACTICE, OTHER = "A81001", "B82005"
MH = Label(ACT_CODE, "MH")

GP = Requester("gp", ("R8000",), PRACTICE, practitioner="Practitioner/gp-1")
OTHER_GP = Requester("gp2", ("R8000",), OTHER, practitioner="Practitioner/gp-2")
NURSE = Requester("nurse", ("R8001",), PRACTICE, practitioner="Practitioner/nurse-1")
RESEARCHER = replace(GP, purpose="HRESCH")
OBS = DataItem("Observation", "p1", date="2024-01-01", res_id="o1")
OBS_MH = replace(OBS, labels=frozenset({MH}))
COND = DataItem("Condition", "p1", date="2015-06-01", res_id="c1")
UNDATED = DataItem("Condition", "p1", res_id="c2")


# --- Consent JSON builders ---------------------------------------------------------------------


def consent_json(
    provision: dict[str, Any],
    scope: str = "patient-privacy",
    status: str = "active",
    cid: str = "c1",
) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "id": cid,
        "status": status,
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1"},
        "provision": provision,
    }


def ods(code: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
        "reference": {"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": code}},
    }


def who(reference: str) -> dict[str, Any]:
    return {
        "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
        "reference": {"reference": reference},
    }


def sds_role(code: str) -> dict[str, Any]:
    return {"role": {"coding": [{"system": SDS_ROLE_SYSTEM, "code": code}]}, "reference": {}}


def klass(*types: str) -> list[dict[str, Any]]:
    return [{"system": RESOURCE_TYPES, "code": t} for t in types]


def purpose(*codes: str) -> list[dict[str, Any]]:
    return [{"system": ACT_REASON, "code": c} for c in codes]


def action(*codes: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CONSENT_ACTION, "code": c}]} for c in codes]


def label(code: str) -> list[dict[str, Any]]:
    return [{"system": ACT_CODE, "code": code}]


OPT_OUT = consent_json(
    {"type": "deny", "provision": [{"type": "permit", "actor": [ods(PRACTICE)]}]}
)
OPT_IN_BUT_MH = consent_json({"type": "permit", "provision": [{"securityLabel": label("MH")}]})
OPT_IN_BUT_CONDITIONS = consent_json({"provision": [{"type": "deny", "class": klass("Condition")}]})
OPT_IN_BUT_GP2 = consent_json(
    {"type": "permit", "provision": [{"type": "deny", "actor": [who("Practitioner/gp-2")]}]}
)
OPT_IN_BUT_RESEARCH = consent_json(
    {"type": "permit", "provision": [{"type": "deny", "purpose": purpose("HRESCH")}]}
)
OPT_IN_BUT_OLD_DATA = consent_json(
    {"type": "permit", "provision": [{"type": "deny", "dataPeriod": {"end": "2019-12-31"}}]}
)
OPT_IN_BUT_NURSES = consent_json(
    {"type": "permit", "provision": [{"type": "deny", "actor": [sds_role("R8001")]}]}
)
# deny everyone > permit my practice > deny my practice mental-health data
THREE_LEVELS = consent_json(
    {
        "type": "deny",
        "provision": [
            {
                "type": "permit",
                "actor": [ods(PRACTICE)],
                "provision": [{"type": "deny", "securityLabel": label("MH")}],
            }
        ],
    }
)
# permit all > {permit my practice, deny Observations}: both siblings apply to a GP's Observation
SIBLINGS = consent_json(
    {
        "type": "permit",
        "provision": [
            {"type": "permit", "actor": [ods(PRACTICE)]},
            {"type": "deny", "class": klass("Observation")},
        ],
    }
)
NOT_YET = consent_json({"type": "deny", "period": {"start": "2027-01-01"}})
EXPIRED = consent_json({"type": "deny", "period": {"start": "2020-01-01", "end": "2026-11-24"}})
ENDS_TODAY = consent_json({"type": "deny", "period": {"end": "2026-11-25T23:59:59Z"}})
INACTIVE = consent_json({"type": "deny"}, status="inactive")
DRAFT = consent_json({"type": "deny"}, status="draft")
RESEARCH_NO = consent_json({"type": "deny", "purpose": purpose("HRESCH")}, scope="research")
RESEARCH_YES = consent_json({"type": "permit", "purpose": purpose("HRESCH")}, scope="research")
ADR = consent_json({"type": "deny"}, scope="adr")
ACCESS_ONLY = consent_json(
    {"type": "deny", "provision": [{"type": "permit", "action": action("access")}]}
)
ONE_RESOURCE = consent_json(
    {
        "type": "permit",
        "provision": [
            {
                "type": "deny",
                "data": [{"meaning": "instance", "reference": {"reference": "Observation/o1"}}],
            }
        ],
    }
)
BY_CODE = consent_json(
    {
        "type": "permit",
        "provision": [
            {
                "type": "deny",
                "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}],
            }
        ],
    }
)
# malformed parts: a bad actor on a permit must not open the record to everyone
BAD_ACTOR_PERMIT = consent_json(
    {"type": "deny", "provision": [{"type": "permit", "actor": [{"reference": 7}, "nonsense"]}]}
)
# ... and a bad actor on a deny makes the deny cover everyone (fails closed)
BAD_ACTOR_DENY = consent_json(
    {"type": "permit", "provision": [{"type": "deny", "actor": [{"role": "x"}]}]}
)
JUNK_CHILDREN = consent_json(
    {
        "type": "deny",
        "period": "always",
        "provision": ["junk", 3, None, {"type": "permit", "actor": [ods(PRACTICE), 5]}],
        "class": "Observation",
    }
)
BAD_TYPE = consent_json({"type": "maybe", "provision": {"not": "a list"}})
NO_PROVISION = consent_json({"type": "permit"}) | {"provision": "everything"}

ROWS: list[tuple[str, list[dict[str, Any]], Requester, DataItem, str, Effect | None]] = [
    ("no consent: no say", [], GP, OBS, "access", None),
    ("opt-out: my practice is the exception, permitted", [OPT_OUT], GP, OBS, "access", "permit"),
    ("opt-out: another practice denied", [OPT_OUT], OTHER_GP, OBS, "access", "deny"),
    ("opt-in but MH: GP sees plain data", [OPT_IN_BUT_MH], GP, OBS, "access", "permit"),
    ("opt-in but MH: MH-labelled data denied", [OPT_IN_BUT_MH], GP, OBS_MH, "access", "deny"),
    (
        "opt-in but Conditions (root without type = permit): Observation permitted",
        [OPT_IN_BUT_CONDITIONS],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "opt-in but Conditions: Condition denied",
        [OPT_IN_BUT_CONDITIONS],
        GP,
        COND,
        "access",
        "deny",
    ),
    ("opt-in but GP2: GP1 permitted", [OPT_IN_BUT_GP2], GP, OBS, "access", "permit"),
    ("opt-in but GP2: GP2 denied", [OPT_IN_BUT_GP2], OTHER_GP, OBS, "access", "deny"),
    (
        "opt-in but research: direct care permitted",
        [OPT_IN_BUT_RESEARCH],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "opt-in but research: HRESCH denied",
        [OPT_IN_BUT_RESEARCH],
        RESEARCHER,
        OBS,
        "access",
        "deny",
    ),
    (
        "opt-in but data before 2020: 2024 data permitted",
        [OPT_IN_BUT_OLD_DATA],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "opt-in but data before 2020: 2015 data denied",
        [OPT_IN_BUT_OLD_DATA],
        GP,
        COND,
        "access",
        "deny",
    ),
    (
        "opt-in but data before 2020: undated data not covered, permitted",
        [OPT_IN_BUT_OLD_DATA],
        GP,
        UNDATED,
        "access",
        "permit",
    ),
    (
        "opt-in but SDS role R8001: a GP (R8000) permitted",
        [OPT_IN_BUT_NURSES],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "opt-in but SDS role R8001: a nurse denied",
        [OPT_IN_BUT_NURSES],
        NURSE,
        OBS,
        "access",
        "deny",
    ),
    (
        "three levels: my practice's plain data permitted",
        [THREE_LEVELS],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "three levels: my practice's MH data denied (deepest decides)",
        [THREE_LEVELS],
        GP,
        OBS_MH,
        "access",
        "deny",
    ),
    (
        "three levels: another practice denied at the root",
        [THREE_LEVELS],
        OTHER_GP,
        OBS,
        "access",
        "deny",
    ),
    ("overlapping siblings: deny wins over permit", [SIBLINGS], GP, OBS, "access", "deny"),
    (
        "overlapping siblings: only the permit applies to a Condition",
        [SIBLINGS],
        GP,
        COND,
        "access",
        "permit",
    ),
    ("period not yet started: consent not in force, no say", [NOT_YET], GP, OBS, "access", None),
    ("period expired yesterday: no say", [EXPIRED], GP, OBS, "access", None),
    (
        "period ending today (dateTime) still in force: deny",
        [ENDS_TODAY],
        GP,
        OBS,
        "access",
        "deny",
    ),
    ("inactive consent ignored", [INACTIVE], GP, OBS, "access", None),
    ("draft consent ignored", [DRAFT], GP, OBS, "access", None),
    ("unknown scope (adr) ignored", [ADR], GP, OBS, "access", None),
    ("research refusal ignored for direct care", [RESEARCH_NO], GP, OBS, "access", None),
    ("research refusal applies to HRESCH", [RESEARCH_NO], RESEARCHER, OBS, "access", "deny"),
    ("research permission ignored for direct care", [RESEARCH_YES], GP, OBS, "access", None),
    ("research permission applies to HRESCH", [RESEARCH_YES], RESEARCHER, OBS, "access", "permit"),
    (
        "privacy permit + research refusal, HRESCH: deny wins across consents",
        [OPT_IN_BUT_MH, RESEARCH_NO],
        RESEARCHER,
        OBS,
        "access",
        "deny",
    ),
    (
        "opt-out + privacy permit: any deny across consents denies",
        [OPT_OUT, consent_json({"type": "permit"}, cid="c2")],
        OTHER_GP,
        OBS,
        "access",
        "deny",
    ),
    ("access-only exception: access permitted", [ACCESS_ONLY], GP, OBS, "access", "permit"),
    ("access-only exception: disclose denied", [ACCESS_ONLY], GP, OBS, "disclose", "deny"),
    ("one resource withheld: that Observation denied", [ONE_RESOURCE], GP, OBS, "access", "deny"),
    (
        "one resource withheld: another Observation permitted",
        [ONE_RESOURCE],
        GP,
        replace(OBS, res_id="o2"),
        "access",
        "permit",
    ),
    (
        "provision by code never applies to data without a code: permitted",
        [BY_CODE],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "malformed actor on a permit: matches no one, denied",
        [BAD_ACTOR_PERMIT],
        GP,
        OBS,
        "access",
        "deny",
    ),
    (
        "malformed actor on a deny: covers everyone, denied",
        [BAD_ACTOR_DENY],
        GP,
        OBS,
        "access",
        "deny",
    ),
    (
        "junk children ignored; a bad class on a deny root is dropped (deny covers more)",
        [JUNK_CHILDREN],
        GP,
        COND,
        "access",
        "permit",
    ),
    (
        "junk children: other practice still denied",
        [JUNK_CHILDREN],
        OTHER_GP,
        COND,
        "access",
        "deny",
    ),
    (
        "invalid type on the root reads as permit; non-list provision ignored",
        [BAD_TYPE],
        GP,
        OBS,
        "access",
        "permit",
    ),
    (
        "non-object provision: a permit root with no conditions",
        [NO_PROVISION],
        GP,
        OBS,
        "access",
        "permit",
    ),
]


@pytest.mark.parametrize(
    ("resources", "requester", "item", "act", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_truth_table(
    resources: list[dict[str, Any]],
    requester: Requester,
    item: DataItem,
    act: str,
    expected: Effect | None,
) -> None:
    consents = [c for r in resources if (c := parse_consent(r)) is not None]
    effect, reason = evaluate_consents(consents, requester, item, act, TODAY)
    assert effect == expected, reason
    assert reason


# --- parsing -----------------------------------------------------------------------------------


def test_parse_opt_out_consent() -> None:
    assert parse_consent(OPT_OUT) == PatientConsent(
        "c1",
        "patient-privacy",
        Provision("deny", provisions=(Provision("permit", actors=(f"org:{PRACTICE}",)),)),
    )


def test_parse_every_condition() -> None:
    resource = consent_json(
        {
            "type": "permit",
            "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "actor": [
                ods(PRACTICE),
                who("Practitioner/gp-1"),
                who("Organization/org-9"),
                who("Patient/p1"),
                sds_role("R8000"),
                {"role": {"coding": [{"system": "urn:other", "code": "R8003"}]}},
            ],
            "action": action("access", "use"),
            "purpose": purpose("TREAT"),
            "class": klass("Observation", "Condition"),
            "code": [{"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}],
            "securityLabel": label("MH"),
            "dataPeriod": {"start": "2020-01-01"},
            "data": [{"meaning": "instance", "reference": {"reference": "Observation/o1"}}],
        },
        scope="research",
    )
    consent = parse_consent(resource)
    assert consent is not None
    assert consent.scope == "research"
    assert consent.period == Period("2026-01-01", "2026-12-31")
    assert consent.provision == Provision(
        "permit",
        actors=(
            f"org:{PRACTICE}",
            "Practitioner/gp-1",
            "Organization/org-9",
            "role:R8000",
            "role:R8003",
        ),
        actions=("access", "use"),
        purposes=("TREAT",),
        classes=("Observation", "Condition"),
        codes=("http://snomed.info/sct|35489007",),
        labels=(MH,),
        period=Period("2026-01-01", "2026-12-31"),
        data_period=Period("2020-01-01", None),
        data=("Observation/o1",),
    )


def test_a_nested_provision_without_type_is_the_opposite_of_its_parent() -> None:
    consent = parse_consent(
        consent_json({"type": "deny", "provision": [{"provision": [{"actor": [ods(OTHER)]}]}]})
    )
    assert consent is not None
    child = consent.provision.provisions[0]
    assert (consent.provision.effect, child.effect, child.provisions[0].effect) == (
        "deny",
        "permit",
        "deny",
    )


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(INACTIVE, id="inactive"),
        pytest.param(ADR, id="scope adr"),
        pytest.param(consent_json({}) | {"scope": "patient-privacy"}, id="scope not a concept"),
        pytest.param({"resourceType": "Patient", "status": "active"}, id="not a Consent"),
        pytest.param({}, id="empty"),
    ],
)
def test_parse_ignores(resource: dict[str, Any]) -> None:
    assert parse_consent(resource) is None


# --- evaluation --------------------------------------------------------------------------------


def test_actor_keys() -> None:
    assert actor_keys(GP) == {f"org:{PRACTICE}", "Practitioner/gp-1", "role:R8000"}
    assert actor_keys(Requester("app")) == frozenset()


def test_the_reason_names_the_deciding_provision() -> None:
    consent = parse_consent(THREE_LEVELS)
    assert consent is not None
    effect, reason = evaluate(consent.provision, GP, OBS_MH, "access", TODAY)
    assert effect == "deny"
    assert reason == "Consent provision 1.1.1 (deny: label MH)"
    effect, reason = evaluate(consent.provision, GP, OBS, "access", TODAY)
    assert (effect, reason) == ("permit", f"Consent provision 1.1 (permit: actor org:{PRACTICE})")


def test_a_provision_that_does_not_apply_says_why() -> None:
    provision = Provision("deny", classes=("Condition",))
    assert evaluate(provision, GP, OBS, "access", TODAY) == (
        None,
        "Consent provision 1 (deny: class Condition) does not apply: "
        "Observation is not one of its classes",
    )


def test_evaluate_consents_names_the_consent() -> None:
    consent = parse_consent(SIBLINGS)
    assert consent is not None
    assert evaluate_consents([consent], GP, OBS, "access", TODAY) == (
        "deny",
        "Consent/c1: Consent provision 1.2 (deny: class Observation)",
    )
