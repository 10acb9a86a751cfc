"""URI parameters (https://hl7.org/fhir/R4/search.html#uri): uri, url, canonical, oid, uuid.

The value is stored as written (cut at 512, the column length); ``:above``/``:below`` are
prefix comparisons the query compiler makes on it.
"""

from __future__ import annotations

from typing import Any

from dhr.search.rows import IndexRow, UriRow

_MAX = 512


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a uri parameter (a Reference contributes its ``reference``)."""
    if isinstance(value, dict):
        value = value.get("reference")
    if isinstance(value, str) and value:
        return [UriRow(code, value[:_MAX], grp, comp)]
    return []
