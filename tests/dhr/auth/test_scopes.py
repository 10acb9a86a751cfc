"""SMART scopes, as "Scopes and Launch Context" defines them.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from __future__ import annotations

import pytest

from dhr.auth.scopes import format_scope, grant, matching, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "context", "res_type", "actions"),
    [
        ("patient/Observation.rs", "patient", "Observation", "rs"),
        ("user/*.cruds", "user", "*", "cruds"),
        ("system/Patient.r", "system", "Patient", "r"),
        # v1 permissions map onto v2 letters
        ("patient/*.read", "patient", "*", "rs"),
        ("user/Observation.write", "user", "Observation", "cud"),
        ("system/*.*", "system", "*", "cruds"),
    ],
)
def test_resource_scopes_parse_into_context_type_and_permissions(
    text: str, context: str, res_type: str, actions: str
) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.actions) == (
        context,
        res_type,
        frozenset(actions),
    )
    assert scope.raw == text


def test_a_v2_query_restricts_the_scope_to_matching_resources() -> None:
    scope = parse_scope(
        "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    )
    assert scope is not None
    assert scope.params == (
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
    )


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    ],
)
def test_launch_and_identity_scopes_are_not_resource_scopes(text: str) -> None:
    assert parse_scope(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "patient/Observation",  # no permissions
        "patient/Observation.sr",  # v2 letters must keep the order c r u d s
        "patient/Observation.rr",
        "patient/Observation.x",
        "user/observation.rs",  # not a FHIR type name
        "system/.rs",
        "patient/Observation.rs?",
    ],
)
def test_malformed_resource_scopes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="malformed SMART scope"):
        parse_scope(text)


def test_parse_scopes_keeps_resource_scopes_and_skips_the_malformed() -> None:
    scopes = parse_scopes("openid patient/Observation.rs patient/Bad.zz launch user/*.read")
    assert [s.raw for s in scopes] == ["patient/Observation.rs", "user/*.read"]


def test_format_scope_writes_v2_text() -> None:
    scope = parse_scope("patient/*.read")
    assert scope is not None
    assert format_scope(scope) == "patient/*.rs"


def test_matching_finds_the_scopes_allowing_an_action_on_a_type() -> None:
    scopes = parse_scopes("patient/Observation.rs patient/*.c user/Condition.r")
    assert [s.raw for s in matching(scopes, "Observation", "s")] == ["patient/Observation.rs"]
    assert [s.raw for s in matching(scopes, "Condition", "c")] == ["patient/*.c"]
    assert matching(scopes, "Condition", "d") == []


@pytest.mark.parametrize(
    ("requested", "ceiling", "granted"),
    [
        # fully covered scopes are granted as written, v1 stays v1
        ("patient/*.read", "patient/*.rs", "patient/*.read"),
        ("system/Observation.rs", "system/*.cruds", "system/Observation.rs"),
        # partly covered scopes are narrowed to the permissions the ceiling allows
        ("user/Observation.cruds", "user/*.rs", "user/Observation.rs"),
        ("patient/*.*", "patient/*.rs", "patient/*.rs"),
        # a wildcard narrows to the types the ceiling names
        ("user/*.rs", "user/Patient.rs user/Appointment.r", "user/Patient.rs user/Appointment.r"),
        # a user ceiling covers a patient-context request; patient never widens to user
        ("patient/Observation.rs", "user/*.cruds", "patient/Observation.rs"),
        ("user/Observation.rs", "patient/*.rs", ""),
        # system scopes stand alone
        ("system/*.rs", "user/*.cruds", ""),
        ("user/*.rs", "system/*.cruds", ""),
        # the ceiling's granular restriction carries into the grant
        (
            "patient/Observation.rs",
            "patient/Observation.rs?category=laboratory",
            "patient/Observation.rs?category=laboratory",
        ),
        (
            "patient/Observation.rs?category=vital-signs",
            "patient/Observation.rs?category=laboratory",
            "",
        ),
        # non-resource scopes only when the ceiling lists them
        (
            "openid fhirUser launch/patient offline_access",
            "openid fhirUser launch/patient",
            "openid fhirUser launch/patient",
        ),
        # duplicates dropped, order kept, junk ignored
        (
            "patient/Condition.rs bogus/x.r patient/Condition.rs patient/Bad.zz",
            "patient/*.rs",
            "patient/Condition.rs",
        ),
    ],
)
def test_grant_narrows_each_requested_scope_to_the_ceiling(
    requested: str, ceiling: str, granted: str
) -> None:
    assert grant(requested, ceiling) == granted


def test_granting_twice_changes_nothing() -> None:
    once = grant("user/*.cruds patient/*.* openid", "user/*.rs openid")
    assert grant(once, "user/*.rs openid") == once
