"""Date parameters (https://hl7.org/fhir/R4/search.html#date).

Every value becomes one ``[low, high)`` microsecond range (UTC; a date without a zone is UTC):

* date / dateTime / instant -> its precision range (``2020`` is the whole year);
* Period -> ``[start.low, end.high)``; an open start is :data:`LOWEST`, an open end
  :data:`HIGHEST` ("the period is considered to extend infinitely");
* Timing -> the outer limits of all ``event`` values and ``repeat.boundsPeriod`` ("the
  specified scheduling details are ignored and only the outer limits matter").

A value that does not parse (it passed validation, so this is an edge like a zone-less time)
adds nothing rather than failing the write.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dhr.errors import FhirError
from dhr.fhir.instant import parse_range
from dhr.search.rows import DateRow, IndexRow

LOWEST = -(2**62)  # open Period ends, far outside any real date yet safe in a 64-bit column
HIGHEST = 2**62


def moment(value: Any) -> tuple[int, int] | None:
    """The ``[low, high)`` range of a date/dateTime/instant string, or None."""
    if not isinstance(value, str):
        return None
    return _moment(value)


@lru_cache(maxsize=8192)
def _moment(value: str) -> tuple[int, int] | None:
    # Kept: the resources of one ingest repeat their times (an encounter's start is the
    # effective time of everything recorded in it), and parsing one is ~5 us.
    try:
        return parse_range(value)
    except (FhirError, ValueError, OverflowError):
        return None


def period(value: dict[str, Any]) -> tuple[int, int] | None:
    start, end = moment(value.get("start")), moment(value.get("end"))
    if start is None and end is None:
        return None
    return (start[0] if start else LOWEST, end[1] if end else HIGHEST)


def timing(value: dict[str, Any]) -> tuple[int, int] | None:
    ranges = [r for r in map(moment, value.get("event") or ()) if r is not None]
    repeat = value.get("repeat")
    if isinstance(repeat, dict) and isinstance(repeat.get("boundsPeriod"), dict):
        bounds = period(repeat["boundsPeriod"])
        if bounds is not None:
            ranges.append(bounds)
    if not ranges:
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a date parameter."""
    got: tuple[int, int] | None = None
    if isinstance(value, str):
        got = moment(value)
    elif isinstance(value, dict):
        if fhir_type == "Timing" or "event" in value or "repeat" in value:
            got = timing(value)
        elif fhir_type in (None, "Period") and ("start" in value or "end" in value):
            got = period(value)
    return [DateRow(code, got[0], got[1], grp, comp)] if got else []
