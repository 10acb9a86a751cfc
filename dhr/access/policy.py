"""The consent decision for one request, compiled for the enforcing repository.

ARCHITECTURE.md "The policy layer": ``consent`` decides, ``dhr`` enforces. :func:`request_policy`
builds, once per unit of work, the requester (:class:`consent.model.Requester`: the token's
subject, roles, organisation, client and fhirUser; the purpose of use and a break-glass reason
from the request, :mod:`dhr.access.purpose`), reads the joint-controller arrangement in force and
the patients' active Consents, and compiles :func:`consent.compile.policy` once for patients
without Consents (the implicit policy) and once per distinct set of Consents. The enforcing
repository ANDs :meth:`RequestPolicy.visible` into every statement that returns resources, and
asks :meth:`RequestPolicy.permits_content` about content it cannot judge in SQL (the last
content of a deleted resource).

Who is not subject to consent: the open principal (the API served without authentication, only
for benchmark baselines) and the server's own record service (master Patients, links,
Provenance), and any request when consent enforcement is switched off (``DHR_CONSENT_ENABLED``,
only for benchmark baselines). SMART scopes apply before all this, so consent only narrows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    and_,
    bindparam,
    case,
    false,
    literal,
    or_,
    select,
    true,
)

from consent.compile import permits, policy
from consent.formula import Formula, PatientFacts
from consent.model import PURPOSES, Arrangement, DataItem, Label, Requester
from dhr.access.decision_sql import Decision
from dhr.access.policy_sql import (
    PatientSets,
    PerPatient,
    RequestSets,
    condition,
    id_set,
    is_in,
    not_in,
    patient_data,
    use_sets,
)
from dhr.access.policy_support import (
    SUPPORT_RANK,
    Support,
    bound,
    support_keys,
    worth_driving,
)
from dhr.auth.model import Principal
from dhr.auth.roles import UnknownRoleError
from dhr.auth.roles import role as role_info
from dhr.record.arrangement import purposes_for
from dhr.record.attribution import controllers_of, is_record_service
from dhr.search import compartment
from dhr.search.compile import Cond
from dhr.store import policy_store
from dhr.store.arrangement_store import current_arrangement
from dhr.store.frozen import Frozen, freeze
from dhr.store.index_writer import flush_index_rows
from dhr.store.models import ResourceRow, VersionRow
from dhr.store.repository import VERSION_COLUMNS, StoredVersion, version_from_driver_row

RESOURCE = ResourceRow.__table__
POLICY_ROW = RESOURCE.alias("policy_row")
PATIENT_ROLE = "patient"
# The server's own identity matching at sign-in (one Patient or Practitioner by identifier; its
# scopes allow nothing else): who a user is must not depend on what they may see.
IDENTITY_SERVICE_ROLE = "identity-service"
# The server's own reading of the facts a decision or an explanation needs ($access-check's
# Consents and relationships, the names an access log shows); its scopes name exactly the
# types it reads, and its reads are audited like any other.
POLICY_SERVICE_ROLE = "policy-service"
EXEMPT_ROLES = frozenset({IDENTITY_SERVICE_ROLE, POLICY_SERVICE_ROLE})


def _role_purpose(roles: Sequence[str]) -> str:
    """The purpose of use the first role with one the decision knows implies (default TREAT):
    a researcher's is HRESCH, a patient's PATRQT."""
    for code in roles:
        try:
            purpose = role_info(code).purpose_of_use
        except UnknownRoleError:
            continue
        if purpose in PURPOSES:
            return purpose
    return "TREAT"


def requester_of(principal: Principal) -> Requester:
    """The requester the decision point judges, from the token and the request."""
    own: str | None = None
    if PATIENT_ROLE in principal.roles:
        own = principal.patient
        if own is None and (principal.fhir_user or "").startswith("Patient/"):
            own = (principal.fhir_user or "").split("/", 1)[1]
        own = own or ""
    return Requester(
        subject=principal.subject,
        roles=principal.roles,
        organisation=principal.organisation,
        client_id=principal.client_id,
        practitioner=principal.fhir_user,
        patient=own,
        purpose=principal.purpose if principal.purpose_stated else _role_purpose(principal.roles),
        break_glass_reason=principal.break_glass_reason,
    )


def arrangement_of(conn: Connection, national: str) -> Arrangement:
    """The joint-controller arrangement in force, as the decision point reads it."""
    _, doc = current_arrangement(conn)
    listed = {c.ods: purposes_for(doc, c.ods, national) for c in doc.controllers}
    for ods in (national, doc.national.ods):
        listed[ods] = frozenset(doc.national.purposes)
    return Arrangement(national, listed, frozenset(doc.originating_default.purposes))


def _today(now: int) -> str:
    return dt.datetime.fromtimestamp(now / 1_000_000, dt.UTC).date().isoformat()


@dataclass
class RequestPolicy:
    """The compiled decision for one requester (``exempt``: consent does not apply)."""

    exempt: bool
    base: str
    requester: Requester | None = None
    implicit: Formula | None = None
    groups: tuple[tuple[tuple[str, ...], Formula], ...] = ()
    sets: PatientSets | None = None
    _conn: Connection | None = field(default=None, repr=False)
    sets_one: PatientSets | None = None
    _facts: dict[str, PatientFacts] = field(default_factory=dict, repr=False)
    # (res_type (None: any), whether rows of several patients are judged) -> the condition on
    # :data:`POLICY_ROW`, kept with the compiled policy across requests (building it costs more
    # than running it)
    _conds: dict[tuple[str | None, bool], Decision] = field(default_factory=dict, repr=False)
    _one: dict[str, Frozen] = field(default_factory=dict, repr=False)
    _read: dict[str, Frozen] = field(default_factory=dict, repr=False)
    _read_confirming: dict[str, Frozen] = field(default_factory=dict, repr=False)
    # the patient facts read for this request (care relationships, break-glass), which the
    # statements take as parameters (policy_sql.id_set)
    facts_read: RequestSets = field(default_factory=lambda: RequestSets(frozenset(), frozenset()))
    # the request state the policy was built for (None: exempt)
    state: policy_store.RequestState | None = None
    # whether each type searched has live rows of several patients (read once per request)
    _several: dict[str, bool] = field(default_factory=dict, repr=False)
    # the rows the decision may permit at most (None: any row; dhr.access.policy_support) and,
    # per (res_type, several), their keys as a driving condition on POLICY_ROW
    support: Support | None = None
    _drives: dict[tuple[str, bool], Decision] = field(default_factory=dict, repr=False)

    @property
    def holders(self) -> tuple[str, ...]:
        return tuple(p for pids, _ in self.groups for p in pids)

    def formula_for(self, patient_id: str) -> Formula:
        assert self.implicit is not None
        for pids, formula in self.groups:
            if patient_id in pids:
                return formula
        return self.implicit

    def _per_patient(self, res: FromClause, res_type: str | None, one: bool = False) -> PerPatient:
        assert self.implicit is not None
        sets = self.sets_one if one else self.sets
        assert sets is not None
        implicit = self.implicit
        holders = self.holders

        def per_patient(pid: ColumnElement[str]) -> ColumnElement[bool]:
            plain = condition(implicit, res, res_type, pid, sets)
            parts = [and_(not_in(pid, holders), plain) if holders else plain]
            for pids, formula in self.groups:
                parts.append(and_(is_in(pid, pids), condition(formula, res, res_type, pid, sets)))
            return or_(false(), *parts)

        return per_patient

    def applies_to(self, res_type: str) -> bool:
        """Whether ``res_type`` can be patient data (a Patient, or a compartment member)."""
        if self.exempt:
            return False
        return res_type == "Patient" or bool(compartment.compartment("Patient").params(res_type))

    def visible(self, res: FromClause, res_type: str | None) -> ColumnElement[bool]:
        """SQL: the decision permits the resource ``res`` (of ``res_type``; None: any type).

        The decision is built once per compiled policy and type on :data:`POLICY_ROW` and
        reused by every statement, as a :class:`~dhr.access.decision_sql.Decision` (SQLAlchemy
        does not walk it again for every statement's cache key), put on ``res`` itself
        (:meth:`~dhr.access.decision_sql.Decision.on`): no join of the row to itself."""
        if self.exempt or (res_type is not None and not self.applies_to(res_type)):
            return true()
        use_sets(self.facts_read)
        several = res_type is None or self._has_several(res_type)
        found = self._conds.get((res_type, several))
        if found is None:
            row = POLICY_ROW
            per_patient = self._per_patient(row, res_type)
            found = Decision(patient_data(row, res_type, self.base, per_patient, several), row)
            self._conds[(res_type, several)] = found
        return found.on(res)

    def driving(self, res_type: str) -> Decision | None:
        """The keys of the ``res_type`` rows the decision may permit, as a condition on
        :data:`POLICY_ROW` (``.on(res)``) that an index can drive a search by; None when the
        decision is not bounded, or bounded by too many patients to be worth it
        (:mod:`dhr.access.policy_support`)."""
        if self.support is None or self.sets is None or not self.applies_to(res_type):
            return None
        facts = self.facts_read
        patients = len(facts.related) + len(facts.glass_broken) + len(self.support.patients)
        if not worth_driving(patients):
            return None
        several = self._has_several(res_type)
        found = self._drives.get((res_type, several))
        if found is None:
            row = POLICY_ROW
            keys = support_keys(self.support, res_type, self.sets, several)
            found = self._drives[(res_type, several)] = Decision(row.c.key.in_(keys), row)
        return found

    def _has_several(self, res_type: str) -> bool:
        """Whether live ``res_type`` rows of several patients exist, asked once per request:
        if none, a search's decision leaves out their branch (ADR 0010 item 13). A row of
        several patients written after the probe is refused by that statement, never shown
        unjudged."""
        found = self._several.get(res_type)
        if found is None:
            assert self._conn is not None
            found = self._several[res_type] = policy_store.has_several(self._conn, res_type)
        return found

    def writing(self, res_type: str) -> None:
        """This request is about to write ``res_type``: its next search of that type asks
        :meth:`_has_several` again (a row of several patients it writes must be found)."""
        self._several.pop(res_type, None)

    def cond(self) -> Cond | None:
        """:meth:`visible` for a resource of any type, as a function of the alias (None:
        everything is visible)."""
        if self.exempt:
            return None
        return lambda res: self.visible(res, None)

    def term(self, res_type: str) -> PolicyTerm | None:
        """The decision as a search criterion on ``res_type`` (None: nothing to add)."""
        return PolicyTerm(self) if self.applies_to(res_type) else None

    def _decision_on_one(
        self, conn: Connection, res_type: str
    ) -> tuple[FromClause, Callable[[], ColumnElement[bool]]]:
        """Ready ``conn`` for a statement on one resource (queued index rows written, this
        request's patient sets bound) and give the decision on :data:`POLICY_ROW`, built when
        called (only a statement not yet frozen needs it)."""
        flush_index_rows(conn)
        use_sets(self.facts_read)
        row = POLICY_ROW

        def cond() -> ColumnElement[bool]:
            return patient_data(row, res_type, self.base, self._per_patient(row, res_type, True))

        return row, cond

    def permits_one(self, conn: Connection, res_type: str, res_id: str) -> bool:
        """Whether the decision permits the live ``res_type/res_id`` (a read): the statement is
        rendered once per compiled policy and type (:mod:`dhr.store.frozen`) and, on
        PostgreSQL, kept prepared, so a read pays neither SQLAlchemy's per-execution work on
        the large condition nor PostgreSQL's planning of it."""
        if not self.applies_to(res_type):
            return True
        frozen = self._one.get(res_type)
        row, cond = self._decision_on_one(conn, res_type)
        if frozen is None:
            stmt = (
                select(literal(1))
                .select_from(row)
                .where(row.c.res_type == res_type, row.c.res_id == bindparam("rid", ""), cond())
            )
            frozen = self._one[res_type] = freeze(stmt, conn.dialect, ("rid",))
        return bool(frozen.rows(conn, prepare=True, rid=res_id))

    def read_permitted(
        self, conn: Connection, res_type: str, res_id: str
    ) -> tuple[StoredVersion | None, bool]:
        """The current version of ``res_type/res_id`` (None: the id was never used) and whether
        the decision permits it while it lives, in ONE statement: a read under consent costs
        the request state and this, one round trip less than reading, then deciding
        (:meth:`permits_one`). Kept like :meth:`permits_one`, per compiled policy and type."""
        rows = self._read_statement(conn, res_type, False).rows(conn, prepare=True, rid=res_id)
        if not rows:
            return None, True
        width = len(VERSION_COLUMNS)
        return version_from_driver_row(rows[0], rows[0][width + 1]), bool(rows[0][width])

    def read_confirming(
        self, conn: Connection, res_type: str, res_id: str, now: int
    ) -> tuple[StoredVersion | None, bool, policy_store.RequestState | None]:
        """:meth:`read_permitted` by a policy not yet confirmed (:func:`last_policy`), with
        the request state read by the same statement (None when the id was never used): the
        answer stands if that state is :attr:`state`, so a read under consent is one round
        trip while nothing it depends on changes."""
        assert self.requester is not None
        frozen = self._read_statement(conn, res_type, True)
        subject = self.requester.subject
        rows = frozen.rows(conn, prepare=True, rid=res_id, subject=subject, now=now)
        if not rows:
            return None, True, None
        width = len(VERSION_COLUMNS)
        state = policy_store.state_of(rows[0][width + 2 :])
        stored = version_from_driver_row(rows[0], rows[0][width + 1])
        return stored, bool(rows[0][width]), state

    def _read_statement(self, conn: Connection, res_type: str, with_state: bool) -> Frozen:
        """The statement of :meth:`read_permitted` (``with_state``: of :meth:`read_confirming`),
        frozen once per compiled policy and type: the version, the decision, the row's patient
        key (for the audit) and the request state."""
        kept = self._read_confirming if with_state else self._read
        frozen = kept.get(res_type)
        row, cond = self._decision_on_one(conn, res_type)
        if frozen is None:
            version = VersionRow.__table__
            state = policy_store.state_columns() if with_state else []
            stmt = (
                select(*VERSION_COLUMNS, case((cond(), 1), else_=0), row.c.patient_key, *state)
                .select_from(
                    row.join(
                        version,
                        and_(
                            version.c.resource_key == row.c.key,
                            version.c.version_id == row.c.version_id,
                        ),
                    )
                )
                .where(row.c.res_type == res_type, row.c.res_id == bindparam("rid", ""))
            )
            slots = ("rid", "subject", "now") if with_state else ("rid",)
            frozen = kept[res_type] = freeze(stmt, conn.dialect, slots)
        return frozen

    def glass_patients(self) -> set[str]:
        """The patients this requester has a break-glass declaration in force for (read with
        the generations when the request began)."""
        return set(self.facts_read.glass_broken)

    # -- judging content in Python (what SQL cannot see: the last content of a deletion) ------

    def facts(self, patient_id: str) -> PatientFacts:
        """The patient-level facts for this requester (the opt-out read once per patient and
        request; the others were read when the request began)."""
        found = self._facts.get(patient_id)
        if found is not None:
            return found
        assert self._conn is not None
        assert self.sets is not None
        conn = self._conn
        flush_index_rows(conn)
        found = self._facts[patient_id] = PatientFacts(
            related=self.sets.everyone_related or patient_id in self.facts_read.related,
            opted_out=policy_store.is_opted_out(conn, patient_id),
            glass_broken=patient_id in self.facts_read.glass_broken,
        )
        return found

    def permits_content(self, res_type: str, res_id: str, body: dict[str, Any]) -> bool:
        """Whether the decision permits a resource with content ``body`` (every patient)."""
        if not self.applies_to(res_type):
            return True
        from dhr.audit.recorder import patients_of  # the audit's reading of the compartment

        meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
        labels = frozenset(
            Label(str(s.get("system", "")), str(s.get("code", "")))
            for s in (meta or {}).get("security") or []
            if isinstance(s, dict)
        )
        codes = (
            frozenset(
                f"{c.get('system')}|{c.get('code')}"
                for c in ((body.get("code") or {}).get("coding") or [])
                if isinstance(c, dict)
            )
            if isinstance(body.get("code"), dict)
            else frozenset()
        )
        for pid in patients_of(res_type, res_id, body, self.base) or []:
            item = DataItem(
                res_type,
                pid,
                labels,
                tuple(controllers_of(meta)),
                None,
                None,
                res_id,
                codes,
            )
            if not permits(self.formula_for(pid), item, self.facts(pid)):
                return False
        return True


@dataclass(frozen=True)
class PolicyTerm:
    """The decision as a search criterion (:class:`dhr.search.compile.Term`). When bounded it
    drives a search that no other criterion can, by the rows it may permit
    (:mod:`dhr.access.policy_support`), and judges them all the same."""

    policy: RequestPolicy

    def parts(self, res_type: str) -> tuple[int | None, Cond, Cond]:
        def probe(res: FromClause) -> ColumnElement[bool]:
            return self.policy.visible(res, res_type)

        support = self.policy.driving(res_type)
        if support is None:
            return None, probe, probe

        def drive(res: FromClause) -> ColumnElement[bool]:
            assert support is not None
            return and_(support.on(res), probe(res))

        return SUPPORT_RANK, drive, probe

    def __hash__(self) -> int:
        return id(self.policy)


@dataclass(frozen=True)
class _Compiled:
    requester: Requester
    plain: Formula
    groups: tuple[tuple[tuple[str, ...], Formula], ...]
    sets: PatientSets
    sets_one: PatientSets
    conds: dict[tuple[str | None, bool], Decision] = field(default_factory=dict, compare=False)
    one: dict[str, Frozen] = field(default_factory=dict, compare=False)
    read: dict[str, Frozen] = field(default_factory=dict, compare=False)
    read_confirming: dict[str, Frozen] = field(default_factory=dict, compare=False)
    support: Support | None = None
    drives: dict[tuple[str, bool], Decision] = field(default_factory=dict, compare=False)


_COMPILED: dict[tuple[Any, ...], _Compiled] = {}
_MAX_COMPILED = 1024
# The last policy built for a requester in a context (database, base, national controller,
# implicit policy, day): its compiled part, the facts it read and the state they were read at.
_LAST: dict[tuple[Any, ...], tuple[_Compiled, RequestSets, policy_store.RequestState]] = {}


def forget_compiled_policies() -> None:
    """Drop every kept compiled policy and parsed Consent (tests that empty the tables, where
    version keys start again; a restored database needs a restart for the same reason)."""
    _COMPILED.clear()
    _LAST.clear()
    policy_store.forget_consents()


def _subject_to_consent(principal: Principal, enabled: bool) -> bool:
    exempt = is_record_service(principal) or not EXEMPT_ROLES.isdisjoint(principal.roles)
    return enabled and not principal.open and not exempt


def request_policy(
    conn: Connection,
    principal: Principal,
    base: str,
    national: str,
    now: int,
    enabled: bool = True,
    implicit: str = "care-relationship",
) -> RequestPolicy:
    """The compiled decision for ``principal``'s request.

    Compiling is kept (per process) for the same requester, day, implicit policy, Consents
    generation and arrangement version, so a request pays one prepared statement
    (``policy_store.request_state``) to learn that nothing changed; the same statement brings
    the requester's claims in force, and the care relationships read from the data are kept per
    relationship generation (``policy_store.related_ids``).
    """
    if not _subject_to_consent(principal, enabled):
        return RequestPolicy(True, base)
    requester = requester_of(principal)
    state = policy_store.request_state(conn, requester.subject, now)
    return policy_for_state(conn, requester, base, national, now, implicit, state)


def last_policy(
    conn: Connection,
    principal: Principal,
    base: str,
    national: str,
    now: int,
    enabled: bool = True,
    implicit: str = "care-relationship",
) -> RequestPolicy | None:
    """The policy :func:`request_policy` last built for this requester in this context, not
    yet confirmed: it may be used only by a statement that also reads the request state
    (:meth:`RequestPolicy.read_confirming`), and only if that state is the one it was built
    for; otherwise :func:`policy_for_state` builds the right one from the state read. None:
    there is none, or consent does not apply (:func:`request_policy` says how)."""
    if not _subject_to_consent(principal, enabled):
        return None
    requester = requester_of(principal)
    found = _LAST.get(_context(conn, requester, base, national, implicit, now))
    if found is None:
        return None
    compiled, facts, state = found
    return _request_policy(base, conn, compiled, facts, state)


def _context(
    conn: Connection, requester: Requester, base: str, national: str, implicit: str, now: int
) -> tuple[Any, ...]:
    """The key of :data:`_LAST`: a requester's policy, less what the request state says."""
    return (str(conn.engine.url), requester, base, national, implicit, _today(now))


def policy_for_state(
    conn: Connection,
    requester: Requester,
    base: str,
    national: str,
    now: int,
    implicit: str,
    state: policy_store.RequestState,
) -> RequestPolicy:
    """The compiled decision for ``requester`` given the request ``state`` read at ``now``."""
    url = str(conn.engine.url)
    consent_gen, arrangement_gen = state.consent_generation, state.arrangement_version
    today = _today(now)
    related = state.claimed
    if requester.organisation and implicit != "direct-care":
        related |= policy_store.related_ids(
            conn, requester.organisation, base, state.relationship_generation
        )
    key = (url, requester, base, national, implicit, today, consent_gen, arrangement_gen)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _compile(conn, requester, base, national, implicit, today, consent_gen)
        if len(_COMPILED) >= _MAX_COMPILED:
            _COMPILED.clear()
        _COMPILED[key] = compiled
    facts = RequestSets(related, state.glass_broken)
    if len(_LAST) >= _MAX_COMPILED:
        _LAST.clear()
    _LAST[_context(conn, requester, base, national, implicit, now)] = (compiled, facts, state)
    return _request_policy(base, conn, compiled, facts, state)


def _request_policy(
    base: str,
    conn: Connection,
    compiled: _Compiled,
    facts: RequestSets,
    state: policy_store.RequestState,
) -> RequestPolicy:
    return RequestPolicy(
        False,
        base,
        compiled.requester,
        compiled.plain,
        compiled.groups,
        compiled.sets,
        conn,
        compiled.sets_one,
        _conds=compiled.conds,
        _one=compiled.one,
        _read=compiled.read,
        _read_confirming=compiled.read_confirming,
        facts_read=facts,
        state=state,
        support=compiled.support,
        _drives=compiled.drives,
    )


def _from_cte(stmt: Any, name: str) -> Select[Any]:
    cte = stmt.cte(name)
    return select(cte.c[0])


def _compile(
    conn: Connection,
    requester: Requester,
    base: str,
    national: str,
    implicit: str,
    today: str,
    generation: int,
) -> _Compiled:
    arrangement = arrangement_of(conn, national)
    plain = policy(requester, arrangement, today)
    groups: dict[Formula, list[str]] = {}
    if requester.patient is None:
        by_patient = policy_store.active_consents(conn, base, generation)
        for pid, consents in sorted(by_patient.items()):
            formula = policy(requester, arrangement, today, consents)
            if formula != plain:
                groups.setdefault(formula, []).append(pid)
    dialect = conn.dialect.name
    related = id_set(dialect, "policy_related", lambda sets: sets.related)
    glass = id_set(dialect, "policy_glass", lambda sets: sets.glass_broken)
    sets_one = PatientSets(
        related=related.subquery(),
        opted_out=policy_store.opted_out_patients().subquery(),
        glass_broken=glass.subquery(),
        everyone_related=implicit == "direct-care",
        one_patient=True,
    )
    # The opt-out set once per statement, as a named CTE the database computes once (and the
    # statements stay shallow: SQLite's parser has a bounded stack).
    sets = PatientSets(
        related=related,
        opted_out=_from_cte(policy_store.opted_out_patients(), "policy_opted_out"),
        glass_broken=glass,
        everyone_related=implicit == "direct-care",
    )
    by_group = tuple((tuple(pids), formula) for formula, pids in groups.items())
    # direct-care: everyone counts as related, so the rows permitted are not bounded
    support = None if sets.everyone_related else bound(plain, by_group)
    return _Compiled(requester, plain, by_group, sets, sets_one, support=support)
