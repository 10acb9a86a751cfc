"""The controllers of a stored resource, kept on its resource row as one short string.

ARCHITECTURE.md "The unified record": every resource carries its data controllers as
``meta.tag`` codes of :data:`~dhr.record.vocab.CONTROLLER_SYSTEM` (the originating organisation
and the national controller, ADR 0008). The consent decision asks of each candidate row whether a
controller is in, or outside, a set of ODS codes (``consent.formula.ControllerIn`` and
``ControllerOutside``). Reading the ``_tag`` index rows for that cost an index probe per
candidate; the row's ``controllers`` column answers from the row itself:

* ``None``: no controller tag;
* ``" A X24 "``: the codes, sorted, each between single spaces (so ``LIKE '% A %'`` finds one
  code and removing ``' A '`` for each code of a set leaves ``' '`` when none is outside it);
* :data:`UNKNOWN` (the column's default, and the value for codes that do not fit that form):
  the decision reads the ``_tag`` index rows as before, so a missing value costs speed, never a
  wrong answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.search.rows import IndexRow, TokenRow

UNKNOWN = "*"
MAX_LENGTH = 255
_CODE = re.compile(r"[A-Za-z0-9.\-]{1,64}")  # ODS codes; anything else is judged in full


def fits(code: str) -> bool:
    """Whether ``code`` can stand in a ``controllers`` value (every stored code does)."""
    return _CODE.fullmatch(code) is not None


def controller_codes(rows: Iterable[IndexRow]) -> str | None:
    """The ``controllers`` value of a resource whose index rows are ``rows``."""
    codes: set[str] = set()
    for row in rows:
        if type(row) is TokenRow and row.param == "_tag" and row.system == CONTROLLER_SYSTEM:
            if row.code is None or not fits(row.code):
                return UNKNOWN
            codes.add(row.code)
    if not codes:
        return None
    value = " " + " ".join(sorted(codes)) + " "
    return value if len(value) <= MAX_LENGTH else UNKNOWN
