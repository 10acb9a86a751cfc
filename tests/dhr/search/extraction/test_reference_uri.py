"""Reference and uri extraction (https://hl7.org/fhir/R4/search.html#reference, #uri)."""

from __future__ import annotations

import pytest

from dhr.search.extraction.reference import split
from dhr.search.rows import ReferenceRow, TokenRow, UriRow

from .helpers import rows_of


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("Patient/123", ("Patient", "123", None, None)),
        ("Patient/123/_history/4", ("Patient", "123", "4", None)),
        (
            "https://x.org/fhir/Patient/123/_history/4",
            ("Patient", "123", "4", "https://x.org/fhir/Patient/123"),
        ),
        ("urn:uuid:0f6b", (None, None, None, "urn:uuid:0f6b")),
        ("#contained", (None, None, None, None)),
        (
            "http://hl7.org/fhir/ValueSet/x|4.0.1",
            ("ValueSet", "x", "4.0.1", "http://hl7.org/fhir/ValueSet/x"),
        ),
        ("http://example.org/q", (None, None, None, "http://example.org/q")),
        ("NotAType/1", (None, None, None, "NotAType/1")),
    ],
)
def test_reference_forms(ref: str, parts: tuple[str | None, ...]) -> None:
    assert split(ref) == parts


def test_resolve_is_filters_by_the_referenced_type() -> None:
    base = {"status": "final", "code": {"text": "c"}}
    patient = {**base, "subject": {"reference": "Patient/p"}}
    group = {**base, "subject": {"reference": "Group/g"}}
    assert rows_of("Observation", patient, "patient") == [
        ReferenceRow("patient", "Patient", "p", None, None)
    ]
    assert rows_of("Observation", group, "patient") == []
    assert rows_of("Observation", group, "subject") == [
        ReferenceRow("subject", "Group", "g", None, None)
    ]


def test_reference_identifier_is_a_token_under_the_identifier_modifier() -> None:
    body = {
        "status": "final",
        "code": {"text": "c"},
        "subject": {"identifier": {"system": "urn:mrn", "value": "7"}, "display": "x"},
    }
    assert rows_of("Observation", body, "subject:identifier") == [
        TokenRow("subject:identifier", "urn:mrn", "7")
    ]
    assert rows_of("Observation", body, "subject") == []


def test_choice_reference_and_canonical() -> None:
    body = {
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "medicationReference": {"reference": "Medication/m"},
        "instantiatesCanonical": ["http://x.org/PlanDefinition/p|2"],
    }
    assert rows_of("MedicationRequest", body, "medication") == [
        ReferenceRow("medication", "Medication", "m", None, None)
    ]
    assert rows_of("MedicationRequest", body, "code") == []


def test_uri_and_profile() -> None:
    body = {
        "meta": {"profile": ["http://p/1"], "source": "urn:src"},
        "url": "http://v/s",
        "status": "draft",
    }
    assert rows_of("ValueSet", body, "url") == [UriRow("url", "http://v/s")]
    assert rows_of("ValueSet", body, "_profile") == [UriRow("_profile", "http://p/1")]
    assert rows_of("ValueSet", body, "_source") == [UriRow("_source", "urn:src")]
