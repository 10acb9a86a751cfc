"""Union parameters are stored as their parts (:mod:`dhr.search.unions`).

https://hl7.org/fhir/R4/observation.html#search defines the ``combo-`` parameters as unions of
the Observation's own element and its components' elements.
"""

from __future__ import annotations

from dhr.fhir.types import resource_types
from dhr.search.extract import extract
from dhr.search.unions import stored_codes, unions

LOINC = "http://loinc.org"


def test_the_unions_of_r4_are_the_six_observation_combo_parameters() -> None:
    found = {(t, code): parts for t in resource_types() for code, parts in unions(t).items()}
    assert found == {
        ("Observation", "combo-code"): ("code", "component-code"),
        ("Observation", "combo-code-value-concept"): (
            "code-value-concept",
            "component-code-value-concept",
        ),
        ("Observation", "combo-code-value-quantity"): (
            "code-value-quantity",
            "component-code-value-quantity",
        ),
        ("Observation", "combo-data-absent-reason"): (
            "component-data-absent-reason",
            "data-absent-reason",
        ),
        ("Observation", "combo-value-concept"): ("component-value-concept", "value-concept"),
        ("Observation", "combo-value-quantity"): ("component-value-quantity", "value-quantity"),
    }


def test_other_parameters_are_read_under_their_own_code() -> None:
    assert stored_codes("Observation", "code") == ("code",)
    # Reference parameters stay whole: the access policy reads patient and subject by code.
    assert stored_codes("Observation", "patient") == ("patient",)
    assert stored_codes("Condition", "code") == ("code",)


def test_a_union_is_not_extracted_and_its_parts_hold_every_value() -> None:
    body = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "code": "mm[Hg]"},
            }
        ],
    }
    rows = extract("Observation", body)
    assert not [r for r in rows if r.param.startswith("combo-")]
    codes = {(r.param, getattr(r, "code", None)) for r in rows}
    assert {("code", "85354-9"), ("component-code", "8480-6")} <= codes
