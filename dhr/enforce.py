"""The policy enforcement point: every interaction reaches storage only through this class.

STYLE.md hop 5. One :class:`EnforcingRepository` per unit of work, for one principal. It holds
the raw repository privately and offers only operations that apply the principal's SMART scopes
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html), decided by
:mod:`dhr.access.scope_check` and :mod:`dhr.access.read_scope`:

* an interaction the scopes do not allow on the type at all is a **403** (``forbidden``), before
  any data is touched;
* searches (and conditional criteria, ``_include``/``_revinclude``, ``$everything``, history)
  are restricted **in SQL** to what the principal may see (the launch patient's compartment for
  ``patient/`` scopes, granular ``?param=value`` restrictions, OR-ed across scopes), so pages are
  full and totals true;
* a read of one resource the principal may not see answers as if it did not exist (**404**,
  ARCHITECTURE.md: a 403 would reveal that the record exists);
* a write is checked before (the stored resource must be one the principal may change) and
  after (the new content must land inside what it may change): **403** otherwise, and the unit of
  work rolls back.

Audit (STYLE.md hop 5, IHE BALP): every resource the repository returns, changes or deletes is
reported to the request's :class:`dhr.audit.recorder.AuditRecorder`, and so is every resource it
hides behind a 404 or refuses with a 403, with the real reason (:meth:`AuditRecorder.denied`).
Conditional-match ids and counts are not reported: they return no content.

Which letter each interaction needs (``r`` for read, vread and instance history; ``s`` for
search, type and system history and conditional criteria; ``c`` create; ``u`` update, patch and
update-as-create; ``d`` delete) is worded in :mod:`dhr.access.scope_check`. There is no raw
``search(statement)``: a caller cannot run SQL that skips the restriction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row

from dhr.access.matcher import matches
from dhr.access.policy import RequestPolicy, last_policy, policy_for_state, request_policy
from dhr.access.read_scope import ReadScope, Terms, read_scope
from dhr.access.scope_check import may
from dhr.audit.recorder import AuditRecorder
from dhr.auth.model import OPEN_ACCESS, Principal
from dhr.errors import FhirError
from dhr.fhir import jsonio
from dhr.fhir.instant import now_micros
from dhr.record.attribution import attribute, is_record_service, owned_by, stored_meta
from dhr.record.sources import Source
from dhr.search import include
from dhr.search.compile import Criteria, count_query, matching_ids, page_query
from dhr.search.params import Chain, Criterion, Guarded, Has, Include, SortKey
from dhr.search.sql.aliases import one_statement
from dhr.store import access_store, audit_store, auth_client_store, source_store
from dhr.store.repository import ResourceRepository, StoredVersion, stamp

__all__ = ["OPEN_ACCESS", "EnforcingRepository", "HistoryPage", "Principal", "forbidden"]


def forbidden(message: str) -> FhirError:
    """403 with an OperationOutcome of issue type ``forbidden``."""
    return FhirError(403, "forbidden", message, "forbidden")


@dataclass
class IngestState:
    """Set while an ingest runs (:mod:`dhr.record.ingest`): updates whose content equals the
    stored version are skipped (no new version) and listed in ``unchanged``."""

    unchanged: set[tuple[str, str]]


_UNKNOWN: Any = object()


@dataclass(frozen=True)
class HistoryPage:
    """One page of history: the versions shown and the cursor of the next page (if any)."""

    versions: list[StoredVersion]
    next_before: int | None


class EnforcingRepository:
    """Storage as one principal may see and change it."""

    def __init__(
        self,
        store: ResourceRepository,
        principal: Principal,
        base: str,
        audit: AuditRecorder | None = None,
        national: str = "X24",
        consent_enabled: bool = True,
        consent_implicit: str = "care-relationship",
    ) -> None:
        self._store = store
        self.principal = principal
        self.base = base
        self.audit = audit or AuditRecorder(principal, base, enabled=False)
        self.national = national
        self.consent_enabled = consent_enabled
        self.consent_implicit = consent_implicit
        self.ingest: IngestState | None = None
        self._scopes: dict[str, ReadScope] = {}
        self._source: Source | None = _UNKNOWN
        self._policy: RequestPolicy | None = None
        if principal.purpose_stated:
            self.audit.purpose = principal.purpose
        if principal.break_glass_reason is not None:
            self.audit.break_glass = True

    @property
    def policy(self) -> RequestPolicy:
        """The consent decision for this principal's request, compiled (built on first use)."""
        if self._policy is None:
            self._adopt(request_policy(*self._policy_inputs(now_micros())))
            assert self._policy is not None
        return self._policy

    def _policy_inputs(self, now: int) -> tuple[Any, Principal, str, str, int, bool, str]:
        """What :func:`request_policy` and :func:`last_policy` take, for this request."""
        return (
            self._store.conn,
            self.principal,
            self.base,
            self.national,
            now,
            self.consent_enabled,
            self.consent_implicit,
        )

    def _adopt(self, policy: RequestPolicy) -> None:
        self._policy = policy
        if not policy.exempt and self.audit.enabled:
            self.audit.glass_patients = policy.glass_patients()

    @property
    def conn(self) -> Any:
        """The unit of work's connection, for the unified record's own tables
        (:mod:`dhr.record`); resource rows are reached only through this class."""
        return self._store.conn

    def source(self) -> Source | None:
        """The registered source system the principal's client is (None: not a source)."""
        if self._source is _UNKNOWN:
            client = self.principal.client_id
            found = None
            if client and not is_record_service(self.principal):
                found = source_store.source_for_client(self._store.conn, client)
            self._source = found
        return self._source

    def _attributed(
        self, res_type: str, res_id: str, body: dict[str, Any], current: StoredVersion | None
    ) -> dict[str, Any]:
        """``body`` attributed (:mod:`dhr.record.attribution`); 403 when a source would change
        what another source or someone else originated."""
        previous = stored_meta(current.data) if current is not None else None
        source = self.source()
        changing = current is not None and current.data is not None
        if source is not None and changing and not owned_by(previous, source):
            raise forbidden(
                f"{res_type}/{res_id} was not sent by source {source.source_id}; a source "
                "may only change the data it originates"
            )
        return attribute(body, self.principal, source, previous, self.national)

    def _seen(self, stored: StoredVersion | None) -> StoredVersion | None:
        if stored is None:
            return None
        self.audit.touched_stored(stored.res_type, stored.res_id, stored.data, stored.patient)
        return stored

    def _hidden(self, stored: StoredVersion, action: str) -> None:
        self.audit.denied(
            f"{stored.res_type}/{stored.res_id} exists but is outside what the token may "
            f"{'read' if action == 'r' else 'change'} (patient compartment or scope "
            "restrictions); answered as not found",
            stored.res_type,
            stored.res_id,
            stored.data,
        )

    # -- decisions -------------------------------------------------------------------------

    def for_principal(self, principal: Principal) -> EnforcingRepository:
        """The same unit of work and audit recorder, enforced for another principal (e.g. the
        narrow directory principal that looks up names for ``$access-log``)."""
        other = EnforcingRepository(
            self._store,
            principal,
            self.base,
            self.audit,
            self.national,
            self.consent_enabled,
            self.consent_implicit,
        )
        other.ingest = self.ingest
        return other

    # -- the audit trail (read only; :mod:`dhr.audit.view` decides who may read it) --------

    def audit_event(self, event_id: str) -> audit_store.AuditRow | None:
        """One audit row of this unit of work's database, or None."""
        return audit_store.read_event(self._store.conn, event_id)

    def audit_events(self, **filters: Any) -> list[audit_store.AuditRow]:
        """Audit rows matching ``filters`` (:func:`dhr.store.audit_store.search_events`)."""
        return audit_store.search_events(self._store.conn, **filters)

    def client_record(self, client_id: str) -> Row[Any] | None:
        """A registered client (its name and organisation name the app in an access log)."""
        return auth_client_store.client_row(self._store.conn, client_id)

    def require(self, res_type: str, action: str) -> None:
        """403 unless some scope allows ``action`` on ``res_type``."""
        self._terms(res_type, action)

    def scope(self, action: str) -> ReadScope:
        found = self._scopes.get(action)
        if found is None:
            found = self._scopes[action] = read_scope(self.principal, action, self.base)
        return found

    def _terms(self, res_type: str, action: str) -> Terms:
        """The criteria ``action`` on ``res_type`` is limited to (403 when never allowed)."""
        terms = self.scope(action).terms(res_type)
        if terms is None:
            decision = may(self.principal, res_type, action)
            raise forbidden(
                decision
                if decision is not True
                else f"No granted scope restriction for {res_type} can be applied (unknown "
                "search parameter in a granular scope)"
            )
        return terms

    def _guard(self, criteria: Criteria) -> Criteria:
        """``criteria`` with the targets of chains and the sources of ``_has`` restricted by
        the consent decision too, so that a search cannot match through what it may not see."""
        if self.policy.exempt:
            return criteria
        return [self._guarded(c) for c in criteria]

    def _guarded(self, c: Any) -> Any:
        if isinstance(c, Chain):
            inner = tuple((t, self._guard_one(t, self._guarded(ic))) for t, ic in c.inner)
            return Chain(c.param, inner)
        if isinstance(c, Has):
            return Has(c.source, c.param, self._guard_one(c.source, self._guarded(c.inner)))
        return c

    def _guard_one(self, res_type: str, c: Criterion) -> Criterion:
        term = self.policy.term(res_type)
        return c if term is None else Guarded(c, term)

    def _read_terms(self, res_type: str) -> Terms:
        """What a search of ``res_type`` is limited to: the scopes' ``s`` criteria and the
        consent decision."""
        terms = self._terms(res_type, "s")
        term = self.policy.term(res_type)
        return terms if term is None else (*terms, term)

    def _allowances(self, action: str) -> tuple[access_store.Allowance, ...] | None:
        scope = self.scope(action)
        return None if scope.everything else scope.allowances

    def _meets(self, stored: StoredVersion, terms: Terms, current: bool) -> bool:
        """Whether a stored version meets ``terms`` (in memory, else by SQL when current)."""
        if not terms or stored.version_id == 0:
            return True
        data = stored.data
        if stored.deleted:  # judged by its last content
            before = self._store.read_version(stored.res_type, stored.res_id, stored.version_id - 1)
            data = before.data if before is not None else None
            current = False
        if data is None:
            return False
        verdict = matches(stored.res_type, jsonio.loads(data), terms)
        if verdict is None and current:
            found = access_store.visible_ids(
                self._store.conn, stored.res_type, [stored.res_id], terms
            )
            verdict = stored.res_id in found
        return bool(verdict)

    def _check_content(
        self, res_type: str, res_id: str, body: dict[str, Any], terms: Terms
    ) -> bool:
        """403 when new content falls outside ``terms``; True when only SQL can tell (after)."""
        if not terms:
            return False
        verdict = matches(res_type, {**body, "id": res_id}, terms)
        if verdict is False:
            self.audit.denied("content outside the granted scopes", res_type, res_id, body)
            raise forbidden(
                f"The token may not write this {res_type}: its content falls outside the "
                "granted scopes (patient compartment or scope restrictions)"
            )
        return verdict is None

    def _check_stored(self, res_type: str, res_ids: Sequence[str], terms: Terms) -> None:
        found = access_store.visible_ids(self._store.conn, res_type, res_ids, terms)
        if any(i not in found for i in res_ids):
            raise forbidden(
                f"The token may not write this {res_type}: its content falls outside the "
                "granted scopes (patient compartment or scope restrictions)"
            )

    # -- reads -----------------------------------------------------------------------------

    def _consented(
        self,
        stored: StoredVersion,
        now: StoredVersion | None = None,
        permitted: bool | None = None,
    ) -> bool:
        """Whether the consent decision permits the resource ``stored`` is a version of, judged
        as it is ``now`` (read if not given; its last content when deleted; ``permitted``: the
        decision on the live resource, when it was read with it); audits the denial when
        not."""
        policy = self.policy
        if not policy.applies_to(stored.res_type) or stored.version_id == 0:
            return True
        now = now or self._store.read_current(stored.res_type, stored.res_id)
        if now is None:
            return True
        if not now.deleted:
            ok = (
                permitted
                if permitted is not None
                else policy.permits_one(self._store.conn, stored.res_type, stored.res_id)
            )
        else:
            before = self._store.read_version(stored.res_type, stored.res_id, now.version_id - 1)
            body = jsonio.loads(before.data) if before is not None and before.data else None
            ok = body is None or policy.permits_content(stored.res_type, stored.res_id, body)
        if not ok:
            self.audit.denied(
                f"{stored.res_type}/{stored.res_id} exists but the consent and controller "
                "policy does not permit this requester to see it; answered as not found",
                stored.res_type,
                stored.res_id,
                stored.data,
            )
        return ok

    def read_current(self, res_type: str, res_id: str) -> StoredVersion | None:
        """The current version (``r``); None when unknown or outside what the token may read
        or what the consent decision permits."""
        terms = self._terms(res_type, "r")
        permitted: bool | None = None
        now = now_micros()
        if self._policy is None and (guess := self._last_policy(res_type, now)) is not None:
            stored, permitted = self._read_confirming(guess, res_type, res_id, now)
        elif self.policy.applies_to(res_type):  # the version and its decision in one statement
            stored, permitted = self.policy.read_permitted(self._store.conn, res_type, res_id)
        else:
            stored = self._store.read_current(res_type, res_id)
        if stored is None:
            return None
        if not self._meets(stored, terms, current=True):
            self._hidden(stored, "r")
            return None
        return self._seen(stored) if self._consented(stored, stored, permitted) else None

    def _last_policy(self, res_type: str, now: int) -> RequestPolicy | None:
        """The policy this requester had last (:func:`last_policy`), if it applies to
        ``res_type``: a read may use it, confirmed by the state its own statement reads."""
        guess = last_policy(*self._policy_inputs(now))
        return guess if guess is not None and guess.applies_to(res_type) else None

    def _read_confirming(
        self, guess: RequestPolicy, res_type: str, res_id: str, now: int
    ) -> tuple[StoredVersion | None, bool]:
        """The current version and its decision in ONE statement that also reads the request
        state (ADR 0010): if the state is the one ``guess`` was built for, ``guess`` is this
        request's policy; if not, the policy for the state read is built and the read runs
        again under it. An id never used leaves the policy to be built when needed."""
        conn = self._store.conn
        stored, permitted, state = guess.read_confirming(conn, res_type, res_id, now)
        if state is None:
            return None, True
        if state == guess.state:
            self._adopt(guess)
            return stored, permitted
        assert guess.requester is not None
        implicit = self.consent_implicit
        self._adopt(
            policy_for_state(conn, guess.requester, self.base, self.national, now, implicit, state)
        )
        return self.policy.read_permitted(conn, res_type, res_id)

    def read_version(self, res_type: str, res_id: str, version_id: int) -> StoredVersion | None:
        """One version (``r``); None when unknown or outside what the token may read."""
        terms = self._terms(res_type, "r")
        stored = self._store.read_version(res_type, res_id, version_id)
        if stored is None:
            return None
        if terms:
            now = self._store.read_current(res_type, res_id)
            current = now is not None and now.version_id == stored.version_id
            if not self._meets(stored, terms, current):
                self._hidden(stored, "r")
                return None
        return self._seen(stored) if self._consented(stored) else None

    def read_for_change(self, res_type: str, res_id: str, action: str) -> StoredVersion | None:
        """The current version before a change (``u`` patch): 403 when the token may not change
        it, None when unknown."""
        terms = self._terms(res_type, action)
        stored = self._store.read_current(res_type, res_id)
        if stored is not None and not stored.deleted and not self._meets(stored, terms, True):
            self._hidden(stored, action)
            raise forbidden(f"The token may not change {res_type}/{res_id}")
        if stored is not None and not stored.deleted and not self._consented(stored, stored):
            raise forbidden(f"The token may not change {res_type}/{res_id}")
        return self._seen(stored)

    # -- searches --------------------------------------------------------------------------

    def search(
        self,
        res_type: str,
        criteria: Criteria,
        sort: Sequence[SortKey],
        limit: int,
        after: list[Any] | None,
    ) -> list[Row[Any]]:
        """One page of a search (``s``), restricted to what the token may see."""
        terms = self._read_terms(res_type)
        criteria = self._guard(criteria)
        with one_statement():
            rows = self._store.search(page_query(res_type, (*terms, *criteria), sort, limit, after))
        self.audit.touched_rows(rows[: max(limit - 1, 1)] if len(rows) >= limit else rows)
        return rows

    def count(self, res_type: str, criteria: Criteria) -> int:
        terms = self._read_terms(res_type)
        criteria = self._guard(criteria)
        with one_statement():
            return self._store.count(count_query(res_type, (*terms, *criteria)))

    def match_ids(self, res_type: str, criteria: Criteria, limit: int) -> list[str]:
        """Ids of conditional-interaction matches (``s``) among what the token may see."""
        terms = self._read_terms(res_type)
        criteria = self._guard(criteria)
        with one_statement():
            rows = self._store.search(matching_ids(res_type, (*terms, *criteria), limit))
        return [str(row[0]) for row in rows]

    def include(
        self, includes: Sequence[Include], matches_: Sequence[Sequence[Any]]
    ) -> tuple[list[Sequence[Any]], bool]:
        """``_include``/``_revinclude`` rows (``r`` on each included type), restricted in SQL."""
        allowances = self._allowances("r")
        policy = self.policy.cond()
        with one_statement():  # one round of includes after another: each its own statement
            rows, truncated = include.resolve(
                self._store, includes, matches_, self.base, allowances, policy
            )
        self.audit.touched_rows(rows)
        return rows, truncated

    def _everything(
        self, patient_id: str | None, types: Sequence[str] | None, since: int | None
    ) -> access_store.EverythingSet:
        self.require("Patient", "r")
        allowances = self._allowances("r")
        return access_store.EverythingSet(
            patient_id, types, since, self.base, allowances, self.policy.cond()
        )

    def everything(
        self,
        patient_id: str | None,
        types: Sequence[str] | None,
        since: int | None,
        after: int | None,
        limit: int,
    ) -> list[Row[Any]]:
        """A page of ``Patient/$everything`` (``r`` on Patient and on each type it returns):
        ``(key, res_type, res_id, data, member, patient key)`` rows."""
        with one_statement():
            rows = self._store.search(self._everything(patient_id, types, since).page(after, limit))
        self.audit.touched_rows(rows[: max(limit - 1, 1)] if len(rows) >= limit else rows)
        return rows

    def everything_count(
        self, patient_id: str | None, types: Sequence[str] | None, since: int | None
    ) -> int:
        with one_statement():
            return self._store.count(self._everything(patient_id, types, since).count())

    def history(
        self,
        res_type: str | None,
        res_id: str | None,
        since: int | None,
        at: tuple[int, int] | None,
        count: int,
        before_key: int | None,
    ) -> HistoryPage:
        """Versions newest first: instance history needs ``r``, type and system history ``s``;
        only versions of resources the token may see, each version judged by its content."""
        action = "r" if res_id is not None else "s"
        if res_type is not None:
            self.require(res_type, action)
        elif not self.principal.open and not self.scope(action).allowances:
            raise forbidden("The token's scopes allow no system-level history (s on any type)")
        scope = self.scope(action)
        allowances = None if scope.everything else scope.allowances
        policy = self.policy
        rows = access_store.history(
            self._store.conn,
            res_type,
            res_id,
            since,
            at,
            count + 1,
            before_key,
            allowances,
            policy.cond(),
        )
        more = len(rows) > count
        rows = rows[:count]
        if allowances is not None and not scope.types_only:
            rows = [v for v in rows if self._version_visible(v, scope)]
        if not policy.exempt:  # each version judged by its own content as well
            rows = [
                v
                for v in rows
                if v.data is None
                or policy.permits_content(v.res_type, v.res_id, jsonio.loads(v.data))
            ]
        for version in rows:
            self._seen(version)
        return HistoryPage(rows, rows[-1].key if more and rows else None)

    def _version_visible(self, version: StoredVersion, scope: ReadScope) -> bool:
        terms = scope.terms(version.res_type)
        if terms is None:
            return False
        if version.deleted:
            return True  # the resource passed the SQL filter, so it is visible now
        return self._meets(version, terms, current=False) or self._current_is(version, terms)

    def _current_is(self, version: StoredVersion, terms: Terms) -> bool:
        now = self._store.read_current(version.res_type, version.res_id)
        if now is None or now.version_id != version.version_id:
            return False
        return self._meets(now, terms, current=True)

    # -- writes ----------------------------------------------------------------------------

    def _may_write(self, res_type: str) -> None:
        """A patient acting for themselves writes only their own Consents (issue 6); what else
        a principal may write is its scopes' and, for a source, its origin's business."""
        self.policy.writing(res_type)
        requester = self.policy.requester
        if requester is not None and requester.patient is not None and res_type != "Consent":
            raise forbidden(
                f"A patient may write only their own Consents through this API, not {res_type}"
            )

    def check_create(self, res_type: str, res_id: str, body: dict[str, Any]) -> None:
        """403 unless the token may create this content (``c``); for early, per-entry errors."""
        self._check_content(res_type, res_id, body, self._terms(res_type, "c"))

    def create(
        self, res_type: str, res_id: str, body: dict[str, Any], method: str = "POST"
    ) -> StoredVersion:
        return self.create_many([(res_type, res_id, body)], method)[0]

    def create_many(
        self, items: Sequence[tuple[str, str, dict[str, Any]]], method: str = "POST"
    ) -> list[StoredVersion]:
        """Create each ``(type, id, body)`` (``c``); the content must land where the token may
        create."""
        for res_type in {t for t, _, _ in items}:
            self._may_write(res_type)
        items = [(t, i, self._attributed(t, i, b, None)) for t, i, b in items]
        later: dict[str, list[str]] = {}
        for res_type, res_id, body in items:
            if self._check_content(res_type, res_id, body, self._terms(res_type, "c")):
                later.setdefault(res_type, []).append(res_id)
        stored = self._store.create_many(items, method)
        for res_type, ids in later.items():
            self._check_stored(res_type, ids, self._terms(res_type, "c"))
        for (res_type, res_id, body), new in zip(items, stored, strict=True):
            self.audit.touched_stored(res_type, res_id, body, new.patient)
        return stored

    def put(
        self,
        res_type: str,
        res_id: str,
        body: dict[str, Any],
        if_match: int | None,
        method: str = "PUT",
    ) -> tuple[StoredVersion, bool]:
        """Update, or create with this id (``u``: SMART lets the update scope create)."""
        self._may_write(res_type)
        terms = self._terms(res_type, "u")
        current = (
            self.read_for_change(res_type, res_id, "u")
            if terms
            else self._store.read_current(res_type, res_id)
        )
        body = self._attributed(res_type, res_id, body, current)
        if self.ingest is not None and current is not None and not current.deleted:
            same = stamp(body, res_id, current.version_id, current.last_updated)
            if same == current.data:
                self.ingest.unchanged.add((res_type, res_id))
                self._seen(current)
                return current, False
        after = self._check_content(res_type, res_id, body, terms)
        stored, created = self._store.put(res_type, res_id, body, if_match, method)
        if after:
            self._check_stored(res_type, [res_id], terms)
        self.audit.touched_stored(res_type, res_id, body, stored.patient)
        return stored, created

    def delete(
        self, res_type: str, res_id: str, if_match: int | None = None
    ) -> StoredVersion | None:
        """Delete (``d``): 403 when the stored resource is outside what the token may delete,
        or (a source) was not sent by it."""
        self._may_write(res_type)
        source = self.source()
        if source is not None:
            current = self._store.read_current(res_type, res_id)
            if current is not None and current.data is not None:
                self._attributed(res_type, res_id, {}, current)
        if self._terms(res_type, "d"):
            self.read_for_change(res_type, res_id, "d")  # reports the content to audit
        elif self.audit.enabled:  # audit names the patient of what is deleted
            self._seen(self._store.read_current(res_type, res_id))
        return self._store.delete(res_type, res_id, if_match)
