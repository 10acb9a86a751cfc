"""Composite extraction (https://hl7.org/fhir/R4/search.html#composite)."""

from __future__ import annotations

from dhr.search.rows import QuantityRow, TokenRow

from .helpers import rows_of

BP = {
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
    "component": [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": 120, "code": "mm[Hg]"},
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 80, "code": "mm[Hg]"},
        },
        {"code": {"coding": [{"system": "http://loinc.org", "code": "x"}]}},
    ],
}


def test_each_element_is_a_group_and_each_component_has_its_position() -> None:
    code = "component-code-value-quantity"
    assert rows_of("Observation", BP, code) == [
        TokenRow(code, "http://loinc.org", "8480-6", None, 1, 1),
        QuantityRow(code, 120, 119.5, 120.5, None, "mm[Hg]", None, 1, 2),
        TokenRow(code, "http://loinc.org", "8462-4", None, 2, 1),
        QuantityRow(code, 80, 79.5, 80.5, None, "mm[Hg]", None, 2, 2),
    ]  # the third component has no value: it cannot match and adds nothing


def test_resource_level_composite_and_combo() -> None:
    # The Observation itself has no valueQuantity: no element of its own matches.
    assert rows_of("Observation", BP, "code-value-quantity") == []
    # combo-code-value-quantity is code-value-quantity with component-code-value-quantity
    # (dhr.search.unions): its rows are theirs, not stored twice.
    assert rows_of("Observation", BP, "combo-code-value-quantity") == []
    parts = rows_of("Observation", BP, "component-code-value-quantity")
    assert {(r.grp, r.comp) for r in parts} == {(1, 1), (1, 2), (2, 1), (2, 2)}


def test_use_context_composite_with_quantity_or_range() -> None:
    body = {
        "status": "active",
        "useContext": [
            {
                "code": {
                    "system": "http://terminology.hl7.org/CodeSystem/usage-context-type",
                    "code": "age",
                },
                "valueRange": {"low": {"value": 18}, "high": {"value": 65}},
            }
        ],
    }
    rows = rows_of("ValueSet", body, "context-type-quantity")
    assert [(r.grp, r.comp) for r in rows] == [(1, 1), (1, 2)]
    assert rows[1] == QuantityRow("context-type-quantity", 18, 18, 65, None, None, None, 1, 2)


def test_resource_variable_in_a_component() -> None:
    body = {
        "type": "dna",
        "coordinateSystem": 0,
        "referenceSeq": {"chromosome": {"coding": [{"code": "1"}]}},
        "variant": [{"start": 10, "end": 20}],
    }
    rows = rows_of("MolecularSequence", body, "chromosome-variant-coordinate")
    assert [(type(r).__name__, r.grp, r.comp) for r in rows] == [
        ("TokenRow", 1, 1),
        ("NumberRow", 1, 2),
        ("NumberRow", 1, 3),
    ]


def test_document_reference_relationship_despite_the_swapped_official_components() -> None:
    body = {
        "status": "current",
        "content": [{"attachment": {"url": "http://a"}}],
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/old"}}],
    }
    rows = rows_of("DocumentReference", body, "relationship")
    assert [(type(r).__name__, r.grp, r.comp) for r in rows] == [
        ("ReferenceRow", 1, 1),
        ("TokenRow", 1, 2),
    ]
