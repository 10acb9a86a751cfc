"""FHIR dates and instants as half-open microsecond ranges (https://hl7.org/fhir/R4/datatypes.html#dateTime).

``2020`` is [2020-01-01, 2021-01-01); ``2020-03-04T10:00:00Z`` is one second. All stored times are
integer microseconds since the Unix epoch, UTC, which sort and compare the same on every engine.
"""

from __future__ import annotations

import email.utils
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

from dhr.errors import bad_request

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HTTP_DATE = re.compile(r"\s*[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\s*$")


def to_micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def now_micros() -> int:
    """The system clock now, in microseconds since the epoch."""
    return time.time_ns() // 1000


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    """``2024-01-02T03:04:05`` of a whole second since the epoch (a write stamps many
    versions within one second: each formats only its fraction)."""
    return from_micros(seconds * 1_000_000).isoformat(timespec="seconds").removesuffix("+00:00")


def format_instant(micros: int) -> str:
    """An R4 ``instant``: ``2024-01-02T03:04:05.678901Z``, always with a zone."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}Z"


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(micros: int) -> str:
    """RFC 9110 IMF-fixdate for ``Last-Modified`` (English names whatever the locale)."""
    return _http_date(micros // 1_000_000)


@lru_cache(maxsize=64)
def _http_date(seconds: int) -> str:
    t = from_micros(seconds * 1_000_000)
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )


def parse_http_date(value: str) -> int | None:
    """Parse an IMF-fixdate (``If-Modified-Since``); None if it is not one."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value) if _HTTP_DATE.match(value) else None
        if moment is None:
            return None
        return to_micros(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment)
    except (ValueError, OverflowError):  # "32 Jan", "99:99:99": not a date, so ignored
        return None


def parse_range(value: str, what: str = "date") -> tuple[int, int]:
    """Parse a FHIR date/dateTime/instant into a half-open [start, end) microsecond range.

    A date the calendar has but the range cannot hold (the end of 9999, in UTC) is a 400 too.
    """
    try:
        return _parse_range(value, what)
    except (ValueError, OverflowError) as exc:
        raise bad_request(
            f"{what} {value[:60]!r} is outside the dates this server handles: {exc}",
            "invalid-date",
        ) from None


def _parse_range(value: str, what: str) -> tuple[int, int]:
    match = _DATE.fullmatch(value.strip())
    if not match:
        raise bad_request(f"{what} {value[:60]!r} is not a FHIR date or dateTime", "invalid-date")
    g = match.groupdict()
    if g["H"] is not None and g["tz"] is None:
        raise bad_request(f"{what} {value[:60]!r} has a time but no time zone", "invalid-date")
    try:
        year = int(g["y"])
        month = int(g["m"] or 1)
        day = int(g["d"] or 1)
        hour, minute = int(g["H"] or 0), int(g["M"] or 0)
        second = int(g["S"] or 0)
        frac = g["f"] or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        tz: timezone = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hh, mm = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(sign * timedelta(hours=hh, minutes=mm))
        start = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:
        raise bad_request(
            f"{what} {value[:60]!r} is not a real date: {exc}", "invalid-date"
        ) from None
    if g["m"] is None:
        end = start.replace(year=year + 1)
    elif g["d"] is None:
        end = (
            start.replace(year=year + 1, month=1) if month == 12 else start.replace(month=month + 1)
        )
    elif g["H"] is None:
        end = start + timedelta(days=1)
    elif g["S"] is None:
        end = start + timedelta(minutes=1)
    elif not frac:
        end = start + timedelta(seconds=1)
    else:
        end = start + timedelta(microseconds=max(1, 10 ** (6 - min(len(frac) - 1, 6))))
    return to_micros(start), to_micros(end)
