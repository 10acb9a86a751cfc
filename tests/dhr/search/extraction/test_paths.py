"""The FHIRPath compiler for search expressions (https://hl7.org/fhir/R4/fhirpath.html).

Checks each form the official R4 expressions use against the FHIRPath specification's wording.
"""

from __future__ import annotations

from typing import Any

import pytest

from dhr.search.extraction.parse import UnsupportedPathError, first_member, first_read, parse
from dhr.search.extraction.paths import Items, compile_branch
from dhr.search.extraction.plan import plans, split_union

OBS: dict[str, Any] = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
    "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 5, "unit": "mg"},
    "component": [
        {"code": {"text": "a"}, "valueString": "x"},
        {"code": {"text": "b"}, "valueCodeableConcept": {"text": "y"}},
    ],
    "contained": [{"resourceType": "Device", "id": "d1"}],
    "device": {"reference": "#d1"},
    "extension": [{"url": "http://e/1", "valueString": "ext"}],
}


def run(expr: str, body: dict[str, Any] = OBS, relative: bool = False) -> list[Any]:
    fn, native = compile_branch(expr, relative)
    assert native, expr
    root: Items = [(body, body["resourceType"])]
    return fn(root, root)


def test_member_paths_carry_the_model_type() -> None:
    assert run("Observation.code.coding.code") == [("1-8", "code")]
    assert run("Observation.subject") == [({"reference": "Patient/p1"}, "Reference")]


def test_choice_elements_are_found_under_every_json_name_with_their_type() -> None:
    assert run("Observation.value") == [({"value": 5, "unit": "mg"}, "Quantity")]
    assert [t for _, t in run("Observation.component.value")] == ["string", "CodeableConcept"]


@pytest.mark.parametrize(
    "expr",
    [
        "(Observation.value as Quantity)",
        "Observation.value.as(Quantity)",
        "Observation.value.ofType(Quantity)",
        "Observation.value.as(FHIR.Quantity)",
    ],
)
def test_as_and_of_type_filter_by_type(expr: str) -> None:
    assert run(expr) == [({"value": 5, "unit": "mg"}, "Quantity")]
    assert run(expr.replace("Quantity", "string")) == []


def test_as_accepts_profiles_of_quantity_and_then_a_member() -> None:
    body = {"resourceType": "Condition", "onsetAge": {"value": 3}}
    assert run("Condition.onset.as(Quantity)", body) == [({"value": 3}, "Age")]
    assert run("(Observation.component.value as CodeableConcept).text") == [("y", "string")]


def test_where_resolve_is_keeps_references_of_that_type_including_contained() -> None:
    assert len(run("Observation.subject.where(resolve() is Patient)")) == 1
    assert run("Observation.subject.where(resolve() is Group)") == []
    assert len(run("Observation.device.where(resolve() is Device)")) == 1


def test_where_equality_on_a_member() -> None:
    body = {
        "resourceType": "Patient",
        "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
    }
    assert [v["value"] for v, _ in run("Patient.telecom.where(system='phone')", body)] == ["1"]


def test_extension_and_has_extension() -> None:
    assert run("Observation.extension('http://e/1')")[0][1] == "Extension"
    assert run("Observation.extension('http://e/2')") == []
    assert len(run("Observation.component.where(hasExtension('http://e/1'))")) == 0


def test_indexer_first_and_resource_variable() -> None:
    assert [v["code"]["text"] for v, _ in run("Observation.component[1]")] == ["b"]
    assert [v["code"]["text"] for v, _ in run("Observation.component.first()")] == ["a"]
    element: Items = [(OBS["component"][0], "ObservationComponent")]
    fn, _ = compile_branch("%resource.status", relative=True)
    assert fn(element, [(OBS, "Observation")]) == [("final", "code")]


def test_exists_and_comparison_follow_three_valued_logic() -> None:
    expr = "Patient.deceased.exists() and Patient.deceased != false"
    assert run(expr, {"resourceType": "Patient"}) == [(False, "boolean")]
    assert run(expr, {"resourceType": "Patient", "deceasedBoolean": True}) == [(True, "boolean")]
    assert run(expr, {"resourceType": "Patient", "deceasedBoolean": False}) == [(False, "boolean")]
    dead = {"resourceType": "Patient", "deceasedDateTime": "2020"}
    assert run(expr, dead) == [(True, "boolean")]


def test_unions_split_at_top_level_only() -> None:
    assert split_union("A.b | (A.c as X) | A.d.where(e='|')") == [
        "A.b",
        "(A.c as X)",
        "A.d.where(e='|')",
    ]


def test_unknown_functions_fall_back_to_fhirpathpy() -> None:
    with pytest.raises(UnsupportedPathError):
        parse("Observation.code.coding.count()")
    fn, native = compile_branch("Observation.component.code.count()")
    assert not native
    root: Items = [(OBS, "Observation")]
    assert [v for v, _ in fn(root, root)] == [2]


def test_gate_only_for_pure_navigation() -> None:
    assert first_member(parse("Observation.subject.where(resolve() is Patient)")) == "subject"
    assert first_member(parse("Patient.deceased.exists() and Patient.deceased != false")) is None


def test_gate_keeps_only_the_choice_keys_as_can_yield() -> None:
    assert first_read(parse("(Observation.value as dateTime)")) == ("value", "dateTime")
    assert first_read(parse("(Observation.value as CodeableConcept).text")) == (
        "value",
        "CodeableConcept",
    )
    assert first_read(parse("value.as(DateTime)"), relative=True) == ("value", "DateTime")
    assert first_read(parse("Observation.value.where(x = 1).as(Quantity)")) == ("value", None)
    by_code = {p.code: p for p in plans("Observation")}
    assert by_code["value-date"].gate == frozenset({"valueDateTime", "valuePeriod"})
    # a composite over the Observation itself needs a key for each of its components
    assert by_code["code-value-date"].requires == (
        frozenset({"code"}),
        frozenset({"valueDateTime", "valuePeriod"}),
    )


def test_every_official_expression_compiles_natively() -> None:
    from dhr.fhir.types import resource_types

    slow = [(t, p.code) for t in sorted(resource_types()) for p in plans(t) if not p.native]
    assert slow == []
