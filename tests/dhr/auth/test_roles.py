"""Roles modelled on England's national RBAC, as data (``dhr/data/roles.json``).

Role codes: https://fhir.nhs.uk/Id/sds-role-code (R8000 Clinical Practitioner, R8001 Nurse,
R8003 Health Professional, R8008 Admin/Clinical Support, R0001 Privacy Officer). Ceilings are
SMART App Launch 2.2 scopes (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html);
what a user may get is ``grant(requested, ceiling)``. Written as truth tables.
"""

from __future__ import annotations

import pytest

from dhr.auth.roles import UnknownRoleError, all_roles, ceiling, role
from dhr.auth.scopes import grant, parse_scopes

RBAC = "https://fhir.nhs.uk/Id/sds-role-code"


def test_the_national_rbac_roles_and_dhrs_own_roles_are_all_defined() -> None:
    codes = [r.code for r in all_roles()]
    assert codes == ["R8000", "R8001", "R8003", "R8008", "R0001", "patient", "researcher", "system"]
    assert {r.code for r in all_roles() if r.system == RBAC} == {
        "R8000",
        "R8001",
        "R8003",
        "R8008",
        "R0001",
    }
    assert role("R8000").display == "Clinical Practitioner Access Role"
    assert role("R0001").display == "Privacy Officer"


@pytest.mark.parametrize(
    ("alias", "code"),
    [("clinician", "R8000"), ("Nurse", "R8001"), ("admin", "R8008"), ("r0001", "R0001")],
)
def test_roles_are_found_by_code_or_alias_in_any_case(alias: str, code: str) -> None:
    assert role(alias).code == code


def test_an_unknown_role_is_refused_with_the_known_ones_listed() -> None:
    with pytest.raises(UnknownRoleError, match="R8000"):
        role("R9999")


def test_every_ceiling_is_made_of_well_formed_scopes() -> None:
    for r in all_roles():
        tokens = r.ceiling.split()
        resource = [t for t in tokens if "/" in t and not t.startswith("launch/")]
        assert len(parse_scopes(r.ceiling)) == len(resource), r.code


# requested scope -> what each role may be granted (the app asks for everything)
EVERYTHING = "launch/patient openid fhirUser user/*.cruds patient/*.cruds system/*.cruds"


@pytest.mark.parametrize(
    ("code", "requested", "granted"),
    [
        ("R8000", "user/*.cruds", "user/*.cruds"),
        ("R8000", "patient/Observation.rs", "patient/Observation.rs"),
        ("R8000", "system/*.rs", ""),
        ("R8001", "user/Observation.cruds", "user/Observation.crus"),
        ("R8001", "user/MedicationRequest.c", ""),
        ("R8001", "user/Condition.rs", "user/Condition.rs"),
        ("R8008", "user/Patient.cruds", "user/Patient.crus"),
        ("R8008", "user/Appointment.rs", "user/Appointment.rs"),
        ("R8008", "user/Observation.rs", ""),
        ("R0001", "user/AuditEvent.rs user/Consent.rs", "user/AuditEvent.rs user/Consent.rs"),
        ("R0001", "user/Observation.rs", ""),
        ("R0001", "launch/patient", ""),
        ("patient", "patient/*.rs", "patient/*.rs"),
        ("patient", "user/*.cruds", ""),
        ("patient", "patient/Observation.cruds", "patient/Observation.rs"),
        ("researcher", "user/*.rs", ""),
        ("system", "system/*.rs", "system/*.rs"),
        ("system", "user/*.rs", ""),
    ],
)
def test_the_role_ceiling_bounds_what_may_be_granted(
    code: str, requested: str, granted: str
) -> None:
    assert grant(requested, ceiling(code)) == granted


def test_a_patient_gets_nothing_beyond_reading_their_own_compartment() -> None:
    granted = grant(EVERYTHING, ceiling("patient"))
    assert granted == "launch/patient openid fhirUser patient/*.rs"


@pytest.mark.parametrize(
    ("code", "context", "interactive", "may_launch", "purpose"),
    [
        ("R8000", "picker", True, True, "TREAT"),
        ("R8001", "picker", True, True, "TREAT"),
        ("R8003", "picker", True, True, "TREAT"),
        ("R8008", "picker", True, True, "PATADMIN"),
        ("R0001", "none", True, False, "HCOMPL"),
        ("patient", "self", True, False, "PATRQT"),
        ("researcher", "none", False, False, "HRESCH"),
        ("system", "none", False, True, "TREAT"),
    ],
)
def test_how_each_role_gets_a_patient_and_its_purpose_of_use(
    code: str, context: str, interactive: bool, may_launch: bool, purpose: str
) -> None:
    r = role(code)
    assert (r.patient_context, r.interactive, r.may_create_launch, r.purpose_of_use) == (
        context,
        interactive,
        may_launch,
        purpose,
    )


def test_who_may_be_a_user_and_what_they_must_be_linked_to() -> None:
    assert role("patient").fhir_user_types == ("Patient",)
    assert role("R8000").fhir_user_types == ("Practitioner", "PractitionerRole")
    assert role("R8000").organisation_required
    assert not role("patient").organisation_required
    assert not role("system").user_assignable
