"""Bundle entries of a batch or transaction: parsing requests and building response entries.

https://hl7.org/fhir/R4/http.html#transaction and https://hl7.org/fhir/R4/bundle.html#Bundle.entry
(``entry.request`` in, ``entry.response`` out). Entry URLs are relative to the FHIR base; an
absolute URL must start with this server's base.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import orjson

from dhr.api.message import FhirRequest, FhirResponse
from dhr.errors import FhirError, bad_request
from dhr.fhir import jsonio
from dhr.fhir.instant import format_instant, parse_http_date

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")

# entry.request element -> the HTTP header it stands for
CONDITIONAL_HEADERS = {
    "ifNoneExist": "if-none-exist",
    "ifMatch": "if-match",
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
}


@dataclass
class BundleEntry:
    """One request entry, checked for shape; ``url`` is relative to the base."""

    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    headers: dict[str, str]
    assigned_id: str | None = None  # a POST's server id, chosen by an ingest plan
    validated: bool = False  # the resource was validated before the entry was built
    # An ingest plan left every reference in final form (no urn: placeholder, no conditional
    # ``Type?query``): with no fullUrl in the transaction, its rewrite would change nothing.
    references_final: bool = False

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"

    def describe(self) -> str:
        return f"{self.where} ({self.method} {self.url[:100]})"

    def segments(self) -> list[str]:
        path = self.url.partition("?")[0]
        return [s for s in path.split("/") if s]

    def is_nested_bundle(self) -> bool:
        return self.method == "POST" and not self.segments()

    def request(self) -> FhirRequest:
        return FhirRequest.from_url(
            self.method, self.url, headers=dict(self.headers), parsed_body=self.resource
        )


def relative_url(url: str, base: str) -> str:
    """``url`` relative to ``base``; an absolute URL elsewhere is a 400."""
    if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
        return url[len(base) :].lstrip("/")
    if "://" in url.partition("?")[0]:
        raise bad_request(
            f"request.url {url[:100]!r} is not on this server (base {base})", "bundle-foreign-url"
        )
    return url.lstrip("/")


def parse_entry(raw: Any, index: int, base: str, prefer: str | None) -> BundleEntry:
    """Check one ``Bundle.entry`` for the elements a batch/transaction needs (400 otherwise)."""
    where = f"Bundle.entry[{index}]"
    if not isinstance(raw, dict):
        raise bad_request(f"{where} must be a JSON object", "bundle-entry-invalid", where)
    request = raw.get("request")
    if not isinstance(request, dict):
        raise bad_request(
            f"{where} has no request (method and url are required)",
            "bundle-entry-no-request",
            f"{where}.request",
        )
    method = request.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise bad_request(
            f"{where}.request.method must be one of {', '.join(METHODS)}",
            "bundle-entry-bad-method",
            f"{where}.request.method",
        )
    url = request.get("url")
    if not isinstance(url, str) or not url.strip():
        raise bad_request(
            f"{where}.request.url is required", "bundle-entry-no-url", f"{where}.request.url"
        )
    try:
        rel = relative_url(url.strip(), base)
    except FhirError as exc:
        raise bad_request(exc.diagnostics, exc.message_code, f"{where}.request.url") from None
    full_url = raw.get("fullUrl")
    if full_url is not None and (not isinstance(full_url, str) or not full_url.strip()):
        raise bad_request(
            f"{where}.fullUrl must be a non-empty string",
            "bundle-entry-invalid",
            f"{where}.fullUrl",
        )
    resource = raw.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise bad_request(
            f"{where}.resource must be a JSON object", "bundle-entry-invalid", f"{where}.resource"
        )
    method = method.upper()
    if method in ("POST", "PUT") and resource is None and rel.partition("?")[0].count("/") < 2:
        raise bad_request(
            f"{where} is a {method} without a resource", "bundle-entry-no-resource", where
        )
    headers: dict[str, str] = {}
    for element, header in CONDITIONAL_HEADERS.items():
        value = request.get(element)
        if value is None:
            continue
        if not isinstance(value, str):
            raise bad_request(
                f"{where}.request.{element} must be a string",
                "bundle-entry-invalid",
                f"{where}.request.{element}",
            )
        headers[header] = value
    if prefer:
        headers["prefer"] = prefer
    return BundleEntry(index, method, rel, full_url, resource, headers)


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _instant(resource: dict[str, Any] | None, http_date: str | None) -> str | None:
    meta = resource.get("meta") if resource else None
    if isinstance(meta, dict) and isinstance(meta.get("lastUpdated"), str):
        return str(meta["lastUpdated"])
    micros = parse_http_date(http_date) if http_date else None
    return format_instant(micros) if micros is not None else None


def response_entry(resp: FhirResponse, method: str) -> dict[str, Any]:
    """A ``Bundle.entry`` of a batch-response/transaction-response for one entry's result.

    A stored version's bytes go into the entry as they are (an ``orjson.Fragment``, written
    verbatim), not parsed and written again: a transaction of a Synthea record spent 7% of its
    time re-parsing what it had just stored. :func:`bundle_response` writes such a Bundle.
    """
    entry: dict[str, Any] = {}
    location = resp.headers.get("Location")
    if location:
        entry["fullUrl"] = location.split("/_history/")[0]
    body: dict[str, Any] | None = None
    modified: str | None = None
    if resp.status == 304 or method == "HEAD":
        pass
    elif resp.json is None and resp.body is not None and resp.last_updated is not None:
        entry["resource"] = orjson.Fragment(resp.body)  # a stored version, never an outcome
        modified = format_instant(resp.last_updated)
    else:
        body = resp.body_json()
    is_outcome = body is not None and body.get("resourceType") == "OperationOutcome"
    if body is not None and not is_outcome:
        entry["resource"] = body
    response: dict[str, Any] = {"status": _status_line(resp.status)}
    if location:
        response["location"] = location
    if resp.headers.get("ETag"):
        response["etag"] = resp.headers["ETag"]
    modified = modified or _instant(None if is_outcome else body, resp.headers.get("Last-Modified"))
    if modified:
        response["lastModified"] = modified
    if is_outcome:
        response["outcome"] = body
    entry["response"] = response
    return entry


def bundle_response(bundle: dict[str, Any]) -> FhirResponse:
    """200 with a batch-/transaction-response ``bundle``, as bytes when entries hold stored
    bytes (:func:`response_entry`); :meth:`FhirResponse.body_json` parses them on demand."""
    entries = bundle.get("entry") or []
    if any(isinstance(e.get("resource"), orjson.Fragment) for e in entries):
        return FhirResponse(200, jsonio.dumps(bundle), None, {}, "Bundle")
    return FhirResponse(200, None, bundle, {}, "Bundle")


def error_entry(exc: FhirError) -> dict[str, Any]:
    """A batch-response entry for an entry that failed."""
    return {"response": {"status": _status_line(exc.status), "outcome": exc.outcome()}}
