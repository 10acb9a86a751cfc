"""FHIR transaction: every entry in one database transaction, all or nothing.

https://hl7.org/fhir/R4/http.html#transaction and #trules. Entries run in the order the spec
sets (DELETE, then POST, then PUT/PATCH, then GET/HEAD) inside one unit of work; the first
failing entry aborts the whole transaction, which rolls back, and the client gets that entry's
status with an OperationOutcome naming ``Bundle.entry[n]``. Nothing commits before the end, so a
process that dies half-way leaves nothing behind either. The response lists one entry per
request entry, in request order.

Audit (IHE BALP): every entry is its own interaction with its own AuditEvents (one per patient
it touched), inserted in the transaction itself, before it commits. When the transaction rolls
back, its failure is audited instead (outcome 4 or 8, naming every patient its entries had
touched) through the sink, and a failure to audit that turns the answer into a 503.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.exc import DBAPIError

from dhr.api.dispatch import Services, database_error, resolve, run_in
from dhr.api.message import FhirRequest, FhirResponse
from dhr.audit.model import AuditRecord
from dhr.audit.recorder import (
    QUERY_ROUTES,
    AuditRecorder,
    interaction,
    mark_audited,
    outcome_of,
)
from dhr.auth.model import Principal
from dhr.context import RequestContext
from dhr.errors import FhirError, Issue, bad_request, conflict
from dhr.fhir.ids import check_id, new_id
from dhr.fhir.types import check_type
from dhr.fhir.validate_pool import Pending
from dhr.interactions import create
from dhr.interactions.bundle_entries import BundleEntry, response_entry
from dhr.interactions.bundle_refs import ReferenceResolver
from dhr.interactions.common import load_resource
from dhr.interactions.criteria import match_one, parse_criteria, parse_criteria_string
from dhr.store.db import before_commit, unit_of_work

_PHASE = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


def run_transaction(
    services: Services,
    entries: list[BundleEntry],
    principal: Principal,
    entity: str = "",
    pending: Pending | None = None,
) -> dict[str, Any]:
    """Run ``entries`` atomically as ``principal`` and return the ``transaction-response``
    Bundle; every entry is enforced on its own, and a forbidden one fails the whole. With
    ``pending`` (resources being validated in the worker pool) nothing commits before every
    verdict is in."""
    write = any(e.method not in ("GET", "HEAD") for e in entries)
    recorder = services.recorder(principal)
    try:
        with unit_of_work(services.engine, write=write) as session:
            ctx = services.context(session, principal, recorder)
            # The pool's verdicts are waited for as late as can be: just before the commit.
            if pending is not None:
                before_commit(session, lambda: _raise_invalid(pending, entries))
            results = _run(ctx, entries, write, entity)
            if write:
                services.sink.insert(session, _entry_events(recorder, entries, results))
    except FhirError as exc:
        if exc.status != 503 or exc.message_code != "audit-unavailable":
            failed = recorder.events(
                "transaction",
                "E",
                outcome_of(exc.status),
                outcome_desc=exc.diagnostics,
                all_keys=True,
            )
            services.sink.write(failed)  # AuditUnavailable: the client gets 503 instead
            mark_audited(exc)
        raise
    if not write:
        services.sink.write(_entry_events(recorder, entries, results))
    return {
        "resourceType": "Bundle",
        "id": new_id(),
        "type": "transaction-response",
        "entry": [response_entry(results[e.index], e.method) for e in entries],
    }


def _run(
    ctx: RequestContext, entries: list[BundleEntry], write: bool, entity: str
) -> dict[int, FhirResponse]:
    if write and ctx.repo.source() is not None:
        # Imported here: the ingest planner runs this module's Transaction.
        from dhr.record.ingest import ingest_entries

        return ingest_entries(ctx, entries, entity or f"transaction {ctx.request_id}")
    return Transaction(ctx, entries).run()


def _raise_invalid(pending: Pending | None, entries: list[BundleEntry]) -> None:
    """Wait for the pool's verdicts; an invalid resource fails the transaction at its entry."""
    if pending is None:
        return
    found = pending.failures()
    if found:
        index = min(found)
        entry = next(e for e in entries if e.index == index)
        raise failed_at(entry, found[index])


def _entry_events(
    recorder: AuditRecorder, entries: list[BundleEntry], results: dict[int, FhirResponse]
) -> list[AuditRecord]:
    """Each entry's own AuditEvents (its interaction, outcome and the patients it touched)."""
    out: list[AuditRecord] = []
    for entry in entries:
        req = entry.request()
        try:
            route: str | None = resolve(req).name
        except FhirError:
            route = None
        subtype, action = interaction(route, entry.method)
        response = results[entry.index]
        if subtype == "update" and response.status == 201:
            action = "C"
        query = urlencode(req.query) if route in QUERY_ROUTES else None
        status = outcome_of(response.status)
        out += recorder.events(subtype, action, status, query=query, key=entry.index)
    return out


def failed_at(entry: BundleEntry, exc: FhirError) -> FhirError:
    """``exc`` restated as the failure of the whole transaction at ``entry``; a path into the
    entry's resource (``Patient.name[0]``) is given from the Bundle too
    (``Bundle.entry[2].resource.name[0]``)."""
    rebased = tuple(_from_bundle(entry, e) for e in exc.expression)
    return FhirError(
        exc.status,
        exc.code,
        f"Transaction failed at {entry.describe()}; nothing was written: {exc.diagnostics}",
        exc.message_code,
        tuple(dict.fromkeys((entry.where, *exc.expression, *rebased))),
        tuple(_issue_from_bundle(entry, i) for i in exc.extra_issues),
        {k: v for k, v in exc.headers.items() if k == "Retry-After"},
    )


def _from_bundle(entry: BundleEntry, expression: str) -> str:
    res_type = (entry.resource or {}).get("resourceType")
    head, dot, rest = expression.partition(".")
    if dot and isinstance(res_type, str) and head == res_type:
        return f"{entry.where}.resource.{rest}"
    return expression


def _issue_from_bundle(entry: BundleEntry, issue: Issue) -> Issue:
    expression = tuple(_from_bundle(entry, e) for e in issue.expression)
    return replace(issue, expression=expression)


def _nothing() -> None:
    return None


class Transaction:
    """The state of one transaction while its entries run."""

    def __init__(self, ctx: RequestContext, entries: list[BundleEntry]) -> None:
        self.ctx = ctx
        self.entries = entries
        self.refs = ReferenceResolver(ctx)
        self.assigned: dict[int, str] = {}  # POST entry index -> the id it will get
        self.matched: set[int] = set()  # POST entries whose If-None-Exist found a resource
        self.touched: dict[tuple[str, str], int] = {}  # resource -> entry that changed it
        self.results: dict[int, FhirResponse] = {}
        # Plain creates validated and waiting to be stored together (see _store_creates).
        self.prepared: list[tuple[BundleEntry, FhirRequest, str, dict[str, Any]]] = []
        self.refs.before_lookup = self._store_creates

    def run(self) -> dict[int, FhirResponse]:
        try:
            return self._run()
        finally:
            # Without this the resolver's hook would keep this object, and with it every entry
            # and result, in a reference cycle only the garbage collector frees.
            self.refs.before_lookup = _nothing

    def _run(self) -> dict[int, FhirResponse]:
        self._check_full_urls()
        for entry in self.entries:
            self._guard(entry, self._assign)
        ordered = sorted(self.entries, key=lambda e: _PHASE[e.method])
        deletes = [e for e in ordered if e.method == "DELETE"]
        for entry in deletes:
            self._guard(entry, self._execute)
        # Conditional creates and updates are resolved after the deletions, before any write
        # that might reference them.
        for entry in self.entries:
            self._guard(entry, self._assign_conditional)
        for entry in ordered[len(deletes) :]:
            if self._plain_create(entry):
                self._guard(entry, self._prepare_create)
            else:
                self._store_creates()  # later entries may search for or change them
                self._guard(entry, self._execute)
        self._store_creates()
        return self.results

    def _guard(self, entry: BundleEntry, step: Callable[[BundleEntry], None]) -> None:
        self.ctx.audit.select(entry.index)  # what the step touches is this entry's
        try:
            step(entry)
        except FhirError as exc:
            raise failed_at(entry, exc) from None
        except DBAPIError as exc:
            raise failed_at(entry, database_error(exc)) from None

    # -- ids for fullUrls ------------------------------------------------------------------

    def _check_full_urls(self) -> None:
        seen: dict[str, int] = {}
        for entry in self.entries:
            if entry.full_url is None:
                continue
            first = seen.setdefault(entry.full_url, entry.index)
            if first != entry.index:
                raise bad_request(
                    f"Bundle.entry[{entry.index}].fullUrl {entry.full_url[:100]!r} repeats the "
                    f"fullUrl of Bundle.entry[{first}]",
                    "bundle-duplicate-fullurl",
                    f"Bundle.entry[{entry.index}].fullUrl",
                )

    def _assign(self, entry: BundleEntry) -> None:
        """Ids known before anything runs: plain creates get one now, updates keep theirs."""
        seg = entry.segments()
        conditional = "?" in entry.url
        if entry.method == "POST" and len(seg) == 1 and "if-none-exist" not in entry.headers:
            res_type = check_type(seg[0])
            self.assigned[entry.index] = entry.assigned_id or new_id()
            if entry.full_url:
                self.refs.add(entry.full_url, res_type, self.assigned[entry.index])
        elif entry.method == "PUT" and len(seg) == 2 and not conditional and entry.full_url:
            self.refs.add(entry.full_url, check_type(seg[0]), check_id(seg[1]))

    def _assign_conditional(self, entry: BundleEntry) -> None:
        seg = entry.segments()
        condition = entry.headers.get("if-none-exist")
        if entry.method == "POST" and len(seg) == 1 and condition:
            res_type = check_type(seg[0])
            criteria = parse_criteria_string(self.refs.url(condition))
            found = match_one(self.ctx, res_type, criteria, "If-None-Exist")
            if found is not None:
                self.matched.add(entry.index)
            self.assigned[entry.index] = found or new_id()
            if entry.full_url:
                self.refs.add(entry.full_url, res_type, self.assigned[entry.index])
        elif entry.method == "PUT" and len(seg) == 1 and entry.full_url:
            res_type = check_type(seg[0])
            entry.url = self.refs.url(entry.url)
            query = FhirRequest.from_url("PUT", entry.url).query
            found = match_one(self.ctx, res_type, parse_criteria(query), "Conditional update")
            body = dict(entry.resource or {})
            if found is None:
                target = body.get("id") if isinstance(body.get("id"), str) else new_id()
                body["id"] = target
                entry.resource = body
            else:
                target = found
            self.refs.add(entry.full_url, res_type, str(target))

    # -- running entries -------------------------------------------------------------------

    def _execute(self, entry: BundleEntry) -> None:
        url = self.refs.url(entry.url)
        resource = self._resolved(entry)
        headers = dict(entry.headers)
        if "if-none-exist" in headers:
            headers["if-none-exist"] = self.refs.url(headers["if-none-exist"])
        req = FhirRequest.from_url(
            entry.method, url, headers=headers, parsed_body=resource, validated=entry.validated
        )
        seg = req.segments
        if entry.method == "POST" and entry.index in self.assigned:
            response = self._create(entry, req, check_type(seg[0]))
        elif entry.method == "DELETE":
            response = self._delete(entry, req, seg)
        else:
            response = run_in(self.ctx, req)
            if entry.method in ("PUT", "PATCH"):
                self._touch_location(entry, response)
        if response.status >= 400:
            body = response.body_json() or {}
            issues = body.get("issue") or [{}]
            text = issues[0].get("diagnostics", "the entry failed")
            raise FhirError(response.status, "processing", str(text), "bundle-entry-failed")
        self.results[entry.index] = response

    def _resolved(self, entry: BundleEntry) -> dict[str, Any] | None:
        """The entry's resource with its references resolved."""
        if entry.resource is None:
            return None
        return self.refs.rewrite(entry.resource, entry.references_final)

    def _plain_create(self, entry: BundleEntry) -> bool:
        """A POST whose id was assigned up front (no If-None-Exist): it can be stored in bulk."""
        return (
            entry.method == "POST"
            and entry.index in self.assigned
            and "if-none-exist" not in entry.headers
        )

    def _prepare_create(self, entry: BundleEntry) -> None:
        """Resolve references and validate a plain create; :meth:`_store_creates` stores it."""
        url = self.refs.url(entry.url)
        resource = self._resolved(entry)
        req = FhirRequest.from_url(
            entry.method,
            url,
            headers=dict(entry.headers),
            parsed_body=resource,
            validated=entry.validated,
        )
        res_type = check_type(req.segments[0])
        body = load_resource(req, res_type)
        self.ctx.repo.check_create(res_type, self.assigned[entry.index], body)
        self.ctx.audit.claim(res_type, self.assigned[entry.index], entry.index)
        self.prepared.append((entry, req, res_type, body))

    def _store_creates(self) -> None:
        """Store the prepared creates in request order (before anything reads or writes more)."""
        if not self.prepared:
            return
        batch, self.prepared = self.prepared, []
        items = [(req, res_type, self.assigned[e.index], body) for e, req, res_type, body in batch]
        responses: list[FhirResponse] = []

        def store(_: BundleEntry) -> None:
            responses.extend(create.create_many(self.ctx, items))

        self._guard(batch[0][0], store)  # a database failure here is the batch's, reported once
        for (entry, _, _, _), response in zip(batch, responses, strict=True):
            self._guard(entry, self._touch_created)
            self.results[entry.index] = response

    def _touch_created(self, entry: BundleEntry) -> None:
        self._touch(entry, check_type(entry.segments()[0]), self.assigned[entry.index])

    def _create(self, entry: BundleEntry, req: FhirRequest, res_type: str) -> FhirResponse:
        planned = self.assigned[entry.index]
        response = create.create(self.ctx, req, res_type, planned)
        got = _location_target(response)
        if got is not None and got[1] != planned:
            # If-None-Exist matched something an earlier entry of this transaction created,
            # while references had already been pointed at the id planned for this entry.
            raise conflict(
                f"If-None-Exist matched {res_type}/{got[1]}, created earlier in this same "
                "transaction; two entries conditionally create the same resource",
                "bundle-conditional-create-conflict",
            )
        if entry.index not in self.matched:
            self._touch(entry, res_type, planned)
        return response

    def _delete(self, entry: BundleEntry, req: FhirRequest, seg: list[str]) -> FhirResponse:
        if len(seg) == 1:  # conditional delete: resolve it here so the target is known
            res_type = check_type(seg[0])
            found = match_one(self.ctx, res_type, parse_criteria(req.query), "Conditional delete")
            if found is not None:
                req = FhirRequest(
                    "DELETE", f"{res_type}/{found}", (), req.headers, None, req.parsed_body
                )
                seg = req.segments
        if len(seg) == 2:
            self._touch(entry, check_type(seg[0]), check_id(seg[1]))
        return run_in(self.ctx, req)

    def _touch_location(self, entry: BundleEntry, response: FhirResponse) -> None:
        target = _location_target(response)
        if target is not None:
            self._touch(entry, *target)

    def _touch(self, entry: BundleEntry, res_type: str, res_id: str) -> None:
        first = self.touched.setdefault((res_type, res_id), entry.index)
        if first != entry.index:
            raise bad_request(
                f"{res_type}/{res_id} is already changed by Bundle.entry[{first}]; a transaction "
                "may change each resource only once",
                "bundle-duplicate-target",
            )


def _location_target(response: FhirResponse) -> tuple[str, str] | None:
    location = response.headers.get("Location")
    if not location:
        return None
    parts = location.split("/_history/")[0].rsplit("/", 2)
    return (parts[-2], parts[-1]) if len(parts) >= 2 else None
