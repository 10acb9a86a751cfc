"""Non-negative integers as requests write them: counts, page cursors, versions, lengths.

Python refuses to convert a string of more than 4,300 digits to an integer (the limit against
CVE-2020-10735, https://docs.python.org/3/library/stdtypes.html#int-max-str-digits), and a
client can send one. Every such value is read through :func:`natural`, which answers None for
anything that is not a plain ASCII decimal number of at most 18 digits (below 2**63), so the
caller's own 400 applies instead of a 500.
"""

from __future__ import annotations

MAX_DIGITS = 18


def natural(raw: str | None, most: int = MAX_DIGITS) -> int | None:
    """``raw`` as a non-negative integer, or None when it is not one of at most ``most``
    ASCII digits."""
    if raw is None or not 0 < len(raw) <= most or not raw.isascii() or not raw.isdigit():
        return None
    return int(raw)
