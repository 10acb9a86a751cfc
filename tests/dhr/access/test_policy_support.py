"""Which rows a compiled decision may permit at most (dhr.access.policy_support): bounded when
nothing is permitted without a care relationship, a break-glass, the patient themselves or a
named controller; what the bound holds, and which decisions have none."""

from __future__ import annotations

from consent.formula import (
    ControllerIn,
    ControllerOutside,
    GlassBroken,
    LabelIn,
    OptedOut,
    PatientIs,
    Related,
    TypeIn,
    all_of,
    any_of,
    negate,
)
from consent.model import Label
from dhr.access.policy_support import Support, bound

MH = Label("http://terminology.hl7.org/CodeSystem/v3-ActCode", "MH")
OWN = ControllerIn(frozenset({"A1"}))
CLINICIAN = any_of([GlassBroken(), OWN, all_of([Related(), negate(LabelIn(frozenset({MH})))])])
RESEARCH = negate(OptedOut())


def test_a_clinicians_decision_is_bounded_by_its_patients_and_its_own_data() -> None:
    assert bound(CLINICIAN, ()) == Support(frozenset(), frozenset({"A1"}))


def test_a_patient_reading_their_own_record_is_bounded_by_themselves() -> None:
    assert bound(PatientIs("p1"), ()) == Support(frozenset({"p1"}), frozenset())


def test_research_without_a_relationship_is_not_bounded() -> None:
    assert bound(RESEARCH, ()) is None
    assert bound(any_of([CLINICIAN, RESEARCH]), ()) is None


def test_data_outside_named_controllers_is_not_bounded() -> None:
    """``ControllerOutside`` can hold for any patient's data: no index finds those rows."""
    assert bound(any_of([Related(), ControllerOutside(frozenset({"A1"}))]), ()) is None


def test_a_consent_holder_whose_own_decision_is_not_bounded_joins_by_id() -> None:
    """A Consent that opens research for its patient: that patient's rows, named."""
    permits_research = ((("p7", "p8"), RESEARCH),)
    assert bound(CLINICIAN, permits_research) == Support(frozenset({"p7", "p8"}), frozenset({"A1"}))


def test_a_consent_holder_whose_decision_is_bounded_adds_only_its_controllers() -> None:
    other = all_of([TypeIn(frozenset({"Observation"})), ControllerIn(frozenset({"B2"}))])
    holders = ((("p9",), any_of([CLINICIAN, other])),)
    assert bound(CLINICIAN, holders) == Support(frozenset(), frozenset({"A1", "B2"}))
