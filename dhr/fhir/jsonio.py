"""Parsing and writing FHIR JSON (https://hl7.org/fhir/R4/json.html).

Bodies are parsed once with orjson, which refuses invalid UTF-8 and nesting deeper than 1024
levels (both become a 400, never a crash). Output is compact UTF-8 unless ``_pretty`` asks.
"""

from __future__ import annotations

from typing import Any

import orjson

from dhr.errors import bad_request


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
    return data


def dumps(data: Any, pretty: bool = False) -> bytes:
    """Serialise to compact (or indented) UTF-8 JSON."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    return orjson.dumps(data, option=option)


def loads(raw: bytes) -> Any:
    """Parse bytes the server itself stored (trusted, already validated)."""
    return orjson.loads(raw)
