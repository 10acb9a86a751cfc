"""The search parameter registry: the vendored official R4 definitions, loaded once.

https://hl7.org/fhir/R4/searchparameter-registry.html
"""

from __future__ import annotations

import pytest

from dhr.search.registry import RegistryError, load, registry


def test_every_type_gets_its_own_and_the_resource_level_parameters() -> None:
    reg = registry()
    assert reg.get("Patient", "birthdate") is not None
    assert reg.get("Patient", "birthdate").type == "date"  # type: ignore[union-attr]
    for common in ("_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"):
        assert reg.get("Observation", common) is not None, common
    assert reg.get("Patient", "code") is None


def test_shared_parameters_keep_their_targets_and_composites_resolve() -> None:
    reg = registry()
    patient = reg.get("Observation", "patient")
    assert patient is not None
    assert patient.type == "reference"
    assert "Patient" in patient.targets
    cvq = reg.get("Observation", "code-value-quantity")
    assert cvq is not None
    assert [reg.by_url(c.definition).type for c in cvq.components] == ["token", "quantity"]  # type: ignore[union-attr]


def test_an_unknown_parameter_type_fails_the_load() -> None:
    bad = {"parameters": [{"url": "u", "code": "c", "base": ["Patient"], "type": "colour"}]}
    with pytest.raises(RegistryError, match="unknown type"):
        load(bad)


def test_a_composite_whose_component_is_undefined_fails_the_load() -> None:
    bad = {
        "parameters": [
            {
                "url": "u",
                "code": "c",
                "base": ["Patient"],
                "type": "composite",
                "expression": "Patient",
                "component": [{"definition": "missing", "expression": "x"}],
            }
        ]
    }
    with pytest.raises(RegistryError, match="not defined"):
        load(bad)
