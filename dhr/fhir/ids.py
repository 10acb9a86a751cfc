"""Logical ids and version ids (https://hl7.org/fhir/R4/datatypes.html#id)."""

from __future__ import annotations

import os
import re
import threading
import time

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
    """A fresh server-assigned id: a time-ordered (version 7) UUID, RFC 9562 section 5.7."""
    try:
        return _POOL.pop()  # atomic: threads share the pool without a lock
    except IndexError:
        fresh = _uuids(_POOL_SIZE)
        mine = fresh.pop()
        _POOL.extend(fresh)
        return mine


# Ids are made in batches from one read of the kernel's random source (every request makes two:
# its request id and its AuditEvent id), three to four times cheaper each. Two threads
# refilling at once both add fresh ids.
#
# Time-ordered, not random (ADR 0012): each index on an id (a resource's type and id, the
# source identities, an AuditEvent's id, the references to a new resource) then grows at its
# end, where a random id would change a page anywhere in the index with every insert. A process
# makes its ids rising and unique: the 12 bits after the version count within a millisecond
# (section 6.2, method 1), and a millisecond with more than 4,096 ids borrows the next one.
# (Threads that refill the pool at once may take theirs slightly out of order; that is all.)
_POOL_SIZE = 256
_POOL: list[str] = []
_COUNTER_BITS = 12
_last = [0]  # the last (milliseconds << 12 | counter) handed out
_lock = threading.Lock()


def _uuids(count: int) -> list[str]:
    """``count`` version 7 UUIDs in canonical form, the first last (``pop`` takes them rising):
    48 bits of Unix milliseconds, the version, a 12-bit counter, the variant and 62 random
    bits from ``os.urandom``."""
    with _lock:
        first = max(_last[0] + 1, time.time_ns() // 1_000_000 << _COUNTER_BITS)
        _last[0] = first + count - 1
    rand = os.urandom(8 * count)
    out: list[str] = []
    for i in range(count):
        stamp = first + i
        ms, counter = stamp >> _COUNTER_BITS, stamp & 0xFFF
        tail = int.from_bytes(rand[8 * i : 8 * i + 8]) & 0x3FFF_FFFF_FFFF_FFFF | 1 << 63
        h = f"{ms:012x}{0x7000 | counter:04x}{tail:016x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    out.reverse()
    return out


def parse_version_id(value: str) -> int | None:
    """Our version ids are positive integers; anything else names no version here (None)."""
    if not value.isdigit() or len(value) > 12 or int(value) < 1:
        return None
    return int(value)
