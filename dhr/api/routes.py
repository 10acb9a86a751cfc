"""FastAPI routes: HTTP in, :class:`FhirRequest` to the dispatcher, HTTP out. No FHIR rules here.

The FHIR base is ``/fhir`` (https://hl7.org/fhir/R4/http.html#general). Bodies are read with a
size limit (413 past it) before anything parses them.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from dhr.api.dispatch import Services, handle
from dhr.api.http import CONTENT_TYPE, representation
from dhr.api.message import FhirRequest, FhirResponse
from dhr.errors import FhirError, too_large
from dhr.fhir import jsonio
from dhr.interactions.common import error_response

log = logging.getLogger(__name__)
router = APIRouter()
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def to_http(req: FhirRequest, resp: FhirResponse) -> Response:
    headers = dict(resp.headers)
    content: bytes = b""
    if resp.json is not None:
        try:
            pretty = representation(req).pretty
        except FhirError:
            pretty = False
        content = jsonio.dumps(resp.json, pretty)
    elif resp.body is not None:
        content = resp.body
    if req.method == "HEAD" or resp.status == 304:
        content = b""
    media = CONTENT_TYPE if (resp.json is not None or resp.body is not None) else None
    return Response(content=content, status_code=resp.status, headers=headers, media_type=media)


@router.api_route("/fhir", methods=METHODS, include_in_schema=False)
@router.api_route("/fhir/{path:path}", methods=METHODS, include_in_schema=False)
async def fhir_endpoint(
    request: Request, svc: Annotated[Services, Depends(services)], path: str = ""
) -> Response:
    headers = {k.lower(): v for k, v in request.headers.items()}
    query = tuple(request.query_params.multi_items())
    req = FhirRequest(request.method, path.strip("/"), query, headers, None)
    try:
        body = await read_body(request, svc.settings.max_body_bytes)
    except FhirError as exc:
        return to_http(req, error_response(exc))
    req = FhirRequest(request.method, req.path, query, headers, body)
    resp = await run_in_threadpool(handle, svc, req)
    return to_http(req, resp)
