"""FHIR patch and conditional patch. https://hl7.org/fhir/R4/http.html#patch

``PATCH [type]/[id]`` applies a JSON Patch (``Content-Type: application/json-patch+json``, RFC
6902) or a FHIRPath Patch (``application/fhir+json``, or ``application/json`` whose body is a
``Parameters``; https://hl7.org/fhir/R4/fhirpatch.html) to the current version. In a Bundle the
entry's resource is the patch: a ``Parameters``, or a ``Binary`` holding a JSON Patch
(https://hl7.org/fhir/R4/http.html#transaction). Any other content type is a 415.

The patched resource must keep its ``resourceType`` and ``id`` (else 400); ``meta.versionId`` and
``meta.lastUpdated`` stay server-managed; the result is validated like an update's body (400
naming the element) and stored as a new version recorded with method PATCH. ``If-Match`` is
honoured (412 when stale). The read and the write happen under the expected version, so a
concurrent change between them is a 409 instead of a lost update. Nothing is written on any
error. ``PATCH [type]?criteria`` patches the one match: no match is a 404, several a 412.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from dhr.api.http import parse_etag
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import (
    FhirError,
    bad_request,
    conflict,
    gone,
    not_found,
    precondition_failed,
    unsupported_media_type,
)
from dhr.fhir import jsonio
from dhr.fhir.ids import check_id
from dhr.fhir.validate import validate_resource
from dhr.interactions.common import write_response
from dhr.interactions.criteria import match_one, parse_criteria
from dhr.patch import fhirpath_patch, jsonpatch
from dhr.store.repository import StaleVersion

JSON_PATCH = "application/json-patch+json"
_FHIR_TYPES = frozenset({"application/fhir+json", "application/json+fhir", "application/json"})
_SERVER_META = ("versionId", "lastUpdated")


def patch(ctx: RequestContext, req: FhirRequest, res_type: str, res_id: str) -> FhirResponse:
    check_id(res_id)
    kind, document = _patch_document(req)
    if_match = parse_etag(req.header("if-match"))
    current = ctx.repo.read_for_change(res_type, res_id, "u")
    if current is None or current.version_id == 0:
        raise not_found(f"{res_type}/{res_id} is not known")
    if current.deleted:
        raise gone(f"{res_type}/{res_id} was deleted (version {current.version_id})")
    if if_match is not None and if_match != current.version_id:
        raise _stale(res_type, res_id, if_match, current.version_id)
    assert current.data is not None
    original: dict[str, Any] = jsonio.loads(current.data)
    if kind == "json-patch":
        patched = jsonpatch.apply(original, document)
    else:
        assert isinstance(document, dict)
        patched = fhirpath_patch.apply(original, document)
    result = _check_result(patched, res_type, res_id)
    try:
        stored, _ = ctx.repo.put(res_type, res_id, result, current.version_id, "PATCH")
    except StaleVersion as stale:
        if if_match is not None:
            raise _stale(res_type, res_id, if_match, stale.current) from None
        raise conflict(
            f"{res_type}/{res_id} changed while it was being patched; retry the patch",
            "concurrent-patch",
        ) from None
    return write_response(req, ctx, stored, 200, f"Patched {res_type}/{res_id}")


def conditional_patch(ctx: RequestContext, req: FhirRequest, res_type: str) -> FhirResponse:
    criteria = parse_criteria(req.query)
    _patch_document(req)  # refuse a bad body before looking for the target
    match = match_one(ctx, res_type, criteria, "Conditional patch")
    if match is None:
        raise not_found(f"Conditional patch: no {res_type} matches the criteria")
    return patch(ctx, req, res_type, match)


def _stale(res_type: str, res_id: str, wanted: int, current: int | None) -> FhirError:
    now = "does not exist" if current is None else f"is at version {current}"
    return precondition_failed(
        f"If-Match asked for version {wanted} but {res_type}/{res_id} {now}", "version-conflict"
    )


def _patch_document(req: FhirRequest) -> tuple[str, Any]:
    """("json-patch", list) or ("fhirpath-patch", Parameters) from the request."""
    if req.parsed_body is not None:
        return _bundle_entry_document(req.parsed_body)
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    body = req.body or b""
    if ctype == JSON_PATCH:
        return "json-patch", _parse_json(body)
    if ctype in _FHIR_TYPES or not ctype:
        if body.lstrip().startswith(b"["):
            raise unsupported_media_type(
                f"This body looks like a JSON Patch; send it with Content-Type {JSON_PATCH}"
            )
        data = jsonio.parse_object(body, "patch body")
        if data.get("resourceType") != "Parameters":
            raise bad_request(
                f"A FHIRPath Patch body must be a Parameters resource; for JSON Patch send "
                f"Content-Type {JSON_PATCH}",
                "patch-not-parameters",
                "resourceType",
            )
        validate_resource(data, "Parameters")
        return "fhirpath-patch", data
    what = "XML" if "xml" in ctype else ctype[:60]
    raise unsupported_media_type(
        f"Content-Type {what} is not accepted for PATCH; send {JSON_PATCH} (JSON Patch) "
        "or application/fhir+json (FHIRPath Patch)"
    )


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise bad_request("The JSON Patch body is empty", "empty-body")
    try:
        return jsonio.loads(body)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"The JSON Patch body is not valid JSON: {exc}", "invalid-json") from None


def _bundle_entry_document(resource: dict[str, Any]) -> tuple[str, Any]:
    rtype = resource.get("resourceType")
    if rtype == "Parameters":
        validate_resource(resource, "Parameters")
        return "fhirpath-patch", resource
    if rtype == "Binary" and resource.get("contentType") == JSON_PATCH:
        try:
            raw = base64.b64decode(str(resource.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("Binary.data is not base64", "patch-invalid-binary") from None
        return "json-patch", _parse_json(raw)
    raise bad_request(
        f"A PATCH entry's resource must be a Parameters (FHIRPath Patch) or a Binary of "
        f"{JSON_PATCH}",
        "patch-entry-resource",
    )


def _check_result(patched: Any, res_type: str, res_id: str) -> dict[str, Any]:
    if not isinstance(patched, dict):
        raise bad_request("The patch does not leave a resource (a JSON object)", "patch-result")
    if patched.get("resourceType") != res_type:
        raise bad_request(
            f"A patch must not change the resourceType ({res_type})",
            "patch-changes-type",
            "resourceType",
        )
    if patched.get("id") != res_id:
        raise bad_request(
            f"A patch must not change or remove the id ({res_id})",
            "patch-changes-id",
            f"{res_type}.id",
        )
    meta = patched.get("meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
        if kept:
            patched["meta"] = kept
        else:
            del patched["meta"]
    validate_resource(patched, res_type)
    return patched
