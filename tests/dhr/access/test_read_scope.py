"""Scopes turned into search criteria (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
the patient compartment for ``patient/`` scopes, granular parameters parsed like a search's,
several scopes OR-ed, unparseable restrictions granting nothing."""

from __future__ import annotations

from dhr.access.read_scope import read_scope
from dhr.auth.model import OPEN_ACCESS, Principal
from dhr.auth.scopes import parse_scopes
from dhr.search.params import Filter
from dhr.store.access_store import AnyOf, PatientRecord

BASE = "http://dhr.example/fhir"


def principal(scope: str, patient: str | None = None) -> Principal:
    return Principal(subject="s", scopes=parse_scopes(scope), scope_text=scope, patient=patient)


def test_open_and_plain_scopes_need_no_criteria() -> None:
    assert read_scope(OPEN_ACCESS, "r", BASE).terms("Observation") == ()
    assert read_scope(principal("system/*.rs"), "r", BASE).terms("Observation") == ()
    assert read_scope(principal("system/*.rs"), "c", BASE).terms("Observation") is None


def test_patient_scopes_restrict_to_the_record() -> None:
    scope = read_scope(principal("patient/*.rs", patient="p1"), "s", BASE)
    assert scope.terms("Observation") == (PatientRecord("p1", BASE),)
    assert not scope.types_only


def test_granular_scopes_add_parsed_criteria_and_or_together() -> None:
    one = read_scope(principal("user/Observation.rs?category=laboratory"), "s", BASE)
    terms = one.terms("Observation")
    assert terms is not None
    assert len(terms) == 1
    assert isinstance(terms[0], Filter)
    assert terms[0].param.code == "category"
    assert one.terms("Patient") is None
    two = read_scope(
        principal(
            "patient/Observation.rs?category=laboratory patient/Observation.rs?code=1234-5",
            patient="p1",
        ),
        "s",
        BASE,
    )
    both = two.terms("Observation")
    assert both is not None
    assert len(both) == 1
    assert isinstance(both[0], AnyOf)
    assert [alt[0] for alt in both[0].alternatives] == [PatientRecord("p1", BASE)] * 2


def test_a_plain_scope_beside_a_granular_one_lifts_the_restriction() -> None:
    scope = read_scope(
        principal("user/Observation.rs?category=laboratory user/Observation.r"), "r", BASE
    )
    assert scope.terms("Observation") == ()


def test_a_wildcard_granular_scope_applies_where_the_parameter_exists() -> None:
    scope = read_scope(principal("user/*.rs?category=laboratory"), "s", BASE)
    assert scope.terms("Observation") is not None
    assert scope.terms("Condition") is not None
    assert scope.terms("Patient") is None  # Patient has no category parameter


def test_restrictions_that_are_not_criteria_grant_nothing() -> None:
    for bad in ("_count=5", "nope=1", "_include=Observation:subject", "date=notadate"):
        scope = read_scope(principal(f"user/Observation.rs?{bad}"), "s", BASE)
        assert scope.terms("Observation") is None, bad
