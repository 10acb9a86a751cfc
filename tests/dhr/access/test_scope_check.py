"""Pure SMART scope decisions (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
which letters each scope grants on which type, v1 and v2 alike, and patient scopes needing a
patient in context."""

from __future__ import annotations

import pytest

from dhr.access.scope_check import may, unrestricted, usable_scopes
from dhr.auth.model import OPEN_ACCESS, Principal
from dhr.auth.scopes import parse_scopes


def principal(scope: str, patient: str | None = None) -> Principal:
    return Principal(subject="s", scopes=parse_scopes(scope), scope_text=scope, patient=patient)


@pytest.mark.parametrize(
    ("scope", "res_type", "allowed"),
    [
        ("user/Observation.rs", "Observation", "rs"),
        ("user/Observation.rs", "Patient", ""),
        ("user/*.cruds", "Patient", "cruds"),
        ("user/*.read", "Patient", "rs"),  # v1 read = rs
        ("user/*.write", "Patient", "cud"),  # v1 write = cud
        ("user/*.*", "Patient", "cruds"),
        ("system/Patient.cu system/Patient.d", "Patient", "cud"),
        ("patient/Observation.rs", "Observation", "rs"),  # with a patient in context
        ("openid fhirUser launch/patient", "Patient", ""),
    ],
)
def test_letters_granted_per_type(scope: str, res_type: str, allowed: str) -> None:
    who = principal(scope, patient="p1")
    granted = {a for a in "cruds" if may(who, res_type, a) is True}
    assert granted == set(allowed)


def test_patient_scopes_need_a_patient_in_context() -> None:
    lost = principal("patient/*.rs")
    assert usable_scopes(lost) == ()
    reason = may(lost, "Observation", "r")
    assert isinstance(reason, str)
    assert "patient context" in reason
    mixed = principal("patient/*.rs user/Patient.r")
    assert may(mixed, "Patient", "r") is True
    assert may(mixed, "Observation", "r") is not True


def test_refusals_explain_themselves() -> None:
    reason = may(principal("user/Patient.r"), "Observation", "s")
    assert isinstance(reason, str)
    assert "search" in reason
    assert "user/Patient.r" in reason


def test_the_open_principal_may_do_anything_unrestricted() -> None:
    assert all(may(OPEN_ACCESS, "Patient", a) is True for a in "cruds")
    assert unrestricted(OPEN_ACCESS, "Patient", "r")


def test_only_plain_user_and_system_scopes_are_unrestricted() -> None:
    assert unrestricted(principal("system/*.rs"), "Observation", "r")
    assert not unrestricted(principal("patient/*.rs", patient="p1"), "Observation", "r")
    granular = principal("user/Observation.rs?category=laboratory")
    assert not unrestricted(granular, "Observation", "r")
    assert unrestricted(principal("user/Observation.rs?category=x user/*.r"), "Observation", "r")
