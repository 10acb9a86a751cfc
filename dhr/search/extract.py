"""Index extraction at write time (https://hl7.org/fhir/R4/search.html).

``extract(res_type, body)`` returns the index rows of one resource. Today it indexes
``identifier`` as a token (what conditional interactions need); the search issue fills in every
registered parameter of every type from the parameters' FHIRPath expressions.
"""

from __future__ import annotations

from typing import Any

from dhr.search.rows import IndexRow, TokenRow


def extract(res_type: str, body: dict[str, Any]) -> list[IndexRow]:
    """The index rows for ``body``."""
    del res_type  # every type's ``identifier`` element is indexed the same way
    raw = body.get("identifier")
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, dict) else []
    rows: list[IndexRow] = []
    for ident in items:
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            system = ident.get("system") if isinstance(ident.get("system"), str) else None
            rows.append(TokenRow("identifier", system, ident["value"][:255]))
    return rows
