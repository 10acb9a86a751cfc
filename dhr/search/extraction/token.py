"""Token parameters (https://hl7.org/fhir/R4/search.html#token).

What each data type contributes (the table in search.html#token):

* Coding -> ``system``, ``code``; ``display`` (normalised) in ``text`` for ``:text``;
* CodeableConcept -> one row per coding (its display, or else the concept's text, in ``text``)
  plus, when ``CodeableConcept.text`` is present, a row with no system/code carrying that text;
* Identifier -> ``system``, ``value``; ``type.text`` (or its first display) in ``text``;
* ContactPoint -> ``value`` as the code, no system (``ContactPoint.system`` is not a URI);
* code / string / id / uri and other primitives -> the value as the code, no system;
  boolean -> ``true`` / ``false``.

Other types (Quantity, Range, Reference...) do not match token searches and add nothing.
"""

from __future__ import annotations

from typing import Any

from dhr.search.extraction.text import norm
from dhr.search.rows import IndexRow, TokenRow

_MAX = 255
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_SKIP = frozenset({"Quantity", "Range", "Reference", "Period", "Ratio", "SampledData", "Money"})


def _s(value: Any) -> str | None:
    return value[:_MAX] if isinstance(value, str) and value else None


def _text(value: Any) -> str | None:
    return norm(value) or None if isinstance(value, str) else None


def _coding(code: str, c: Any, fallback: str | None, grp: int, comp: int) -> TokenRow | None:
    if not isinstance(c, dict):
        return None
    system, value = _s(c.get("system")), _s(c.get("code"))
    text = _text(c.get("display")) or fallback
    if system is None and value is None and text is None:
        return None
    return TokenRow(code, system, value, text, grp, comp)


def _concept(code: str, cc: dict[str, Any], grp: int, comp: int) -> list[IndexRow]:
    out: list[IndexRow] = []
    text = _text(cc.get("text"))
    for c in cc.get("coding") or ():
        row = _coding(code, c, text, grp, comp)
        if row is not None:
            out.append(row)
    if text:
        out.append(TokenRow(code, None, None, text, grp, comp))
    return out


def _identifier(code: str, ident: dict[str, Any], grp: int, comp: int) -> list[IndexRow]:
    system, value = _s(ident.get("system")), _s(ident.get("value"))
    if value is None and system is None:
        return []
    kind = ident.get("type")
    text = None
    if isinstance(kind, dict):
        text = _text(kind.get("text"))
        codings = kind.get("coding")
        if text is None and isinstance(codings, list) and codings and isinstance(codings[0], dict):
            text = _text(codings[0].get("display"))
    return [TokenRow(code, system, value, text, grp, comp)]


def _guess(value: dict[str, Any]) -> str | None:
    """The data type of an untyped (fallback-evaluated) complex value, from its shape."""
    if "coding" in value or set(value) <= {"text", "id", "extension"}:
        return "CodeableConcept"
    if "code" in value or "display" in value:
        return "Coding"
    if "value" in value and value.get("system") in _CONTACT_SYSTEMS:
        return "ContactPoint"
    if "value" in value or "system" in value:
        return "Identifier"
    return None


def rows(code: str, value: Any, fhir_type: str | None, grp: int, comp: int) -> list[IndexRow]:
    """Rows for one value of a token parameter."""
    if isinstance(value, bool):
        return [TokenRow(code, None, "true" if value else "false", None, grp, comp)]
    if isinstance(value, str):
        return [TokenRow(code, None, value[:_MAX], None, grp, comp)] if value else []
    if isinstance(value, (int, float)):
        return [TokenRow(code, None, str(value), None, grp, comp)]
    if not isinstance(value, dict) or fhir_type in _SKIP:
        return []
    kind = fhir_type or _guess(value)
    if kind == "CodeableConcept":
        return _concept(code, value, grp, comp)
    if kind == "Coding":
        row = _coding(code, value, None, grp, comp)
        return [row] if row is not None else []
    if kind == "Identifier":
        return _identifier(code, value, grp, comp)
    if kind == "ContactPoint":
        contact = _s(value.get("value"))
        return [TokenRow(code, None, contact, None, grp, comp)] if contact else []
    return []
