"""Per-request audit collection: what one interaction touched, for which patients, and why not.

IHE BALP (https://profiles.ihe.net/ITI/BALP/content.html): one AuditEvent per interaction and
patient. The enforcing repository (:mod:`dhr.enforce`) reports to the request's
:class:`AuditRecorder` every resource it returns or changes, and every resource it hides (a
denial); at the end of the request the dispatcher asks :meth:`AuditRecorder.events` for the
records, built with :func:`dhr.audit.events.build_event`:

* one record per Patient whose record was touched, naming the data touched for that patient
  plus any data that belongs to no patient (a Practitioner, an Organization...);
* one record with no patient when nothing patient-specific was touched (a failed request, a
  search without matches, a read of a Practitioner).

The patient of a resource is the resource itself for a Patient, otherwise every Patient its
compartment references point at (https://hl7.org/fhir/R4/compartmentdefinition-patient.html,
the same parameters as :mod:`dhr.search.compartment`), found in memory from the content.

Public API for other modules: :meth:`AuditRecorder.touched` (``res_type, res_id, patient``)
records one entity for one patient, e.g. the AuditEvent view records each AuditEvent it shows,
so reading the audit is audited too. A transaction collects per entry (:meth:`select`,
:meth:`claim`), so each entry becomes its own events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import orjson

from dhr.audit.events import build_event
from dhr.audit.model import Action, AuditRecord, Outcome
from dhr.auth.model import Principal
from dhr.fhir.ids import new_id
from dhr.search import compartment
from dhr.search.extraction.paths import Items
from dhr.search.extraction.plan import Plan, plans, unwrap
from dhr.search.rows import ReferenceRow
from dhr.store.patient_key import SEVERAL

PATIENT = "Patient"

# Route name (dhr.api.dispatch.resolve) -> restful-interaction subtype and AuditEvent.action.
# BALP: reads are R, searches (queries) E, creates C, updates and patches U, deletes D, and
# operations E. Instance history reads one resource (R); type and system history query (E).
INTERACTIONS: dict[str, tuple[str, Action]] = {
    "read": ("read", "R"),
    "vread": ("vread", "R"),
    "search-type": ("search-type", "E"),
    "search-compartment": ("search-type", "E"),
    "history-instance": ("history-instance", "R"),
    "history-type": ("history-type", "E"),
    "history-system": ("history-system", "E"),
    "create": ("create", "C"),
    "update": ("update", "U"),
    "update-conditional": ("update", "U"),
    "patch": ("patch", "U"),
    "patch-conditional": ("patch", "U"),
    "delete": ("delete", "D"),
    "delete-conditional": ("delete", "D"),
    "everything": ("operation", "E"),
    "validate": ("operation", "E"),
    "access-log": ("operation", "E"),
    "match": ("operation", "E"),
    "access-check": ("operation", "E"),
    "import": ("operation", "C"),
    "link": ("operation", "U"),
    "unlink": ("operation", "U"),
    # Declarations about one patient's record (issue 6): their own subtypes, so that a privacy
    # officer finds them (a self-claimed relationship is flagged for review by its subtype).
    "break-glass": ("break-glass", "E"),
    "claim-relationship": ("claim-relationship", "E"),
    "batch": ("batch", "E"),
    "transaction": ("transaction", "E"),
    "bundle": ("batch", "E"),  # a Bundle refused before its type is known
}
# Before an interaction is known (a bad path, a refused format): by method.
BY_METHOD: dict[str, tuple[str, Action]] = {
    "GET": ("read", "R"),
    "HEAD": ("read", "R"),
    "POST": ("create", "C"),
    "PUT": ("update", "U"),
    "PATCH": ("patch", "U"),
    "DELETE": ("delete", "D"),
}
NOT_AUDITED = frozenset({"capabilities"})  # the public CapabilityStatement touches no data
QUERY_ROUTES = frozenset(
    {"search-type", "search-compartment", "history-type", "history-system", "everything"}
)


def interaction(route: str | None, method: str) -> tuple[str, Action]:
    """The subtype and action of route ``route`` (or of ``method`` when no route was found)."""
    if route is not None and route in INTERACTIONS:
        return INTERACTIONS[route]
    return BY_METHOD.get(method.upper(), ("operation", "E"))


def outcome_of(status: int) -> Outcome:
    """AuditEvent.outcome for an HTTP status: 0 success, 4 minor (4xx), 8 serious (5xx)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


def mark_audited(exc: BaseException) -> None:
    """Note that the failure ``exc`` is already audited (a rolled-back transaction)."""
    exc.__dict__["_dhr_audited"] = True


def was_audited(exc: BaseException) -> bool:
    return bool(exc.__dict__.get("_dhr_audited"))


def now_micros() -> int:
    return time.time_ns() // 1000


@cache
def _patient_plans(res_type: str) -> tuple[Plan, ...]:
    codes = set(compartment.compartment(PATIENT).params(res_type))
    return tuple(p for p in plans(res_type) if p.code in codes and p.extractor is not None)


def patients_of(res_type: str, res_id: str, body: dict[str, Any] | None, base: str) -> list[str]:
    """The Patients whose record ``res_type/res_id`` (content ``body``) belongs to."""
    if res_type == PATIENT:
        return [res_id]
    if body is None:
        return []
    local = base + "/"
    root: Items = [(body, res_type)]
    found: dict[str, None] = {}
    for plan in _patient_plans(res_type):
        if plan.gate is not None and body.keys().isdisjoint(plan.gate):
            continue
        assert plan.extractor is not None
        for value, kind in unwrap(plan.select(root, root)):
            for row in plan.extractor(plan.code, value, kind, 0, 0):
                if (
                    isinstance(row, ReferenceRow)
                    and row.target_type == PATIENT
                    and row.target_id
                    and (row.url is None or row.url.startswith(local))
                ):
                    found[row.target_id] = None
    return list(found)


Content = dict[str, Any] | bytes | None


@dataclass
class _Touch:
    res_type: str
    res_id: str
    content: Content = None
    patient: str | None = None
    known: bool = False  # ``patient`` was given (no content to look at)


@dataclass
class _Collected:
    """What one interaction (a request, or one transaction entry) touched."""

    touches: list[_Touch] = field(default_factory=list)
    denial: str | None = None


class AuditRecorder:
    """Collects what one request touched; :meth:`events` turns it into AuditRecords.

    ``enabled=False`` (audit off: benchmark baselines) makes every report a no-op.
    """

    def __init__(
        self,
        principal: Principal,
        server: str,
        request_id: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.principal = principal
        self.server = server
        self.request_id = request_id or new_id()
        self.enabled = enabled
        self.purpose: str | None = None  # purpose of use (the consent work sets it)
        self.break_glass = False
        self.glass_patients: set[str] = set()  # patients opened by a break-glass declaration
        self._collected: dict[object, _Collected] = {}
        self._key: object = None
        self._claims: dict[tuple[str, str], object] = {}

    # -- reports (from the enforcing repository and views) ---------------------------------

    def touched(self, res_type: str, res_id: str, patient: str | None) -> None:
        """Record that ``res_type/res_id``, of ``patient``'s record (None: of no patient), was
        returned or changed by this request. Public API (the AuditEvent view calls it)."""
        if self.enabled:
            self._bucket(res_type, res_id).touches.append(
                _Touch(res_type, res_id, None, patient, True)
            )

    def touched_resource(self, res_type: str, res_id: str, content: Content) -> None:
        """Record ``res_type/res_id`` with its content (JSON bytes or a dict; None when deleted):
        its patients are worked out when the events are built."""
        if self.enabled:
            self._bucket(res_type, res_id).touches.append(_Touch(res_type, res_id, content))

    def touched_stored(
        self, res_type: str, res_id: str, content: Content, patient_key: str | None
    ) -> None:
        """Record a stored resource read with its row's patient key (:mod:`dhr.store.patient_key`),
        which names its one patient, or none, as working it out from the content would, at no
        cost; only content whose key says several patients (or was never worked out) is parsed."""
        if content is not None and patient_key != SEVERAL:
            self.touched(res_type, res_id, patient_key)
        else:
            self.touched_resource(res_type, res_id, content)

    def touched_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Record search-style rows ``(key, res_type, res_id, data, ..., patient key)``."""
        if self.enabled:
            for row in rows:
                data = row[3]
                content = bytes(data) if data is not None else None
                self.touched_stored(str(row[1]), str(row[2]), content, row[-1])

    def denied(self, reason: str, res_type: str, res_id: str, content: Content = None) -> None:
        """Record a denial and its real reason (the client may only see a 404), naming the
        resource that was refused and so the patient(s) it belongs to."""
        if self.enabled:
            bucket = self._bucket(res_type, res_id)
            bucket.denial = reason
            bucket.touches.append(_Touch(res_type, res_id, content))

    # -- transaction entries ---------------------------------------------------------------

    def select(self, key: object) -> None:
        """Collect what follows under ``key`` (a transaction entry) until the next select."""
        self._key = key

    def claim(self, res_type: str, res_id: str, key: object) -> None:
        """The next report of ``res_type/res_id`` belongs to ``key`` whatever is selected (a
        transaction stores its creates together, after their entries ran)."""
        if self.enabled:
            self._claims[(res_type, res_id)] = key

    def _bucket(self, res_type: str, res_id: str) -> _Collected:
        key = self._claims.pop((res_type, res_id), self._key) if self._claims else self._key
        found = self._collected.get(key)
        if found is None:
            found = self._collected[key] = _Collected()
        return found

    def keys(self) -> list[object]:
        return list(self._collected)

    def gather(self) -> None:
        """Record again under the request itself (key None) everything touched under other
        keys: a single write or ``$import`` that ran as an ingest's transaction entries is one
        interaction, and its AuditEvents name every patient those entries touched."""
        collected = [self.patients(key) for key in self.keys() if key is not None]
        self.select(None)
        for by_patient in collected:
            for patient, entities in by_patient.items():
                for entity in entities:
                    res_type, _, res_id = entity.partition("/")
                    self.touched(res_type, res_id, patient)

    def denial(self, key: object = None) -> str | None:
        found = self._collected.get(key)
        return found.denial if found is not None else None

    # -- the records -----------------------------------------------------------------------

    def patients(self, key: object = None) -> dict[str | None, list[str]]:
        """Patient (None: no patient) -> the entities (``Type/id``) touched for them."""
        by_patient: dict[str | None, dict[str, None]] = {}
        found = self._collected.get(key)
        for touch in found.touches if found is not None else ():
            entity = f"{touch.res_type}/{touch.res_id}"
            if touch.known:
                owners: list[str | None] = [touch.patient]
            else:
                owners = list(self._patients(touch)) or [None]
            for owner in owners:
                by_patient.setdefault(owner, {})[entity] = None
        return {p: list(entities) for p, entities in by_patient.items()}

    def _patients(self, touch: _Touch) -> list[str]:
        content = touch.content
        if touch.res_type == PATIENT:
            return [touch.res_id]
        if isinstance(content, bytes | bytearray | memoryview):
            loaded = orjson.loads(bytes(content))  # numbers do not matter here
            content = loaded if isinstance(loaded, dict) else None
        return patients_of(touch.res_type, touch.res_id, content, self.server)

    def events(
        self,
        subtype: str,
        action: Action,
        outcome: Outcome,
        *,
        outcome_desc: str | None = None,
        query: str | None = None,
        key: object = None,
        all_keys: bool = False,
    ) -> list[AuditRecord]:
        """One record per patient touched (under ``key``, or under every key when
        ``all_keys``), or one with no patient when none was; a denial's reason wins over
        ``outcome_desc``."""
        if not self.enabled:
            return []
        if all_keys:
            merged: dict[str | None, dict[str, None]] = {}
            denial = None
            for k in self.keys():
                denial = denial or self.denial(k)
                for p, entities in self.patients(k).items():
                    merged.setdefault(p, {}).update(dict.fromkeys(entities))
            by_patient = {p: list(e) for p, e in merged.items()}
        else:
            by_patient = self.patients(key)
            denial = self.denial(key)
        if outcome != "0" and denial:
            outcome_desc = denial
        shared = by_patient.pop(None, [])
        recorded = now_micros()
        targets: list[tuple[str | None, list[str]]] = [
            (p, [*entities, *shared]) for p, entities in by_patient.items() if p is not None
        ]
        if not targets:
            targets = [(None, shared)]
        return [
            build_event(
                event_id=new_id(),
                recorded=recorded,
                subtype=subtype,
                action=action,
                outcome=outcome,
                principal=self.principal,
                request_id=self.request_id,
                patient=patient,
                entities=entities,
                query=query,
                outcome_desc=outcome_desc,
                purpose=self.purpose,
                break_glass=self.break_glass or patient in self.glass_patients,
                server=self.server,
            )
            for patient, entities in targets
        ]
