"""Number and quantity extraction with implicit precision (https://hl7.org/fhir/R4/search.html#number)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dhr.search.extraction.number import HIGHEST, LOWEST, precision
from dhr.search.extraction.quantity import ISO_4217
from dhr.search.rows import NumberRow, QuantityRow

from .helpers import rows_of


@pytest.mark.parametrize(
    ("written", "low", "high"),
    [
        (100, 99.5, 100.5),
        ("100", 99.5, 100.5),
        ("1.50", 1.495, 1.505),
        (Decimal("1.50"), 1.495, 1.505),
        (1.5, 1.45, 1.55),
        ("1e2", 50, 150),
        (0.001, 0.0005, 0.0015),
        (-3, -3.5, -2.5),
    ],
)
def test_implied_precision(written: object, low: float, high: float) -> None:
    got = precision(written)
    assert got is not None
    assert got[1] == pytest.approx(low)
    assert got[2] == pytest.approx(high)


def test_not_numbers() -> None:
    assert precision(True) is None
    assert precision("abc") is None
    assert precision(None) is None


def test_number_parameter_and_range() -> None:
    body = {"status": "final", "subject": {"reference": "Patient/1"}}
    preds = {
        "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {"low": {"value": 0.1}}}]
    }
    assert rows_of("RiskAssessment", {**body, **preds}, "probability") == [
        NumberRow("probability", 0.25, 0.245, 0.255),
        NumberRow("probability", 0.1, 0.1, HIGHEST),
    ]


def test_quantity_value_and_units() -> None:
    body = {
        "status": "final",
        "code": {"text": "w"},
        "valueQuantity": {
            "value": 72,
            "unit": "kg",
            "system": "http://unitsofmeasure.org",
            "code": "kg",
        },
    }
    assert rows_of("Observation", body, "value-quantity") == [
        QuantityRow("value-quantity", 72, 71.5, 72.5, "http://unitsofmeasure.org", "kg", "kg")
    ]


def test_money_uses_iso_4217_and_range_uses_its_bounds() -> None:
    charge = {
        "status": "billable",
        "code": {"text": "c"},
        "subject": {"reference": "Patient/1"},
        "priceOverride": {"value": 10.5, "currency": "EUR"},
    }
    assert rows_of("ChargeItem", charge, "price-override") == [
        QuantityRow("price-override", 10.5, 10.45, 10.55, ISO_4217, "EUR", None)
    ]
    cond = {
        "subject": {"reference": "Patient/1"},
        "onsetRange": {"high": {"value": 5, "code": "a"}},
    }
    assert rows_of("Condition", cond, "onset-age") == [
        QuantityRow("onset-age", 5, LOWEST, 5, None, "a", None)
    ]
