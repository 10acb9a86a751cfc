"""Reading the audit through the FHIR API: who may, which URLs, which search parameters.

AuditEvents (https://hl7.org/fhir/R4/auditevent.html) are served from the ``audit_event`` table
(:mod:`dhr.store.audit_store`), never from the resource tables: ``GET AuditEvent/[id]``, ``GET
AuditEvent?...``, ``POST AuditEvent/_search`` and ``GET Patient/[id]/AuditEvent?...`` are the
only interactions (:mod:`dhr.interactions.audit_read`). The audit is append-only: create,
update, patch, delete and history on AuditEvent answer **405** with an OperationOutcome, over
HTTP and as batch or transaction entries alike (they all come through
:func:`dhr.api.dispatch.resolve`).

Who may read it (ARCHITECTURE.md, "a FHIR read/search view for auditors"): a principal whose
scopes allow ``r`` (read) or ``s`` (search) on AuditEvent (SMART App Launch 2.2,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html) through a ``system/``
scope (Backend Services, the CLI), or through a ``user/`` scope **and** the Privacy Officer role
(national RBAC R0001): a clinician's ``user/*.cruds`` names AuditEvent only by its wildcard and
does not open the audit. Scopes restricted by search parameters (``user/AuditEvent.rs?...``) are
not honoured here. Patients (``patient/`` scopes) are refused with 403: they read their own
record's access log, in plain terms, at ``Patient/[id]/$access-log``
(:mod:`dhr.operations.access_log`).

Search parameters (https://hl7.org/fhir/R4/auditevent.html#search, IHE BALP query patterns):
``patient`` (``Patient/x``, ``x`` or an absolute URL), ``agent`` (the user's subject or the
Backend Services client id), ``date`` (repeatable, prefixes ``eq`` ``ge`` ``gt`` ``le`` ``lt`` at
the value's precision, https://hl7.org/fhir/R4/search.html#date), ``action`` (C R U D E),
``outcome`` (0 4 8 12), ``purpose`` (a PurposeOfUse code such as TREAT) and ``subtype`` (the
restful-interaction code, ``read``, ``search-type``...), tokens optionally as ``system|code``;
``_count``, ``_sort=-date`` (the only order: newest first) and the ``_page`` cursor. Unknown
parameters are ignored and reported in an OperationOutcome entry, or a 400 with
``Prefer: handling=strict``, as in :mod:`dhr.interactions.search`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dhr.access.scope_check import granted
from dhr.api.message import FhirRequest
from dhr.api.route import Route
from dhr.auth.model import Principal
from dhr.context import RequestContext
from dhr.enforce import forbidden
from dhr.errors import FhirError, bad_request, not_supported
from dhr.fhir.ids import check_id
from dhr.fhir.instant import parse_range

AUDIT_EVENT = "AuditEvent"
PRIVACY_OFFICER = "R0001"
SORT_NEWEST = "-date"
_CONTROL = frozenset({"_count", "_page", "_sort", "_format", "_pretty", "_total"})
_TOKEN_SYSTEMS = {
    "action": "http://hl7.org/fhir/audit-event-action",
    "outcome": "http://hl7.org/fhir/audit-event-outcome",
    "purpose": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
    "subtype": "http://hl7.org/fhir/restful-interaction",
}
_ACTIONS = frozenset("CRUDE")
_OUTCOMES = frozenset({"0", "4", "8", "12"})
_DATE_PREFIXES = ("eq", "ge", "gt", "le", "lt")

Decision = Literal[True] | str


# -- routing -------------------------------------------------------------------------------


def handles(segments: Sequence[str]) -> bool:
    """Whether a path is an AuditEvent path (``AuditEvent...`` or ``[type]/[id]/AuditEvent``)."""
    return bool(segments) and (
        segments[0] == AUDIT_EVENT or (len(segments) == 3 and segments[2] == AUDIT_EVENT)
    )


def route(req: FhirRequest) -> Route:
    """The route of an AuditEvent path: read and search only, 405 for everything that writes."""
    from dhr.interactions import audit_read
    from dhr.operations import registry as operations

    seg = req.segments
    method = "GET" if req.method == "HEAD" else req.method
    n = len(seg)
    if seg[0] != AUDIT_EVENT:  # GET Patient/[id]/AuditEvent (compartment search)
        if seg[0] != "Patient":
            raise bad_request(f"AuditEvent has no {seg[0][:40]} compartment", "unknown-path")
        patient = check_id(seg[1])
        if method != "GET":
            raise read_only(req.method)
        return Route(
            "search-compartment", lambda c, r: audit_read.search(c, r, patient), write=False
        )
    second = seg[1] if n > 1 else ""
    if n == 1 and method == "GET":
        return Route("search-type", audit_read.search, write=False)
    if n == 2 and second == "_search" and method == "POST":
        return Route("search-type", audit_read.search, write=False)
    if n == 2 and second.startswith("$"):
        return operations.route_type(AUDIT_EVENT, second[1:], method)
    if n == 3 and seg[2].startswith("$"):
        return operations.route_instance(AUDIT_EVENT, check_id(second), seg[2][1:], method)
    if n == 2 and second not in ("_search", "_history") and method == "GET":
        event_id = check_id(second)
        return Route(
            "read", lambda c, r: audit_read.read(c, r, event_id), False, single_statement=True
        )
    raise read_only(req.method)


def read_only(method: str) -> FhirError:
    """405: the audit is append-only and only the server appends to it."""
    return not_supported(
        f"{method} is not allowed on AuditEvent: the audit is append-only, written by the "
        "server alone; AuditEvents can only be read (GET AuditEvent/[id]) and searched "
        "(GET AuditEvent?...)",
        405,
    )


# -- who may read the audit ----------------------------------------------------------------


def may_read_audit(principal: Principal, action: str) -> Decision:
    """Does the principal hold an unrestricted ``system/`` scope, or a ``user/`` scope and the
    Privacy Officer role, allowing ``action`` (r or s) on AuditEvent?"""
    if principal.open:
        return True
    scopes = [s for s in granted(principal, AUDIT_EVENT, action) if not s.params]
    if any(s.context == "system" for s in scopes):
        return True
    users = [s for s in scopes if s.context == "user"]
    if users and PRIVACY_OFFICER in principal.roles:
        return True
    if users:
        return (
            "Only privacy officers (role R0001) and system clients may read the audit; "
            "the token's user has no privacy officer role"
        )
    if any(s.context == "patient" for s in granted(principal, AUDIT_EVENT, action)):
        return (
            "Patients read who accessed their record at Patient/[id]/$access-log, "
            "not through AuditEvent"
        )
    return "The token's AuditEvent scopes are restricted by search parameters, not honoured here"


def require_auditor(ctx: RequestContext, action: str) -> None:
    """403 unless the request's principal may read (``r``) or search (``s``) the audit."""
    ctx.repo.require(AUDIT_EVENT, action)  # 403 with the usual reason when no scope names it
    decision = may_read_audit(ctx.repo.principal, action)
    if decision is not True:
        raise forbidden(decision)


def touched(ctx: RequestContext, rows: Sequence[Any]) -> None:
    """Record that these audit rows were shown (reading the audit is itself audited)."""
    for row in rows:
        ctx.audit.touched(AUDIT_EVENT, str(row.event_id), row.patient)


# -- search parameters ---------------------------------------------------------------------


@dataclass(frozen=True)
class AuditQuery:
    """An AuditEvent search, mapped onto the ``audit_event`` columns."""

    patient: str | None = None
    agent: str | None = None
    since: int | None = None  # inclusive, µs
    until: int | None = None  # exclusive, µs
    action: str | None = None
    outcome: str | None = None
    purpose: str | None = None
    subtype: str | None = None
    used: tuple[tuple[str, str], ...] = ()  # the parameters applied (for the links)
    ignored: tuple[str, ...] = ()
    empty: bool = False  # contradictory date bounds: nothing can match

    def store_filters(self) -> dict[str, Any]:
        return {
            "patient": self.patient,
            "agent": self.agent,
            "since": self.since,
            "until": self.until,
            "action": self.action,
            "outcome": self.outcome,
            "purpose": self.purpose,
            "subtype": self.subtype,
        }


def parse_query(
    pairs: Sequence[tuple[str, str]], base: str, strict: bool, patient: str | None = None
) -> AuditQuery:
    """Map the query onto ``audit_event`` columns; 400 for malformed values."""
    values: dict[str, str] = {}
    if patient is not None:
        values["patient"] = patient
    since: int | None = None
    until: int | None = None
    used: list[tuple[str, str]] = []
    ignored: list[str] = []
    for key, raw in pairs:
        value = raw.strip()
        if key in _CONTROL:
            if key == "_sort" and value != SORT_NEWEST:
                raise bad_request(
                    f"_sort={value[:40]!r}: AuditEvents are sorted by -date (newest first) only",
                    "bad-sort",
                )
            continue
        if key == "date":
            start, end = _date_bounds(value)
            if start is not None:
                since = start if since is None else max(since, start)
            if end is not None:
                until = end if until is None else min(until, end)
        elif key == "patient":
            _set(values, key, _patient_id(value, base))
        elif key == "agent":
            _set(values, key, _nonempty(key, value))
        elif key in _TOKEN_SYSTEMS:
            _set(values, key, _token(key, value))
        else:
            if strict:
                raise bad_request(
                    f"Unknown or unsupported AuditEvent search parameter {key[:60]!r}",
                    "unknown-parameter",
                )
            ignored.append(key)
            continue
        used.append((key, raw))
    empty = since is not None and until is not None and since >= until
    return AuditQuery(
        patient=values.get("patient"),
        agent=values.get("agent"),
        since=since,
        until=until,
        action=values.get("action"),
        outcome=values.get("outcome"),
        purpose=values.get("purpose"),
        subtype=values.get("subtype"),
        used=tuple(used),
        ignored=tuple(ignored),
        empty=empty,
    )


def _set(values: dict[str, str], key: str, value: str) -> None:
    if key in values and values[key] != value:
        raise bad_request(
            f"{key} is given twice with different values; AuditEvent search takes one {key}",
            "repeated-parameter",
        )
    values[key] = value


def _nonempty(key: str, value: str) -> str:
    if not value or "," in value:
        raise bad_request(f"{key} takes exactly one value", "bad-parameter-value")
    return value


def _patient_id(value: str, base: str) -> str:
    ref = _nonempty("patient", value)
    if ref.startswith(base.rstrip("/") + "/"):
        ref = ref[len(base.rstrip("/")) + 1 :]
    if "/" in ref:
        res_type, _, ref = ref.partition("/")
        if res_type != "Patient":
            raise bad_request(f"patient={value[:60]!r} does not name a Patient", "bad-reference")
    return check_id(ref, "patient")


def _token(key: str, value: str) -> str:
    code = _nonempty(key, value)
    if "|" in code:
        system, _, code = code.partition("|")
        if system and system != _TOKEN_SYSTEMS[key]:
            raise bad_request(
                f"{key}: the code system is {_TOKEN_SYSTEMS[key]}, not {system[:80]!r}",
                "bad-token-system",
            )
    if not code:
        raise bad_request(f"{key} needs a code", "bad-parameter-value")
    if key == "action" and code not in _ACTIONS:
        raise bad_request(f"action={code[:10]!r} is not one of C, R, U, D, E", "bad-action")
    if key == "outcome" and code not in _OUTCOMES:
        raise bad_request(f"outcome={code[:10]!r} is not one of 0, 4, 8, 12", "bad-outcome")
    return code


def _date_bounds(value: str) -> tuple[int | None, int | None]:
    """``(since, until)`` for one ``date`` value (half-open, µs)."""
    prefix = value[:2] if value[:2].isalpha() else "eq"
    body = value[2:] if value[:2].isalpha() else value
    if prefix not in _DATE_PREFIXES:
        raise bad_request(
            f"date prefix {prefix!r} is not supported here (eq, ge, gt, le, lt)", "bad-prefix"
        )
    start, end = parse_range(body, "date")
    if prefix == "eq":
        return start, end
    if prefix == "ge":
        return start, None
    if prefix == "gt":
        return end, None
    if prefix == "lt":
        return None, start
    return None, end  # le
