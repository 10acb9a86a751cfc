"""The compiled decision (consent.compile) agrees with the decision point (consent.pdp.decide).

The central property: for any requester, joint-controller arrangement, day, Consents of the
patient, patient facts (care relationship, national data opt-out, break-glass declaration) and
data, the formula ``policy(requester, arrangement, today, consents)`` permits the data exactly
when ``decide`` does. Then a few cases of the same, written out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from consent.compile import permits, policy, provision_result, refusing
from consent.formula import FALSE, TRUE, Formula, GlassBroken, PatientFacts, PatientIs, holds
from consent.model import (
    Arrangement,
    DataItem,
    Facts,
    Label,
    PatientConsent,
    Period,
    Provision,
    Requester,
)
from consent.pdp import decide
from consent.provisions import evaluate
from consent.rules.controller_agreement import controller_agreement
from consent.rules.sensitivity import ACT_CODE
from tests.consent import strategies as s

PROPERTY = settings(max_examples=500, derandomize=True, deadline=None, database=None)
RULES = settings(max_examples=800, derandomize=True, deadline=None, database=None)
HELPER = settings(max_examples=200, derandomize=True, deadline=None, database=None)


def facts_for(
    arrangement: Arrangement,
    today: str,
    consents: Sequence[PatientConsent],
    relationship: str | None,
    opted_out: bool,
    glass_broken: bool,
    item: DataItem,
) -> Facts:
    """The facts ``decide`` reads, as the server would establish them for ``item``."""
    return Facts(
        consents=tuple(consents),
        relationship=relationship,
        opted_out=opted_out,
        controller_purposes={ods: arrangement.purposes_of(ods) for ods in item.controllers},
        today=today,
        national=arrangement.national,
        glass_broken=glass_broken,
    )


def assert_agrees(
    requester: Requester,
    arrangement: Arrangement,
    today: str,
    consents: Sequence[PatientConsent],
    relationship: str | None,
    opted_out: bool,
    glass_broken: bool,
    item: DataItem,
) -> None:
    """The compiled policy permits ``item`` exactly when ``decide`` does (every kind of care
    relationship, "self-claimed" included, is a relationship: :class:`Related`)."""
    formula = policy(requester, arrangement, today, consents)
    patient = PatientFacts(relationship is not None, opted_out, glass_broken)
    facts = facts_for(arrangement, today, consents, relationship, opted_out, glass_broken, item)
    decision = decide(requester, item, facts)
    assert permits(formula, item, patient) == decision.permitted, decision.reasons


# --- the central property ----------------------------------------------------------------------


@PROPERTY
@given(
    requester=s.requesters(),
    arrangement=s.arrangements,
    today=s.today,
    consents=st.lists(s.consents, max_size=3),
    relationship=s.relationships,
    opted_out=st.booleans(),
    glass_broken=s.glass_broken,
    item=s.items(),
)
def test_the_compiled_policy_permits_exactly_what_decide_permits(
    requester: Requester,
    arrangement: Arrangement,
    today: str,
    consents: list[PatientConsent],
    relationship: str | None,
    opted_out: bool,
    glass_broken: bool,
    item: DataItem,
) -> None:
    assert_agrees(
        requester, arrangement, today, consents, relationship, opted_out, glass_broken, item
    )


@RULES
@given(
    requester=s.requesters(),
    arrangement=s.arrangements,
    today=s.today,
    consents=s.catalogue_consents,
    relationship=s.relationships,
    opted_out=st.booleans(),
    glass_broken=s.glass_broken,
    item=s.items(),
)
def test_the_same_holds_for_many_more_requests_under_typical_consents(
    requester: Requester,
    arrangement: Arrangement,
    today: str,
    consents: list[PatientConsent],
    relationship: str | None,
    opted_out: bool,
    glass_broken: bool,
    item: DataItem,
) -> None:
    """The rule families and how they combine, over more requests (cheaper Consents)."""
    assert_agrees(
        requester, arrangement, today, consents, relationship, opted_out, glass_broken, item
    )


# --- the parts, each against its counterpart in decide (to localise a disagreement) -------------


def _effect(deny: Formula, permit: Formula, item: DataItem) -> str | None:
    no_facts = PatientFacts()
    if holds(deny, item, no_facts):
        assert not holds(permit, item, no_facts), "a provision both denies and permits"
        return "deny"
    return "permit" if holds(permit, item, no_facts) else None


@HELPER
@given(
    provision=s.provisions(),
    requester=s.requesters(),
    item=s.items(),
    action=st.sampled_from(s.ACTIONS),
    today=s.today,
)
def test_a_compiled_provision_tree_gives_the_effect_evaluate_gives(
    provision: Provision, requester: Requester, item: DataItem, action: str, today: str
) -> None:
    deny, permit = provision_result(provision, requester, action, today)
    expected, _reason = evaluate(provision, requester, item, action, today)
    assert _effect(deny, permit, item) == expected


@HELPER
@given(arrangement=s.arrangements, requester=s.requesters(), item=s.items())
def test_refusing_names_the_data_a_controller_withholds_the_purpose_from(
    arrangement: Arrangement, requester: Requester, item: DataItem
) -> None:
    facts = facts_for(arrangement, "2026-11-25", (), None, False, False, item)
    vote = controller_agreement(requester, item, facts, None)
    refused = holds(refusing(arrangement, requester.purpose), item, PatientFacts())
    assert refused == (vote.effect == "deny")


# --- the same, written out ---------------------------------------------------------------------

PRACTICE, OTHER_PRACTICE, PRIVATE, NATIONAL = "A81001", "B82005", "P99999", "X24"
TODAY = "2026-11-25"
MH = Label(ACT_CODE, "MH")
DIRECT = frozenset({"TREAT", "ETREAT", "BTG", "PATRQT"})
ARRANGEMENT = Arrangement(
    NATIONAL,
    listed={NATIONAL: DIRECT | {"HRESCH", "POPHLTH"}, PRACTICE: DIRECT},
    default=DIRECT,
)
GP = Requester("gp", ("R8000",), PRACTICE, practitioner="Practitioner/1")
OTHER_GP = replace(GP, organisation=OTHER_PRACTICE)
RESEARCHER = Requester("res", ("researcher",), "R1A00", purpose="HRESCH")
PLANNER = replace(RESEARCHER, purpose="POPHLTH")
OBS = DataItem("Observation", "p1", controllers=(PRACTICE, NATIONAL), date="2024-01-01")
NATIONAL_OBS = replace(OBS, controllers=(NATIONAL,))
REGISTERED = PatientFacts(related=True)


def permitted(
    requester: Requester,
    item: DataItem,
    patient: PatientFacts = REGISTERED,
    consents: Sequence[PatientConsent] = (),
) -> bool:
    """The compiled answer, after checking that ``decide`` gives the same one."""
    compiled = permits(policy(requester, ARRANGEMENT, TODAY, consents), item, patient)
    facts = facts_for(
        ARRANGEMENT,
        TODAY,
        consents,
        "registered" if patient.related else None,
        patient.opted_out,
        patient.glass_broken,
        item,
    )
    assert compiled == decide(requester, item, facts).permitted
    return compiled


def consent(provision: Provision, scope: str = "patient-privacy") -> PatientConsent:
    return PatientConsent("c1", scope, provision)


def test_a_deny_nested_in_a_permit_hides_only_what_it_names() -> None:
    everything_but_mental_health = consent(
        Provision("permit", provisions=(Provision("deny", labels=(MH,)),))
    )
    consents = (everything_but_mental_health,)
    assert permitted(GP, OBS, consents=consents)
    assert not permitted(GP, replace(OBS, labels=frozenset({MH})), consents=consents)


def test_a_permit_nested_in_a_deny_is_the_only_way_through() -> None:
    nobody_but_my_practice = consent(
        Provision("deny", provisions=(Provision("permit", actors=(f"org:{PRACTICE}",)),))
    )
    consents = (nobody_but_my_practice,)
    assert permitted(GP, OBS, consents=consents)
    assert not permitted(OTHER_GP, OBS, consents=consents)


def test_among_sibling_exceptions_that_apply_deny_wins() -> None:
    practice_yes_mental_health_no = consent(
        Provision(
            "deny",
            provisions=(
                Provision("permit", actors=(f"org:{PRACTICE}",)),
                Provision("deny", labels=(MH,)),
            ),
        )
    )
    consents = (practice_yes_mental_health_no,)
    assert permitted(GP, OBS, consents=consents)
    assert not permitted(GP, replace(OBS, labels=frozenset({MH})), consents=consents)


def test_an_exception_to_an_exception_decides_where_it_applies() -> None:
    deny_but_practice_except_before_2020 = consent(
        Provision(
            "deny",
            provisions=(
                Provision(
                    "permit",
                    actors=(f"org:{PRACTICE}",),
                    provisions=(Provision("deny", data_period=Period(None, "2019-12-31")),),
                ),
            ),
        )
    )
    consents = (deny_but_practice_except_before_2020,)
    assert permitted(GP, OBS, consents=consents)
    assert not permitted(GP, replace(OBS, date="2015-06-01"), consents=consents)
    # undated data: the inner deny does not apply (no date to match), the practice's permit does
    assert permitted(GP, replace(OBS, date=None), consents=consents)
    assert not permitted(OTHER_GP, OBS, consents=consents)


def test_a_research_consent_counts_only_for_research() -> None:
    yes_to_research = consent(Provision("permit"), scope="research")
    no_research = consent(Provision("deny"), scope="research")
    assert not permitted(RESEARCHER, OBS)  # the practice does not permit research
    assert permitted(RESEARCHER, OBS, consents=(yes_to_research,))
    assert not permitted(PLANNER, OBS, consents=(yes_to_research,))  # not for planning
    assert permitted(GP, OBS, consents=(no_research,))  # nor against direct care
    assert not permitted(RESEARCHER, NATIONAL_OBS, consents=(no_research,))


def test_the_national_opt_out_stops_secondary_use_unless_consented() -> None:
    opted_out = PatientFacts(opted_out=True)
    assert permitted(PLANNER, NATIONAL_OBS)
    assert not permitted(PLANNER, NATIONAL_OBS, opted_out)
    assert permitted(GP, OBS, replace(opted_out, related=True))  # never direct care
    yes_to_research = consent(Provision("permit"), scope="research")
    assert permitted(RESEARCHER, NATIONAL_OBS, opted_out, consents=(yes_to_research,))


def test_the_originating_practice_sees_the_sensitive_data_it_recorded() -> None:
    mental_health = replace(OBS, labels=frozenset({MH}))
    unregistered = PatientFacts()
    assert permitted(GP, mental_health, unregistered)
    assert not permitted(OTHER_GP, mental_health)  # registered elsewhere: not without consent
    assert not permitted(GP, mental_health, consents=(consent(Provision("deny")),))


def test_the_national_controller_is_never_an_originator() -> None:
    national = replace(GP, organisation=NATIONAL)
    assert not permitted(national, NATIONAL_OBS, PatientFacts())
    assert permitted(national, NATIONAL_OBS)  # with a care relationship


def test_an_empty_date_is_no_date() -> None:
    old_data_hidden = consent(Provision("deny", data_period=Period(None, "2019-12-31")))
    permitted(GP, replace(OBS, date=""), consents=(old_data_hidden,))


def test_break_glass_in_the_request_opens_everything_for_direct_care() -> None:
    emergency = replace(OTHER_GP, purpose="ETREAT", break_glass_reason="unconscious in A&E")
    deny_all = consent(Provision("deny"))
    assert policy(emergency, ARRANGEMENT, TODAY, (deny_all,)) == TRUE
    assert permitted(emergency, replace(OBS, labels=frozenset({MH})), PatientFacts(), (deny_all,))
    assert not permitted(replace(emergency, break_glass_reason=None), OBS, PatientFacts())


def test_a_declared_break_glass_opens_that_patient_only() -> None:
    btg = replace(OTHER_GP, purpose="BTG")
    # the blanket deny folds the normal decision away: only the declaration is left
    assert policy(btg, ARRANGEMENT, TODAY, (consent(Provision("deny")),)) == GlassBroken()
    assert permitted(btg, OBS, PatientFacts(glass_broken=True), (consent(Provision("deny")),))
    assert not permitted(btg, OBS, PatientFacts(), (consent(Provision("deny")),))


def test_break_glass_never_opens_a_secondary_use() -> None:
    urgent = replace(RESEARCHER, break_glass_reason="urgent")
    assert not permitted(urgent, OBS, PatientFacts(glass_broken=True))


def test_a_patient_sees_their_own_record_and_no_other() -> None:
    patient = Requester("pat", ("patient",), patient="p1")
    assert policy(patient, ARRANGEMENT, TODAY) == PatientIs("p1")
    assert permitted(patient, OBS, PatientFacts())
    assert not permitted(patient, replace(OBS, patient="p2"), PatientFacts())
    assert permitted(patient, DataItem("Organization", None), PatientFacts())


def test_an_unknown_purpose_is_denied_all_patient_data() -> None:
    marketing = replace(GP, purpose="MARKETING")
    assert policy(marketing, ARRANGEMENT, TODAY) == FALSE
    assert not permitted(marketing, OBS)
    assert permitted(marketing, DataItem("Organization", None))
