"""Typed FHIR errors and their one rendering as an OperationOutcome.

https://hl7.org/fhir/R4/operationoutcome.html and https://hl7.org/fhir/R4/http.html#Status-codes.
Every error the server raises on purpose is a :class:`FhirError`; each carries its HTTP status,
an issue type from https://hl7.org/fhir/R4/valueset-issue-type.html and a stable message code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MESSAGE_CODE_SYSTEM = "https://dhr.nhs.example/fhir/CodeSystem/dhr-message"


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    severity: str
    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()
    message_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"severity": self.severity, "code": self.code}
        if self.message_code:
            out["details"] = {
                "coding": [{"system": MESSAGE_CODE_SYSTEM, "code": self.message_code}]
            }
        out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = list(self.expression)
        return out


def operation_outcome(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    """An OperationOutcome resource for the given issues."""
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


def information(message: str, message_code: str | None = None) -> dict[str, Any]:
    """A one-issue informational OperationOutcome (e.g. for ``Prefer: return=OperationOutcome``)."""
    return operation_outcome([Issue("information", "informational", message, (), message_code)])


@dataclass
class FhirError(Exception):
    """An error with an HTTP status, rendered as an OperationOutcome by the one handler."""

    status: int
    code: str
    diagnostics: str
    message_code: str
    expression: tuple[str, ...] = ()
    extra_issues: tuple[Issue, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.message_code}: {self.diagnostics}"

    @property
    def issues(self) -> tuple[Issue, ...]:
        first = Issue("error", self.code, self.diagnostics, self.expression, self.message_code)
        return (first, *self.extra_issues)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def bad_request(message: str, message_code: str = "bad-request", *expr: str) -> FhirError:
    return FhirError(400, "invalid", message, message_code, tuple(expr))


def invalid_resource(issues: tuple[Issue, ...], message: str) -> FhirError:
    """A resource failed FHIR validation: 400 with one issue per offending element."""
    head, *rest = issues if issues else (Issue("error", "invalid", message),)
    return FhirError(
        400, head.code, head.diagnostics, "invalid-resource", head.expression, tuple(rest)
    )


def unprocessable(message: str, message_code: str, *expr: str) -> FhirError:
    return FhirError(422, "processing", message, message_code, tuple(expr))


def not_found(message: str, message_code: str = "not-found") -> FhirError:
    return FhirError(404, "not-found", message, message_code)


def gone(message: str) -> FhirError:
    return FhirError(410, "deleted", message, "resource-deleted")


def conflict(message: str, message_code: str = "conflict") -> FhirError:
    return FhirError(409, "conflict", message, message_code)


def precondition_failed(message: str, message_code: str = "precondition-failed") -> FhirError:
    return FhirError(412, "conflict", message, message_code)


def not_supported(message: str, status: int = 405) -> FhirError:
    return FhirError(status, "not-supported", message, "not-supported")


def not_acceptable(message: str) -> FhirError:
    return FhirError(406, "not-supported", message, "not-acceptable")


def unsupported_media_type(message: str) -> FhirError:
    return FhirError(415, "not-supported", message, "unsupported-media-type")


def nul_character(what: str) -> FhirError:
    """400: ``what`` holds U+0000, which FHIR strings should not and PostgreSQL text cannot."""
    return bad_request(f"{what} may not contain the NUL character (U+0000)", "nul-character")


def too_large(limit: int) -> FhirError:
    return FhirError(
        413,
        "too-costly",
        f"The request body is larger than the limit of {limit} bytes",
        "payload-too-large",
    )
