"""Logical ids and version ids (https://hl7.org/fhir/R4/datatypes.html#id)."""

from __future__ import annotations

import os
import re

from dhr.errors import bad_request

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def is_valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a FHIR id, else raise a 400."""
    if not is_valid_id(value):
        raise bad_request(
            f"{what} {value[:80]!r} is not a FHIR id ([A-Za-z0-9-.]{{1,64}})", "invalid-id"
        )
    return value


def new_id() -> str:
    """A fresh server-assigned id: a random (version 4) UUID, RFC 9562 section 5.4."""
    try:
        return _POOL.pop()  # atomic: threads share the pool without a lock
    except IndexError:
        fresh = _uuids(_POOL_SIZE)
        mine = fresh.pop()
        _POOL.extend(fresh)
        return mine


# ``uuid.uuid4()`` asks the kernel for 16 random bytes each time; ids are made in batches
# from one read of the same source (every request makes two: its request id and its AuditEvent
# id), three to four times cheaper each. Two threads refilling at once both add fresh ids.
_POOL_SIZE = 256
_POOL: list[str] = []


def _uuids(count: int) -> list[str]:
    """``count`` version 4 UUIDs (122 random bits from ``os.urandom``) in canonical form."""
    raw = bytearray(os.urandom(16 * count))
    out: list[str] = []
    for i in range(0, 16 * count, 16):
        raw[i + 6] = (raw[i + 6] & 0x0F) | 0x40  # version 4
        raw[i + 8] = (raw[i + 8] & 0x3F) | 0x80  # the RFC variant
        h = raw[i : i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def parse_version_id(value: str) -> int | None:
    """Our version ids are positive integers; anything else names no version here (None)."""
    if not value.isdigit() or len(value) > 12 or int(value) < 1:
        return None
    return int(value)
