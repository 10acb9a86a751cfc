"""Compressed request bodies: ``Content-Encoding`` (RFC 9110 section 8.4).

A supplier sending a large transaction Bundle may compress it. ``gzip`` (and its old name
``x-gzip``) and ``deflate`` (the zlib format, RFC 9110 8.4.1.2; a raw deflate stream is taken
too, as browsers do) are decoded before anything reads the body; ``identity`` is no coding.
Anything else is a 415 naming what is accepted in ``Accept-Encoding`` (RFC 9110 15.5.16). The
decoded body is held to the same size limit as a plain one, checked while decoding, so a small
body that inflates to gigabytes is a 413 after reading no more than the limit.
"""

from __future__ import annotations

import zlib

from dhr.errors import FhirError, bad_request, too_large

ACCEPTED = "gzip, deflate"
_GZIP = 16 + zlib.MAX_WBITS
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS


def decode(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """``body`` with its content codings undone (the last applied is undone first)."""
    if not content_encoding:
        return body
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, _GZIP, coding, limit)
        elif coding == "deflate":
            try:
                body = _inflate(body, _ZLIB, coding, limit)
            except FhirError as exc:
                if exc.status == 413:
                    raise
                body = _inflate(body, _RAW, coding, limit)
        else:
            raise FhirError(
                415,
                "not-supported",
                f"Content-Encoding {coding[:40]!r} is not supported; send {ACCEPTED} or none",
                "unsupported-content-encoding",
                headers={"Accept-Encoding": ACCEPTED},
            )
    return body


def _inflate(body: bytes, wbits: int, coding: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise bad_request(
            f"The body is not valid {coding} data: {exc}", "bad-content-encoding"
        ) from None
    if len(out) > limit:
        raise too_large(limit)
    if not inflater.eof or inflater.unused_data:
        raise bad_request(
            f"The {coding} body is truncated or has bytes after its end", "bad-content-encoding"
        )
    return out
