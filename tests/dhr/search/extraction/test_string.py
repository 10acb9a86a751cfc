"""String extraction (https://hl7.org/fhir/R4/search.html#string)."""

from __future__ import annotations

from dhr.search.rows import StringRow

from .helpers import rows_of


def test_human_name_indexes_every_part_separately() -> None:
    body = {
        "name": [
            {
                "family": "Ölsen",
                "given": ["Anna", "Maria"],
                "prefix": ["Dr."],
                "suffix": ["PhD"],
                "text": "Dr. Anna Maria  Ölsen",
            }
        ]
    }
    assert rows_of("Patient", body, "name") == [
        StringRow("name", "olsen", "Ölsen"),
        StringRow("name", "anna", "Anna"),
        StringRow("name", "maria", "Maria"),
        StringRow("name", "dr.", "Dr."),
        StringRow("name", "phd", "PhD"),
        StringRow("name", "dr. anna maria olsen", "Dr. Anna Maria  Ölsen"),
    ]
    assert [r.norm for r in rows_of("Patient", body, "given")] == ["anna", "maria"]  # type: ignore[union-attr]


def test_address_indexes_its_parts() -> None:
    body = {
        "address": [
            {
                "line": ["1 Main St", "Apt 2"],
                "city": "Springfield",
                "district": "D",
                "state": "IL",
                "postalCode": "62701",
                "country": "US",
                "use": "home",
            }
        ]
    }
    norms = [r.norm for r in rows_of("Patient", body, "address")]  # type: ignore[union-attr]
    assert norms == ["1 main st", "apt 2", "springfield", "d", "il", "62701", "us"]
    assert [r.exact for r in rows_of("Patient", body, "address-city")] == ["Springfield"]  # type: ignore[union-attr]


def test_plain_string_and_extension_value() -> None:
    assert rows_of("Organization", {"name": "ACME Ltd"}, "name") == [
        StringRow("name", "acme ltd", "ACME Ltd")
    ]
    url = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName"
    body = {"extension": [{"url": url, "valueString": "Smith"}]}
    assert rows_of("Patient", body, "mothersMaidenName") == [
        StringRow("mothersMaidenName", "smith", "Smith")
    ]
