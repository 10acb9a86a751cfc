"""Reading the form body of an OAuth endpoint (token, introspection, revocation).

RFC 6749 appendix B (``application/x-www-form-urlencoded``, UTF-8) and section 3.1/3.2
(parameters may not repeat); the body is capped at 64 KiB. Failures are OAuth
``invalid_request`` errors.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from dhr.auth.client_auth import OAuthError
from dhr.digits import natural

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An OAuth form body (RFC 6749 appendix B); raises OAuthError ``invalid_request``.

    Parameters may not repeat (RFC 6749 section 3.1) and the body may not exceed 64 KiB.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != FORM:
        raise OAuthError("invalid_request", f"the request body must be {FORM}")
    declared = request.headers.get("content-length", "")
    length = natural(declared)
    if declared.isdigit() and (length is None or length > MAX_FORM_BYTES):
        raise OAuthError("invalid_request", "the request body is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the request body is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "the form body is not valid UTF-8") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is repeated")
        form[name] = value
    return form
