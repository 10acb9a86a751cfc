"""A transaction's resources validated in the worker pool while the transaction runs (ADR 0011).

https://hl7.org/fhir/R4/http.html#transaction: a transaction with an invalid resource fails as a
whole. Each POST or PUT entry's resource, checked against the type its URL names, goes to
:mod:`dhr.fhir.validate_pool` when the Bundle has enough of them; the entries are marked validated
so the transaction does not validate them again, and it waits for the verdicts before its unit
of work commits (:func:`dhr.interactions.bundle_transaction.run_transaction`). The answer for an
invalid entry is the one in-line validation gives: the lowest such entry, as "Transaction failed
at Bundle.entry[n]".
"""

from __future__ import annotations

from dhr.config import Settings
from dhr.fhir import jsonio
from dhr.fhir.types import resource_types
from dhr.fhir.validate_pool import Pending, aside
from dhr.interactions.bundle_entries import BundleEntry


def _expected_type(entry: BundleEntry) -> str | None:
    """The type a POST or PUT entry's URL names, when its resource can be validated aside."""
    if entry.method not in ("POST", "PUT") or entry.resource is None or entry.validated:
        return None
    seg = entry.segments()
    if not 1 <= len(seg) <= 2 or seg[0] not in resource_types():
        return None  # the entry fails on its URL, as it would without the pool
    return seg[0]


def validate_aside(settings: Settings, entries: list[BundleEntry]) -> Pending | None:
    """Start validating the entries' resources in the pool; None when they stay in-line."""
    chosen = [(e, t) for e in entries if (t := _expected_type(e)) is not None]
    pending = aside(settings, len(chosen))
    if pending is None:
        return None
    for entry, res_type in chosen:
        pending.add(entry.index, jsonio.dumps(entry.resource), res_type)
        entry.validated = True
    return pending
