"""Routing of a FHIR request to its interaction, and the unit of work around it.

https://hl7.org/fhir/R4/http.html#summary lists the URL patterns. HTTP routes, batch entries and
transaction entries all come through :func:`handle` or :func:`run_in`, so every path reaches the
same interactions and the same enforcing repository, built for the request's principal (there
is no default: the HTTP routes pass the bearer token's principal, the CLI its system principal,
:func:`dhr.access.system.cli_principal`). SMART: batch and transaction entries "should be
validated based on the actual requests within them"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#batches-and-transactions).

Audit (IHE BALP, https://profiles.ihe.net/ITI/BALP/content.html): :func:`handle` gives every
request an :class:`~dhr.audit.recorder.AuditRecorder` and, at its end, writes one AuditEvent
per patient touched. A write route's events are inserted in the write's own transaction, before
it commits; a read's, and any failure's (after the rollback), go through the sink's group commit
before the response leaves. An audit that cannot be written fails the request closed: 503 and
nothing else (:class:`~dhr.audit.sink.AuditUnavailable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from urllib.parse import urlencode

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from dhr.access.purpose import with_purpose
from dhr.api.http import check_parameters, negotiate
from dhr.api.message import FhirRequest, FhirResponse
from dhr.api.route import Route
from dhr.audit import view as audit_view
from dhr.audit.model import AuditRecord
from dhr.audit.recorder import (
    NOT_AUDITED,
    QUERY_ROUTES,
    AuditRecorder,
    interaction,
    outcome_of,
    was_audited,
)
from dhr.audit.sink import AuditSink, AuditUnavailable, sink_for
from dhr.config import Settings
from dhr.context import RequestContext
from dhr.enforce import EnforcingRepository, Principal
from dhr.errors import FhirError, bad_request, not_supported, nul_character
from dhr.fhir.ids import check_id
from dhr.fhir.types import check_type
from dhr.interactions import create, delete, history, patch, read, search, update, vread
from dhr.interactions.common import error_response
from dhr.operations import registry as operations
from dhr.settle import collector_paused
from dhr.store.db import unit_of_work
from dhr.store.repository import ResourceRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    """What the composition root hands to every request. Without an explicit ``sink`` the
    settings choose one (the CLI loader and the demo get a database sink of their own)."""

    settings: Settings
    engine: Engine
    sink: AuditSink = field(default=None)  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.sink is None:
            object.__setattr__(self, "sink", sink_for(self.settings.audit_enabled, self.engine))

    def recorder(self, principal: Principal) -> AuditRecorder:
        """A fresh audit recorder for one request of ``principal``."""
        return AuditRecorder(principal, self.settings.fhir_base, enabled=self.sink.enabled)

    def context(
        self, conn: Connection, principal: Principal, audit: AuditRecorder | None = None
    ) -> RequestContext:
        audit = audit or self.recorder(principal)
        repo = EnforcingRepository(
            ResourceRepository(conn),
            principal,
            self.settings.fhir_base,
            audit,
            self.settings.national_controller_ods,
            self.settings.consent_enabled,
            self.settings.consent_implicit,
        )
        return RequestContext(audit.request_id, self.settings, repo, audit)


_READ_METHODS = frozenset({"GET", "HEAD"})
# Routes besides Bundles that run with the cyclic garbage collector paused (dhr.settle).
PAUSED = frozenset({"import"})


def resolve(req: FhirRequest) -> Route:
    """Map method and path to an interaction; unknown types, bad ids and methods are 4xx, and
    so is a NUL in the query (every route, batch and transaction entry comes through here)."""
    check_parameters(req.query)
    seg = req.segments
    m = "GET" if req.method == "HEAD" else req.method
    n = len(seg)
    if n == 0:
        if m == "POST":
            return Route("bundle", _no_bundle_here, write=True, bundle=True)
        raise not_supported("System-level search arrives with the search issue; use a type", 405)
    head = seg[0]
    if head == "metadata" and n == 1 and m == "GET":
        return Route("capabilities", operations.capabilities, write=False)
    if head == "_history" and n == 1 and m == "GET":
        return Route("history-system", lambda c, r: history.history(c, r, None, None), write=False)
    if head.startswith("$") and n == 1:
        return operations.route_system(head[1:], m)
    res_type = check_type(head)
    if audit_view.handles(seg):  # served from the audit table, read-only (405 for writes)
        return audit_view.route(req)
    if n == 1:
        table: dict[str, Route] = {
            "POST": Route("create", lambda c, r: create.create(c, r, res_type), True),
            "PUT": Route(
                "update-conditional", lambda c, r: update.conditional_update(c, r, res_type), True
            ),
            "DELETE": Route(
                "delete-conditional", lambda c, r: delete.conditional_delete(c, r, res_type), True
            ),
            "PATCH": Route(
                "patch-conditional", lambda c, r: patch.conditional_patch(c, r, res_type), True
            ),
            "GET": Route("search-type", lambda c, r: search.search_type(c, r, res_type), False),
        }
        if m in table:
            return table[m]
        raise not_supported(f"{req.method} is not an interaction on {res_type}", 405)
    second = seg[1]
    if second == "_history" and n == 2 and m == "GET":
        return Route(
            "history-type", lambda c, r: history.history(c, r, res_type, None), write=False
        )
    if second == "_search" and n == 2 and m == "POST":
        return Route("search-type", lambda c, r: search.search_type(c, r, res_type), False)
    if second.startswith("$") and n == 2:
        return operations.route_type(res_type, second[1:], m)
    res_id = check_id(second)
    if n == 2:
        table = {
            "GET": Route(
                "read", lambda c, r: read.read(c, r, res_type, res_id), False, single_statement=True
            ),
            "PUT": Route("update", lambda c, r: update.update(c, r, res_type, res_id), True),
            "DELETE": Route("delete", lambda c, r: delete.delete(c, r, res_type, res_id), True),
            "PATCH": Route("patch", lambda c, r: patch.patch(c, r, res_type, res_id), True),
        }
        if m in table:
            return table[m]
        raise not_supported(f"{req.method} is not an interaction on {res_type}/{res_id}", 405)
    if seg[2] == "_history" and m == "GET" and n in (3, 4):
        if n == 3:
            return Route(
                "history-instance", lambda c, r: history.history(c, r, res_type, res_id), False
            )
        vid = seg[3]
        return Route(
            "vread",
            lambda c, r: vread.vread(c, r, res_type, res_id, vid),
            False,
            single_statement=True,
        )
    if seg[2].startswith("$") and n == 3:
        return operations.route_instance(res_type, res_id, seg[2][1:], m)
    if n == 3 and m == "GET":  # https://hl7.org/fhir/R4/http.html#search (compartment)
        member = check_type(seg[2])
        return Route(
            "search-compartment",
            lambda c, r: search.search_type(c, r, member, (res_type, res_id)),
            False,
        )
    raise bad_request(f"{req.method} /{req.path[:120]} is not a FHIR interaction", "unknown-path")


def _no_bundle_here(_ctx: RequestContext, _req: FhirRequest) -> FhirResponse:
    raise bad_request("A batch or transaction Bundle must be posted to the base", "bundle-nested")


BundleProcessor = Callable[["Services", FhirRequest, Principal], FhirResponse]
_bundle_processor: list[BundleProcessor] = []


def set_bundle_processor(processor: BundleProcessor) -> None:
    """The batch/transaction module registers itself here (it imports this module)."""
    _bundle_processor[:] = [processor]


def handle(services: Services, req: FhirRequest, principal: Principal) -> FhirResponse:
    """Run one request for ``principal`` in its own unit of work, audited; every failure
    becomes an OperationOutcome."""
    route: Route | None = None
    failure: FhirError | None = None
    try:
        principal = with_purpose(principal, req.headers)
    except FhirError as exc:
        failure = exc
    recorder = services.recorder(principal)
    try:
        if failure is not None:
            raise failure
        negotiate(req)
        route = resolve(req)
        # A Bundle or an $import allocates much that lives as long as it runs (dhr.settle).
        with collector_paused() if route.bundle or route.name in PAUSED else nullcontext():
            if route.bundle:
                return _bundle_processor[0](services, req, principal)
            with unit_of_work(services.engine, route.write, route.single_statement) as conn:
                response = route.run(services.context(conn, principal, recorder), req)
                if route.write:  # audited in the write's own transaction
                    services.sink.insert(conn, audit_records(recorder, route.name, req, response))
                    return response
    except AuditUnavailable as exc:
        return error_response(exc)
    except FhirError as exc:
        failure = exc
    except DBAPIError as exc:
        failure = database_error(exc)
    if failure is not None:
        response = error_response(failure)
        if was_audited(failure):
            return response
    if route is not None and route.name in NOT_AUDITED:
        return response
    records = audit_records(
        recorder, route.name if route else None, req, response, failure, audited=route is not None
    )
    try:
        services.sink.write(records)
    except AuditUnavailable as exc:
        return error_response(exc)
    return response


def audit_records(
    recorder: AuditRecorder,
    route: str | None,
    req: FhirRequest,
    response: FhirResponse,
    failure: FhirError | None = None,
    audited: bool = True,
) -> list[AuditRecord]:
    """The AuditEvents of one interaction (route ``route``) that answered ``response``."""
    subtype, action = interaction(route, req.method)
    if subtype == "update" and response.status == 201:
        action = "C"  # an update that created the resource
    query = _query(req) if route in QUERY_ROUTES or (not audited and req.query) else None
    desc = failure.diagnostics if failure is not None else None
    return recorder.events(
        subtype, action, outcome_of(response.status), outcome_desc=desc, query=query
    )


def _query(req: FhirRequest) -> str:
    """The query string of a search, a ``POST _search`` form body's parameters included."""
    pairs = list(req.query)
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if req.method == "POST" and req.body and ctype == "application/x-www-form-urlencoded":
        body = req.body.decode("utf-8", "replace")
        return "&".join(p for p in (urlencode(pairs), body) if p)
    return urlencode(pairs)


def run_in(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    """Run one request inside an existing unit of work (a transaction entry); errors propagate."""
    route = resolve(req)
    if route.bundle:
        return _no_bundle_here(ctx, req)
    return route.run(ctx, req)


_TOO_COMPLEX = ("too large", "stack overflow", "too many sql variables", "too many terms")


def _too_complex(exc: OperationalError) -> bool:
    """SQLite refusing a statement for its size: retrying can never help."""
    text = str(exc.orig).lower()
    return any(marker in text for marker in _TOO_COMPLEX)


# PostgreSQL refusing a NUL in text: psycopg says so of a text parameter before sending it;
# the server answers 22021 (character_not_in_repertoire) to a binary one (array parameters).
_NUL_SQLSTATE = "22021"


def _holds_nul(exc: DataError) -> bool:
    """A text value held the NUL character, which PostgreSQL cannot store in text."""
    return "NUL" in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == _NUL_SQLSTATE


def database_error(exc: DBAPIError) -> FhirError:
    """Map a database failure to a retryable 4xx/503 instead of a 500."""
    log.warning("database error: %s", exc)
    if isinstance(exc, IntegrityError):
        return FhirError(
            409, "conflict", "A concurrent write conflicted with this one; retry", "write-conflict"
        )
    if isinstance(exc, OperationalError) and _too_complex(exc):
        return FhirError(
            400,
            "too-costly",
            "The request is too complex for the database (too many criteria, values or chain "
            "links); simplify it",
            "too-complex",
        )
    if isinstance(exc, DataError) and _holds_nul(exc):
        return nul_character("Text")
    if isinstance(exc, OperationalError):
        return FhirError(
            503,
            "transient",
            "The database is busy; retry shortly",
            "database-busy",
            headers={"Retry-After": "1"},
        )
    return FhirError(
        500, "exception", "The database failed to process the request", "database-error"
    )
