"""Extraction picks the parameters a body can answer by its shape (its top-level elements).

https://hl7.org/fhir/R4/search.html: every parameter whose element is present is indexed, and
a body of a shape seen before is indexed from its own values, never from the earlier body's.
"""

from __future__ import annotations

from typing import Any

import pytest

from dhr.search import extract as extract_module
from dhr.search.extract import extract
from dhr.search.rows import DateRow, QuantityRow


def _observation(**value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        **value,
    }


def _params(rows: list[Any], kind: type) -> set[tuple[str, Any]]:
    return {(r.param, r.value if kind is QuantityRow else r.low) for r in rows if type(r) is kind}


def test_bodies_of_one_shape_are_indexed_from_their_own_values() -> None:
    first = extract("Observation", _observation(valueQuantity={"value": 60, "unit": "/min"}))
    second = extract("Observation", _observation(valueQuantity={"value": 72, "unit": "/min"}))
    assert ("value-quantity", 60) in _params(first, QuantityRow)
    assert ("value-quantity", 72) in _params(second, QuantityRow)
    assert ("value-quantity", 60) not in _params(second, QuantityRow)


def test_another_shape_of_the_same_type_gets_its_own_parameters() -> None:
    extract("Observation", _observation(valueQuantity={"value": 60}))
    dated = extract("Observation", _observation(valueDateTime="2020-01-02"))
    assert {param for param, _ in _params(dated, DateRow)} >= {"value-date"}
    assert not _params(dated, QuantityRow)


def test_past_the_bound_on_remembered_shapes_rows_are_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = _observation(valueQuantity={"value": 60, "unit": "/min"}, effectiveDateTime="2020")
    remembered = extract("Observation", body)
    monkeypatch.setattr(extract_module, "_CHOSEN", {})
    monkeypatch.setattr(extract_module, "_MAX_SHAPES", 0)
    assert extract("Observation", body) == remembered
    assert extract_module._CHOSEN == {}
