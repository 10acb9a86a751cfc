"""Parsing and writing FHIR JSON (https://hl7.org/fhir/R4/json.html).

Bodies are parsed once with orjson, which refuses invalid UTF-8 and nesting deeper than 1024
levels (both become a 400, never a crash). FHIR decimals keep their precision ("1.50" stays
1.50, https://hl7.org/fhir/R4/datatypes.html#decimal): when a body holds a number a float would
change (trailing zeros, exponents, 15+ fraction digits) it is parsed again with those numbers as
``Decimal``, and ``Decimal`` is written back verbatim. Output is compact UTF-8 unless ``_pretty``.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import orjson

from dhr.errors import bad_request

# A JSON number token (after ':' ',' or '[', before ',' ']' or '}') whose float would not write
# back as written: a fraction ending in 0, an exponent, or 15+ fraction digits. Timestamps and
# other strings do not match, so a document's number types depend only on its numbers.
_RISKY_NUMBER = re.compile(rb"[:\[,]\s*-?\d+(?:\.\d*0|\.\d{15,}|(?:\.\d+)?[eE][+-]?\d+)\s*[,\]}]")
# Cheap first looks (a literal first character lets the regex engine skip ahead): a document
# none of them matches has no risky number, and most documents are such; the exact pattern above
# decides the rest. A fraction ending in 0 or of 15+ digits; an exponent, seen after mapping
# every digit and sign to "0", e/E to "e" and what may end a number to "|" (so "e0|").
_FRACTION_0 = re.compile(rb"\.\d*0[\s,\]}]")
_LONG_FRACTION = re.compile(rb"\.\d{15}")
_EXPONENT_END = re.compile(rb"e0+\|")
_SHAPES = bytes(
    ord("0")
    if c in b"0123456789+-"
    else ord("e")
    if c in b"eE"
    else ord("|")
    if c in b" \t\r\n,]}"
    else ord(".")
    for c in range(256)
)


def _has_risky_number(body: bytes) -> bool:
    """Whether ``body`` holds a number a float would write back differently."""
    maybe = (
        _FRACTION_0.search(body) is not None
        or _LONG_FRACTION.search(body) is not None
        or _EXPONENT_END.search(body.translate(_SHAPES)) is not None
    )
    return maybe and _RISKY_NUMBER.search(body) is not None


def parse_object(body: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse ``body`` as a JSON object or raise a 400 FhirError saying why."""
    if not body or not body.strip():
        raise bad_request(f"The {what} is empty; a FHIR JSON resource was expected", "empty-body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        text = str(exc)
        if "recursion" in text.lower() or "depth limit" in text.lower():
            raise bad_request(
                f"The {what} is nested too deeply to be a FHIR resource", "json-too-deep"
            ) from None
        if "utf-8" in text.lower() or "surrogate" in text.lower():
            raise bad_request(f"The {what} is not valid UTF-8", "invalid-utf8") from None
        raise bad_request(f"The {what} is not valid JSON: {text}", "invalid-json") from None
    if not isinstance(data, dict):
        raise bad_request(f"The {what} must be a JSON object (a FHIR resource)", "not-an-object")
    if _has_risky_number(body):
        try:
            data = dict(_decimal_loads(body))
        except RecursionError:
            raise bad_request(
                f"The {what} is nested too deeply to be a FHIR resource", "json-too-deep"
            ) from None
    return data


def _decimal_loads(raw: bytes) -> Any:
    return json.loads(raw, parse_float=Decimal)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(data: Any, pretty: bool = False) -> bytes:
    """Serialise to compact (or indented) UTF-8 JSON; ``Decimal`` keeps its digits."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(data, default=_default, option=option)


def canonical(data: Any) -> bytes:
    """Compact JSON with sorted keys: equal for equal FHIR content, floats or Decimals alike."""
    return orjson.dumps(data, default=_default, option=orjson.OPT_SORT_KEYS)


def loads(raw: bytes) -> Any:
    """Parse bytes the server itself stored (trusted, already validated), decimals kept."""
    if _has_risky_number(raw):
        return _decimal_loads(raw)
    return orjson.loads(raw)
