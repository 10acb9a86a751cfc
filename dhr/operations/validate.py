"""``$validate`` on type and instance. https://hl7.org/fhir/R4/resource-operation-validate.html

The body is the resource itself or a Parameters with a ``resource`` part (and optional ``mode``:
create, update or delete). The answer is 200 with an OperationOutcome listing every problem, or
one information issue when the resource is valid; only a request that cannot be validated at all
(unparsable body) is a 4xx.
"""

from __future__ import annotations

from typing import Any

from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import FhirError, Issue, bad_request, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.validate import validate_resource

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Resource-validate"


def _unwrap(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if body.get("resourceType") != "Parameters":
        return body, None
    resource: dict[str, Any] | None = None
    mode: str | None = None
    for part in body.get("parameter") or []:
        if not isinstance(part, dict):
            continue
        if part.get("name") == "resource" and isinstance(part.get("resource"), dict):
            resource = part["resource"]
        elif part.get("name") == "mode":
            mode = str(part.get("valueCode") or part.get("valueString") or "")
    return resource, mode


def validate(
    ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str | None = None
) -> FhirResponse:
    check_body_type(req)
    body = jsonio.parse_object(req.body or b"")
    resource, mode = _unwrap(body)
    if mode not in (None, "create", "update", "delete"):
        raise bad_request(
            f"$validate mode {mode!r} is not one of create, update, delete", "bad-mode"
        )
    if mode == "delete":
        return _outcome([Issue("information", "informational", "Deletion is allowed")])
    if resource is None:
        raise bad_request(
            "$validate needs a resource (the body, or a 'resource' parameter)", "no-resource"
        )
    try:
        validate_resource(resource, res_type)
    except FhirError as exc:
        return _outcome(list(exc.issues))
    if (
        (mode == "update" or res_id is not None)
        and res_id is not None
        and resource.get("id") != res_id
    ):
        return _outcome(
            [
                Issue(
                    "error",
                    "invalid",
                    f"The resource's id must be {res_id!r} for an update",
                    (f"{res_type}.id",),
                )
            ]
        )
    return _outcome([Issue("information", "informational", f"The {res_type} is valid FHIR R4")])


def _outcome(issues: list[Issue]) -> FhirResponse:
    return FhirResponse(200, None, operation_outcome(issues), {}, "OperationOutcome")
