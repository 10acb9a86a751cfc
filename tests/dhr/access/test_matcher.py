"""The in-memory check of one body against scope criteria agrees with the search semantics
(https://hl7.org/fhir/R4/search.html#token, #reference) and says "cannot tell" where it must
leave the question to SQL."""

from __future__ import annotations

from typing import Any

from dhr.access.matcher import matches
from dhr.access.read_scope import parse_restriction
from dhr.store.access_store import AnyOf, PatientRecord

BASE = "http://dhr.example/fhir"
CAT = "http://terminology.hl7.org/CodeSystem/observation-category"


def obs(subject: str, category: str = "laboratory", system: str = CAT) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{"system": system, "code": category}]}],
        "code": {"text": "x"},
        "subject": {"reference": subject},
    }


def restriction(query: str) -> tuple[Any, ...]:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    parsed = parse_restriction("Observation", pairs, BASE)  # type: ignore[arg-type]
    assert parsed is not None
    return parsed


def test_record_membership_by_local_reference_only() -> None:
    record = (PatientRecord("p1", BASE),)
    assert matches("Observation", obs("Patient/p1"), record) is True
    assert matches("Observation", obs(f"{BASE}/Patient/p1"), record) is True
    assert matches("Observation", obs("http://elsewhere.example/fhir/Patient/p1"), record) is False
    assert matches("Observation", obs("Patient/p2"), record) is False
    assert matches("Patient", {"resourceType": "Patient", "id": "p1"}, record) is True
    assert matches("Practitioner", {"resourceType": "Practitioner", "id": "p1"}, record) is False


def test_token_restrictions() -> None:
    assert matches("Observation", obs("Patient/p1"), restriction("category=laboratory")) is True
    assert matches("Observation", obs("Patient/p1"), restriction(f"category={CAT}|laboratory"))
    assert not matches(
        "Observation", obs("Patient/p1", system="urn:x"), restriction(f"category={CAT}|laboratory")
    )
    assert not matches(
        "Observation", obs("Patient/p1", "vital-signs"), restriction("category=laboratory")
    )
    both = restriction("category=laboratory,vital-signs")
    assert matches("Observation", obs("Patient/p1", "vital-signs"), both) is True


def test_alternatives_and_unknowns() -> None:
    lab = restriction("category=laboratory")
    dated = restriction("date=ge2020")
    body = obs("Patient/p1")
    assert matches("Observation", body, dated) is None  # dates are left to SQL
    assert matches("Observation", body, (AnyOf((lab, dated)),)) is True
    vitals = obs("Patient/p1", "vital-signs")
    assert matches("Observation", vitals, (AnyOf((lab, dated)),)) is None
    assert matches("Observation", vitals, (*lab, *dated)) is False
