"""Validation of every incoming resource against the ``fhir.resources.R4B`` models.

https://hl7.org/fhir/R4/validation.html. A failure becomes OperationOutcome issues whose
``expression`` is a FHIRPath to the offending element, e.g. ``Patient.name[0].family``.
Narratives must keep the XHTML rules (:mod:`dhr.fhir.narrative`). A Patient's NHS numbers must
also pass the Modulus 11 check (:mod:`dhr.record.nhs_number`): a valid FHIR Patient with an
invalid one is a 422 naming ``Patient.identifier[i].value``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from dhr.errors import FhirError, Issue, bad_request, invalid_resource
from dhr.fhir.ids import check_id
from dhr.fhir.narrative import check_narratives
from dhr.fhir.strict import strict_issues
from dhr.fhir.types import check_type, model_class
from dhr.fhir.validate_paths import element_path
from dhr.record.nhs_number import check_nhs_numbers

MAX_ISSUES = 50


def _issues(type_name: str, exc: ValidationError) -> tuple[Issue, ...]:
    out: list[Issue] = []
    for err in exc.errors(include_url=False)[:MAX_ISSUES]:
        loc = tuple(p for p in err.get("loc", ()) if isinstance(p, int | str))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        code = "required" if err.get("type") == "missing" else "structure"
        if err.get("type") == "extra_forbidden":
            message = "Unknown element (not part of this resource type)"
        path = element_path(type_name, loc)
        out.append(Issue("error", code, f"{path}: {message}", (path,), "invalid-element"))
    return tuple(out)


def resource_type_of(data: dict[str, Any]) -> str:
    """The checked ``resourceType`` of a parsed body."""
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise bad_request("The body has no resourceType", "missing-resource-type", "resourceType")
    try:
        return check_type(rtype)
    except FhirError as exc:
        # An unknown type inside a body is a bad request, not a missing endpoint.
        raise FhirError(
            400, exc.code, exc.diagnostics, exc.message_code, ("resourceType",)
        ) from None


def check_resource_id(rtype: str, data: dict[str, Any]) -> None:
    """A body's ``id``, when it has one, must be a valid FHIR id (400 naming ``Type.id``)."""
    rid = data.get("id")
    if rid is not None:
        if not isinstance(rid, str):
            raise bad_request("Resource.id must be a string", "invalid-id", f"{rtype}.id")
        check_id(rid, "Resource id")


def validate_resource(data: dict[str, Any], expected_type: str | None = None) -> str:
    """Validate ``data`` as a FHIR R4 resource; return its type or raise a 400 OperationOutcome
    (422 for a Patient whose NHS number fails the Modulus 11 check).

    When ``expected_type`` is given (the type in the URL), the body must be of that type.
    """
    rtype = resource_type_of(data)
    if expected_type is not None and rtype != expected_type:
        raise bad_request(
            f"The body is a {rtype} but the URL names {expected_type}",
            "wrong-resource-type",
            "resourceType",
        )
    check_resource_id(rtype, data)
    try:
        model = model_class(rtype).model_validate(data)
    except ValidationError as exc:
        raise invalid_resource(_issues(rtype, exc), f"The {rtype} is not valid FHIR R4") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise invalid_resource((), f"The {rtype} is not valid FHIR R4: {exc}") from None
    except KeyError as exc:  # fhir.resources meets a resourceType it has no model for
        raise invalid_resource(
            (), f"The {rtype} holds a resource of unknown type {str(exc)[:80]}"
        ) from None
    problems = strict_issues(rtype, data, model)
    if problems:
        raise invalid_resource(tuple(problems), f"The {rtype} is not valid FHIR R4 JSON")
    check_narratives(rtype, data)
    check_nhs_numbers(rtype, data)
    return rtype
