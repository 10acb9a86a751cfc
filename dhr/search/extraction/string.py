"""String parameters (https://hl7.org/fhir/R4/search.html#string).

Each string is stored normalised (``norm``: case and accents folded, for the default
starts-with and ``:contains``) and as written (``exact``, for ``:exact``), both cut at 255.
A HumanName contributes each of ``family``, ``given``, ``prefix``, ``suffix`` and ``text`` as its
own row ("may match any of the string fields in the HumanName"); an Address each of ``line``,
``city``, ``district``, ``state``, ``postalCode``, ``country`` and ``text``.
"""

from __future__ import annotations

from typing import Any

from dhr.search.extraction.text import norm
from dhr.search.rows import IndexRow, StringRow

_MAX = 255
NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")
_PARTS = {"HumanName": NAME_PARTS, "Address": ADDRESS_PARTS}
_OTHER_TEXT = ("text", "display", "value")  # CodeableConcept.text, Coding.display, Identifier


def _guess(value: dict[str, Any]) -> str | None:
    if "family" in value or "given" in value or "prefix" in value or "suffix" in value:
        return "HumanName"
    if any(k in value for k in ("line", "city", "district", "state", "postalCode", "country")):
        return "Address"
    return None


def _one(code: str, text: str, grp: int, comp: int) -> StringRow | None:
    folded = norm(text)
    return StringRow(code, folded, text[:_MAX], grp, comp) if folded else None


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a string parameter."""
    texts: list[str] = []
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, dict):
        kind = fhir_type if fhir_type in _PARTS else _guess(value)
        for part in _PARTS[kind] if kind else _OTHER_TEXT:
            got = value.get(part)
            if isinstance(got, str):
                texts.append(got)
            elif isinstance(got, list):
                texts.extend(v for v in got if isinstance(v, str))
    out: list[IndexRow] = []
    for text in texts:
        row = _one(code, text, grp, comp)
        if row is not None:
            out.append(row)
    return out
