"""FHIR HTTP conventions: content negotiation, ``Prefer``, ETags and conditional headers.

https://hl7.org/fhir/R4/http.html#mime-type, #ops (Prefer), #concurrency (ETag/If-Match),
#cread (If-None-Match / If-Modified-Since). JSON is the only format served; XML is refused.
A parameter whose name or value holds U+0000 is a 400: FHIR strings hold no control characters
but tab, CR and LF (https://hl7.org/fhir/R4/datatypes.html#string) and PostgreSQL text cannot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dhr.api.message import FhirRequest
from dhr.digits import natural
from dhr.errors import bad_request, not_acceptable, nul_character, unsupported_media_type

FHIR_JSON = "application/fhir+json"
CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"

_JSON_FORMATS = {"json", FHIR_JSON, "application/json", "application/json+fhir", "text/json"}
_XML_HINTS = ("xml",)
_ETAG = re.compile(r'^\s*(?:W/)?"?([^"]*)"?\s*$')


@dataclass(frozen=True)
class Representation:
    """How the response body should look."""

    pretty: bool
    summary: str | None
    elements: tuple[str, ...]


def negotiate(req: FhirRequest) -> None:
    """Refuse, with 406, a request that asks only for a format other than FHIR JSON."""
    fmt = req.param("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip().lower() not in _JSON_FORMATS:
            raise not_acceptable(
                f"_format {fmt[:60]!r} is not served; this server speaks FHIR JSON"
            )
        return
    accept = req.header("accept")
    if not accept:
        return
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if any(
        k in _JSON_FORMATS or k in ("*/*", "application/*") or k.endswith("json") for k in kinds
    ):
        return
    if any(k.endswith("html") or k == "text/*" for k in kinds):
        return  # a browser: JSON is fine to show
    raise not_acceptable(f"Accept {accept[:80]!r} lists no JSON type; this server speaks FHIR JSON")


def check_parameters(pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse, with 400, a parameter (URL query, form body or condition) holding a NUL, before
    any SQL and the same on every engine (SQLite would search for it, PostgreSQL would refuse
    the statement, and an unknown parameter would be ignored with its NUL)."""
    for name, value in pairs:
        if "\x00" in name or "\x00" in value:
            raise nul_character(f"Parameter {name[:60]!r}")


def check_body_type(req: FhirRequest, *, patch: bool = False) -> None:
    """Refuse, with 415, a request body that is not JSON (XML included)."""
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if not ctype:
        return  # lenient: many clients omit it; the JSON parser decides
    if patch and ctype in ("application/json-patch+json", "application/json"):
        return
    if (
        ctype in _JSON_FORMATS
        or ctype.endswith("+json")
        or ctype == "application/x-www-form-urlencoded"
    ):
        return
    what = "XML" if any(h in ctype for h in _XML_HINTS) else ctype[:60]
    raise unsupported_media_type(f"Content-Type {what} is not accepted; send {FHIR_JSON}")


def representation(req: FhirRequest) -> Representation:
    pretty = (req.param("_pretty") or "").lower() == "true"
    summary = req.param("_summary")
    if summary is not None and summary not in ("true", "false", "text", "data", "count"):
        raise bad_request(f"_summary={summary[:20]!r} is not one of true, text, data, count, false")
    if summary == "false":
        summary = None
    elements: tuple[str, ...] = ()
    for raw in req.params("_elements"):
        elements += tuple(e.strip() for e in raw.split(",") if e.strip())
    return Representation(pretty, summary, elements)


def prefer_return(req: FhirRequest) -> str:
    """``minimal``, ``representation`` (default) or ``OperationOutcome``."""
    for part in (req.header("prefer") or "").split(";"):
        for item in part.split(","):
            key, _, value = item.strip().partition("=")
            if key.strip() == "return":
                value = value.strip().strip('"')
                if value in ("minimal", "representation", "OperationOutcome"):
                    return value
    return "representation"


def prefer_strict(req: FhirRequest) -> bool:
    return "handling=strict" in (req.header("prefer") or "").replace(" ", "")


def parse_etag(value: str | None) -> int | None:
    """``W/"3"`` -> 3; None if absent. A malformed ETag is a 400."""
    if value is None or not value.strip():
        return None
    match = _ETAG.match(value)
    version = natural(match.group(1) if match else "")
    if version is None:
        raise bad_request(
            f'ETag {value[:40]!r} does not name a version (expected W/"n")', "bad-etag"
        )
    return version
