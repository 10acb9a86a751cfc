"""Stored times written back as FHIR ``instant`` and HTTP dates (dhr/fhir/instant.py).

https://hl7.org/fhir/R4/datatypes.html#instant (``meta.lastUpdated``) and RFC 9110 section
5.6.7 IMF-fixdate (``Last-Modified``).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dhr.fhir.instant import format_http_date, format_instant, now_micros, to_micros


def micros(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> int:
    return to_micros(datetime(year, month, day, hour, minute, second, us, tzinfo=UTC))


@pytest.mark.parametrize(
    ("stored", "instant", "http"),
    [
        (0, "1970-01-01T00:00:00.000000Z", "Thu, 01 Jan 1970 00:00:00 GMT"),
        (
            micros(2024, 2, 29, 23, 59, 59, 999999),
            "2024-02-29T23:59:59.999999Z",
            "Thu, 29 Feb 2024 23:59:59 GMT",
        ),
        (-1, "1969-12-31T23:59:59.999999Z", "Wed, 31 Dec 1969 23:59:59 GMT"),
        (micros(1, 1, 1), "0001-01-01T00:00:00.000000Z", "Mon, 01 Jan 0001 00:00:00 GMT"),
        (
            micros(9999, 12, 31, 23, 59, 59, 1),
            "9999-12-31T23:59:59.000001Z",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ),
    ],
)
def test_a_stored_time_reads_back_as_instant_and_http_date(
    stored: int, instant: str, http: str
) -> None:
    assert format_instant(stored) == instant
    assert format_http_date(stored) == http


def test_versions_within_one_second_keep_their_own_fractions() -> None:
    second = micros(2026, 11, 27, 10, 0, 0)
    written = [format_instant(second + f) for f in (7, 123456, 999999, 0)]
    assert written == [
        "2026-11-27T10:00:00.000007Z",
        "2026-11-27T10:00:00.123456Z",
        "2026-11-27T10:00:00.999999Z",
        "2026-11-27T10:00:00.000000Z",
    ]
    assert format_http_date(second + 999999) == "Fri, 27 Nov 2026 10:00:00 GMT"
    assert format_http_date(second + 1_000_000) == "Fri, 27 Nov 2026 10:00:01 GMT"


def test_now_is_the_clock_in_microseconds() -> None:
    before = to_micros(datetime.now(UTC))
    now = now_micros()
    after = to_micros(datetime.now(UTC))
    assert before <= now <= after
