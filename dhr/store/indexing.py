"""Index extraction at write time (https://hl7.org/fhir/R4/search.html).

For now the token index holds ``identifier`` (what conditional create, update and delete need);
the search issue replaces this with extraction for every registered search parameter.
"""

from __future__ import annotations

from typing import Any


def token_rows(res_type: str, body: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """``(param, system, code)`` rows for ``body``."""
    del res_type  # every type's ``identifier`` element is indexed the same way
    raw = body.get("identifier")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    rows: list[tuple[str, str | None, str]] = []
    for ident in items:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = ident.get("system") if isinstance(ident.get("system"), str) else None
            rows.append(("identifier", system, ident["value"][:255]))
    return rows
