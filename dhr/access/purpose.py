"""Why a request is made: the purpose of use and a break-glass reason, from request headers.

SMART tokens carry no purpose of use, so DHR defines two request headers (ARCHITECTURE.md "The
policy layer"; codes are HL7 v3 PurposeOfUse, http://terminology.hl7.org/CodeSystem/v3-ActReason):

* ``X-DHR-Purpose-Of-Use``: ``TREAT`` (direct care, the default), ``ETREAT``, ``BTG``, ``PATRQT``,
  ``HOPERAT``, ``POPHLTH`` or ``HRESCH``;
* ``X-DHR-Break-Glass-Reason``: free text, required with ``BTG`` or ``ETREAT`` (a reason alone
  means ``BTG``). Break-glass declared this way lasts for this one request; a declaration that
  lasts (for one patient, time-limited) is ``Patient/[id]/$break-glass``.

An unknown purpose, or break-glass without a reason, is a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from consent.model import PURPOSES
from dhr.auth.model import Principal
from dhr.errors import bad_request

PURPOSE_HEADER = "x-dhr-purpose-of-use"
REASON_HEADER = "x-dhr-break-glass-reason"
BREAK_GLASS_PURPOSES = frozenset({"BTG", "ETREAT"})
MAX_REASON = 500


def with_purpose(principal: Principal, headers: Mapping[str, str]) -> Principal:
    """``principal`` asking for the purpose the request's headers state (``headers`` with
    lower-case names); unchanged when they state none (a batch entry keeps its Bundle's)."""
    code = (headers.get(PURPOSE_HEADER) or "").strip().upper()
    reason = (headers.get(REASON_HEADER) or "").strip() or None
    if not code and reason is None:
        return principal
    if not code:
        code = "BTG"
    if code not in PURPOSES:
        raise bad_request(
            f"X-DHR-Purpose-Of-Use {code!r} is not a purpose of use this server knows "
            f"(one of {', '.join(sorted(PURPOSES))})",
            "unknown-purpose",
        )
    if code in BREAK_GLASS_PURPOSES and reason is None:
        raise bad_request(
            f"Purpose of use {code} (break-glass) needs a reason in X-DHR-Break-Glass-Reason",
            "break-glass-reason",
        )
    if reason is not None and code not in BREAK_GLASS_PURPOSES:
        raise bad_request(
            "X-DHR-Break-Glass-Reason goes with purpose of use BTG or ETREAT only",
            "break-glass-reason",
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise bad_request(f"The break-glass reason is longer than {MAX_REASON} characters")
    return replace(principal, purpose=code, purpose_stated=True, break_glass_reason=reason)
