"""Which operations exist at system, type and instance level, and the CapabilityStatement.

https://hl7.org/fhir/R4/operations.html. An unknown operation answers 404 with an
OperationOutcome; a known one called with the wrong method answers 405. ``$everything`` exists on
Patient at type and instance level (https://hl7.org/fhir/R4/patient-operation-everything.html);
``$access-log`` on a Patient instance (who accessed the record, :mod:`dhr.operations.access_log`);
``$break-glass`` and ``$claim-relationship`` on a Patient instance (time-limited declarations,
:mod:`dhr.operations.break_glass`, :mod:`dhr.operations.claim_relationship`).
"""

from __future__ import annotations

from dhr.api.message import FhirRequest, FhirResponse
from dhr.api.route import Route
from dhr.context import RequestContext
from dhr.errors import FhirError, not_supported
from dhr.operations import (
    access_check,
    access_log,
    break_glass,
    bulk_import,
    claim_relationship,
    everything,
    match,
    patient_link,
)
from dhr.operations import validate as validate_op
from dhr.operations.capabilities import capability_statement


def capabilities(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    return FhirResponse(200, None, capability_statement(ctx.settings), {}, "CapabilityStatement")


def _unknown(name: str, where: str) -> FhirError:
    return FhirError(
        404, "not-supported", f"Operation ${name[:40]} is not known {where}", "unknown-operation"
    )


def route_system(name: str, method: str) -> Route:
    if name == "import":
        if method != "POST":
            raise not_supported("$import takes POST", 405)
        return Route("import", bulk_import.import_ndjson, write=True)
    if name == "access-check":
        if method != "POST":
            raise not_supported("$access-check takes POST", 405)
        return Route("access-check", access_check.access_check, write=False)
    raise _unknown(name, "at the system level")


def route_type(res_type: str, name: str, method: str) -> Route:
    if name == "validate":
        if method != "POST":
            raise not_supported("$validate takes POST", 405)
        return Route("validate", lambda c, r: validate_op.validate(c, r, res_type), write=False)
    if name == "everything" and res_type == "Patient":
        if method != "GET":
            raise not_supported("$everything takes GET", 405)
        return Route("everything", everything.everything_type, write=False)
    if name == "match" and res_type == "Patient":
        if method != "POST":
            raise not_supported("$match takes POST", 405)
        return Route("match", match.match, write=False)
    raise _unknown(name, f"on {res_type}")


def route_instance(res_type: str, res_id: str, name: str, method: str) -> Route:
    if name == "validate":
        if method != "POST":
            raise not_supported("$validate takes POST", 405)
        return Route(
            "validate", lambda c, r: validate_op.validate(c, r, res_type, res_id), write=False
        )
    if name == "everything" and res_type == "Patient":
        if method != "GET":
            raise not_supported("$everything takes GET", 405)
        return Route(
            "everything", lambda c, r: everything.everything_instance(c, r, res_id), write=False
        )
    if name == "access-log" and res_type == "Patient":
        if method != "GET":
            raise not_supported("$access-log takes GET", 405)
        return Route("access-log", lambda c, r: access_log.access_log(c, r, res_id), write=False)
    if name == "break-glass" and res_type == "Patient":
        if method != "POST":
            raise not_supported("$break-glass takes POST", 405)
        return Route("break-glass", lambda c, r: break_glass.break_glass(c, r, res_id), write=True)
    if name == "claim-relationship" and res_type == "Patient":
        if method != "POST":
            raise not_supported("$claim-relationship takes POST", 405)
        return Route(
            "claim-relationship",
            lambda c, r: claim_relationship.claim_relationship(c, r, res_id),
            write=True,
        )
    if name in ("link", "unlink") and res_type == "Patient":
        if method != "POST":
            raise not_supported(f"${name} takes POST", 405)
        action = patient_link.link if name == "link" else patient_link.unlink
        return Route(name, lambda c, r: action(c, r, res_id), write=True)
    raise _unknown(name, f"on {res_type}/{res_id}")
