"""Date extraction (https://hl7.org/fhir/R4/search.html#date)."""

from __future__ import annotations

from dhr.fhir.instant import parse_range
from dhr.search.extraction.date import HIGHEST, LOWEST
from dhr.search.rows import DateRow

from .helpers import rows_of


def test_date_precision_is_the_range() -> None:
    (row,) = rows_of("Patient", {"birthDate": "1970-02"}, "birthdate")
    assert row == DateRow("birthdate", *parse_range("1970-02"))


def test_period_and_its_open_ends() -> None:
    closed = {"status": "finished", "class": {"code": "x"}}
    body = {**closed, "period": {"start": "2020-01-01", "end": "2020-01-03T10:00:00Z"}}
    (row,) = rows_of("Encounter", body, "date")
    assert row == DateRow(
        "date", parse_range("2020-01-01")[0], parse_range("2020-01-03T10:00:00Z")[1]
    )
    (row,) = rows_of("Encounter", {**closed, "period": {"start": "2020"}}, "date")
    assert row == DateRow("date", parse_range("2020")[0], HIGHEST)
    (row,) = rows_of("Encounter", {**closed, "period": {"end": "2020"}}, "date")
    assert row == DateRow("date", LOWEST, parse_range("2020")[1])


def test_timing_uses_the_outer_limits() -> None:
    body = {
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/1"},
        "occurrenceTiming": {
            "event": ["2021-03-01", "2021-01-05"],
            "repeat": {"boundsPeriod": {"start": "2020-12-01", "end": "2021-02-01"}},
        },
    }
    (row,) = rows_of("ServiceRequest", body, "occurrence")
    assert row == DateRow("occurrence", parse_range("2020-12-01")[0], parse_range("2021-03-01")[1])


def test_choice_date_value_and_instant() -> None:
    body = {"status": "final", "code": {"text": "c"}, "effectiveInstant": "2021-01-01T00:00:00.5Z"}
    (row,) = rows_of("Observation", body, "date")
    assert row == DateRow("date", *parse_range("2021-01-01T00:00:00.5Z"))


def test_unparseable_values_add_nothing() -> None:
    assert rows_of("Patient", {"birthDate": "not a date"}, "birthdate") == []
    assert rows_of("Patient", {"birthDate": "2020-01-01T10:00"}, "birthdate") == []
