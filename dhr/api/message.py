"""Transport-neutral FHIR request and response values.

The HTTP routes and the batch/transaction processor both build a :class:`FhirRequest` and get a
:class:`FhirResponse` back, so a Bundle entry runs exactly the code an HTTP request runs
(https://hl7.org/fhir/R4/http.html#transaction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class FhirRequest:
    """One FHIR interaction request, relative to the FHIR base."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes | None = None
    parsed_body: dict[str, Any] | None = None  # set when a Bundle entry already holds the resource
    validated: bool = False  # parsed_body was already validated (an ingest validates up front)

    @staticmethod
    def from_url(method: str, url: str, **kwargs: Any) -> FhirRequest:
        path, _, qs = url.partition("?")
        query = tuple(parse_qsl(qs, keep_blank_values=True))
        return FhirRequest(method.upper(), path.strip("/"), query, **kwargs)

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s] if self.path else []

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None

    def params(self, name: str) -> list[str]:
        return [v for k, v in self.query if k == name]


@dataclass
class FhirResponse:
    """Status, headers and either raw JSON bytes or a JSON-able value."""

    status: int
    body: bytes | None = None
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    resource_type: str | None = None
    # meta.lastUpdated (µs) of the stored version the response shows (read, vread, create,
    # update), for a transaction-response entry's lastModified without parsing ``body``.
    last_updated: int | None = None

    def body_json(self) -> dict[str, Any] | None:
        """The body as a dict (parsing stored bytes only when someone needs the structure)."""
        if self.json is not None:
            return self.json
        if self.body is not None:
            from dhr.fhir import jsonio

            value = jsonio.loads(self.body)
            return value if isinstance(value, dict) else None
        return None
