"""FHIR JSON in and out (https://hl7.org/fhir/R4/json.html): a decimal keeps the digits it was
sent with (https://hl7.org/fhir/R4/datatypes.html#decimal), whichever way it is written, and a
string that only looks like a number changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from dhr.fhir import jsonio

KEPT = ["1.50", "1.0", "100.00", "1e5", "1E+5", "-2.5e-3", "0.1234567890123456", "7.10 "]
PLAIN = ["1.5", "10", "-3", "0.25", "12345.678"]


WHERE: list[tuple[str, Callable[[Any], Any]]] = [
    (
        '{{"resourceType":"Observation","valueQuantity":{{"value":{}}}}}',
        lambda d: d["valueQuantity"]["value"],
    ),
    (
        '{{"resourceType":"Observation","component":[{{"x":[{}, 1]}}]}}',
        lambda d: d["component"][0]["x"][0],
    ),
    ('{{"resourceType": "Observation" ,\n "value" :\t{}\n}}', lambda d: d["value"]),
]


@pytest.mark.parametrize("number", KEPT)
def test_a_number_a_float_would_change_is_written_back_as_sent(number: str) -> None:
    for template, value_of in WHERE:
        body = template.format(number).encode()
        written = json.loads(jsonio.dumps(jsonio.parse_object(body)), parse_float=Decimal)
        # The same digits and exponent (1E+5 may come back for 1e5: the same decimal).
        assert value_of(written).as_tuple() == Decimal(number.strip()).as_tuple()


@pytest.mark.parametrize("number", PLAIN)
def test_other_numbers_stay_plain_json_numbers(number: str) -> None:
    data = jsonio.parse_object(f'{{"a":{number},"b":[{number}]}}'.encode())
    assert not isinstance(data["a"], Decimal)
    assert jsonio.dumps(data) == f'{{"a":{number},"b":[{number}]}}'.encode()


@pytest.mark.parametrize(
    "text",
    [
        "version 1.10, draft",
        "4e5a-1e2",
        "see 1.0]",
        "2019-06-01T10:00:00.000+00:00",
        "x e5, y",
        "0.1234567890123456789",
    ],
)
def test_look_alikes_inside_strings_leave_the_numbers_as_they_are(text: str) -> None:
    body = f'{{"text":"{text}","value":1.5}}'.encode()
    data = jsonio.parse_object(body)
    assert data["text"] == text
    assert isinstance(data["value"], float)
