"""Token extraction (https://hl7.org/fhir/R4/search.html#token)."""

from __future__ import annotations

from dhr.search.rows import TokenRow

from .helpers import rows_of


def test_codeable_concept_gives_each_coding_and_its_text() -> None:
    body = {
        "status": "final",
        "code": {
            "coding": [
                {"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"},
                {"system": "http://snomed.info/sct", "code": "27113001"},
            ],
            "text": "Weight",
        },
    }
    assert rows_of("Observation", body, "code") == [
        TokenRow("code", "http://loinc.org", "29463-7", "body weight"),
        TokenRow("code", "http://snomed.info/sct", "27113001", "weight"),
        TokenRow("code", None, None, "weight"),
    ]


def test_coding_identifier_contact_point_and_primitives() -> None:
    body = {
        "meta": {"tag": [{"system": "urn:t", "code": "x", "display": "Ünïcode"}]},
        "identifier": [
            {"system": "urn:mrn", "value": "42", "type": {"text": "Medical Record"}},
            {"value": "no-system"},
        ],
        "telecom": [{"system": "phone", "value": "+1 555"}],
        "gender": "female",
        "active": True,
    }
    assert rows_of("Patient", body, "_tag") == [TokenRow("_tag", "urn:t", "x", "unicode")]
    assert rows_of("Patient", body, "identifier") == [
        TokenRow("identifier", "urn:mrn", "42", "medical record"),
        TokenRow("identifier", None, "no-system"),
    ]
    assert rows_of("Patient", body, "phone") == [TokenRow("phone", None, "+1 555")]
    assert rows_of("Patient", body, "email") == []
    assert rows_of("Patient", body, "gender") == [TokenRow("gender", None, "female")]
    assert rows_of("Patient", body, "active") == [TokenRow("active", None, "true")]


def test_boolean_expression_gives_true_or_false() -> None:
    assert rows_of("Patient", {}, "deceased") == [TokenRow("deceased", None, "false")]
    alive = rows_of("Patient", {"deceasedDateTime": "2001-02-03"}, "deceased")
    assert alive == [TokenRow("deceased", None, "true")]


def test_long_values_are_cut_to_the_column() -> None:
    (row,) = rows_of(
        "Patient", {"identifier": [{"system": "s" * 300, "value": "v" * 300}]}, "identifier"
    )
    assert isinstance(row, TokenRow)
    assert len(row.system or "") == 255
    assert len(row.code or "") == 255


def test_choice_value_only_the_codeable_concept_for_value_concept() -> None:
    body = {"status": "final", "code": {"text": "c"}, "valueQuantity": {"value": 1}}
    assert rows_of("Observation", body, "value-concept") == []
    body["valueCodeableConcept"] = {"coding": [{"code": "pos"}]}
    del body["valueQuantity"]
    assert rows_of("Observation", body, "value-concept") == [TokenRow("value-concept", None, "pos")]
