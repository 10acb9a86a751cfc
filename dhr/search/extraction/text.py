"""Fast, cached string normalisation for index rows (https://hl7.org/fhir/R4/search.html#string).

Gives exactly :func:`dhr.search.normalise.normalise` (the function queries use), with an ASCII
shortcut and a bounded memo: displays such as LOINC names repeat across thousands of writes.
"""

from __future__ import annotations

from dhr.search.normalise import MAX_INDEXED, normalise

_MEMO: dict[str, str] = {}
_MEMO_SIZE = 50_000


def norm(value: str) -> str:
    """``normalise(value)``, faster."""
    found = _MEMO.get(value)
    if found is not None:
        return found
    ascii_only = value.isascii()
    found = " ".join(value.lower().split())[:MAX_INDEXED] if ascii_only else normalise(value)
    if len(_MEMO) >= _MEMO_SIZE:
        _MEMO.clear()
    _MEMO[value] = found
    return found
