"""What a principal may see when it performs one action: SMART scopes turned into SQL criteria.

SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):

* a ``patient/`` scope limits the data to the launch patient's record, the Patient compartment
  (https://hl7.org/fhir/R4/compartmentdefinition-patient.html): :class:`PatientRecord`;
* a v2 granular scope (``patient/Observation.rs?category=laboratory``, "Finer-grained resource
  constraints using search parameters") adds its parameters as search criteria, parsed exactly
  like a search's (:func:`dhr.search.params.parse_criterion`); a parameter the type does not have
  makes the scope grant nothing for that type (fail closed);
* ``user/`` and ``system/`` scopes limit types and actions only (consent and care relationships
  narrow them in a later issue);
* several scopes are OR-ed: each is one :class:`Allowance`; for one type the alternatives become
  one :class:`AnyOf` criterion (or nothing at all when one scope lets every resource through).

The result is pure data (:class:`ReadScope`), built once per principal and action (cached), that
the enforcing repository ANDs into each statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dhr.access.scope_check import usable_scopes
from dhr.auth.model import Principal, Scope
from dhr.errors import FhirError
from dhr.fhir.types import resource_types
from dhr.search.compile import Term
from dhr.search.params import CONTROL, INCLUDES, Criterion, UnknownParameter, parse_criterion
from dhr.store.access_store import Allowance, AnyOf, PatientRecord

Terms = tuple[Criterion | Term, ...]


@dataclass(frozen=True)
class ReadScope:
    """What one principal may see (or change) when it does ``action``: the OR of ``allowances``,
    or everything when ``everything``."""

    action: str
    everything: bool
    allowances: tuple[Allowance, ...]
    _terms: dict[str, Terms | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def terms(self, res_type: str) -> Terms | None:
        """The criteria a ``res_type`` resource must meet: ``()`` none, ``None`` never allowed."""
        if self.everything:
            return ()
        try:
            return self._terms[res_type]
        except KeyError:
            found = self._terms[res_type] = self._compute(res_type)
            return found

    def _compute(self, res_type: str) -> Terms | None:
        alternatives: dict[Terms, None] = {}
        for a in self.allowances:
            if a.types is not None and res_type not in a.types:
                continue
            alt: list[Criterion | Term] = []
            if a.record is not None:
                alt.append(a.record)
            if a.criteria is not None:
                if res_type not in a.criteria:
                    continue
                alt.extend(a.criteria[res_type])
            if not alt:
                return ()
            alternatives.setdefault(tuple(alt), None)
        if not alternatives:
            return None
        alts = tuple(alternatives)
        return alts[0] if len(alts) == 1 else (AnyOf(alts),)

    def type_allowed(self, res_type: str) -> bool:
        return self.terms(res_type) is not None

    @property
    def types_only(self) -> bool:
        """Whether only resource types are restricted (no record, no parameters)."""
        return self.everything or all(a.type_only for a in self.allowances)


_OPEN = {a: ReadScope(a, True, ()) for a in "cruds"}
_CACHE_SIZE = 8192
# (token id, action, base) -> ReadScope. A token id (jti) names one issued token, whose claims
# never change, so its scopes are parsed and their search parameters compiled once, not per
# request; a principal without one (the CLI) is rebuilt each time, which is cheap enough.
_BY_TOKEN: dict[tuple[str, str, str], ReadScope] = {}


def read_scope(principal: Principal, action: str, base: str) -> ReadScope:
    """The :class:`ReadScope` of ``principal`` for ``action`` (c, r, u, d or s)."""
    if principal.open:
        return _OPEN[action]
    if principal.token_id is None:
        return _build(principal, action, base)
    key = (principal.token_id, action, base)
    found = _BY_TOKEN.get(key)
    if found is None:
        if len(_BY_TOKEN) >= _CACHE_SIZE:
            _BY_TOKEN.clear()
        found = _BY_TOKEN[key] = _build(principal, action, base)
    return found


def _build(principal: Principal, action: str, base: str) -> ReadScope:
    allowances: dict[Allowance, None] = {}
    for scope in usable_scopes(principal):
        if action not in scope.actions:
            continue
        allowance = _allowance(scope, principal.patient, base)
        if allowance is not None:
            allowances.setdefault(allowance, None)
    return ReadScope(action, False, tuple(allowances))


def _allowance(scope: Scope, patient: str | None, base: str) -> Allowance | None:
    types = None if scope.resource_type == "*" else frozenset({scope.resource_type})
    record = None
    if scope.context == "patient":
        if not patient:
            return None
        record = PatientRecord(patient, base)
    if not scope.params:
        return Allowance(types, record, None)
    candidates = sorted(resource_types()) if types is None else sorted(types)
    criteria: dict[str, Terms] = {}
    for res_type in candidates:
        parsed = parse_restriction(res_type, scope.params, base)
        if parsed is not None:
            criteria[res_type] = parsed
    return Allowance(types, record, _Frozen(criteria))


def parse_restriction(res_type: str, params: Sequence[tuple[str, str]], base: str) -> Terms | None:
    """A granular scope's ``param=value`` pairs as criteria on ``res_type``; None when one does
    not apply to the type (or is not a criterion at all, e.g. ``_count``)."""
    out: list[Criterion | Term] = []
    for key, raw in params:
        if key in CONTROL or key.partition(":")[0] in INCLUDES or not raw:
            return None
        try:
            out.append(parse_criterion(res_type, key, raw, base))
        except (UnknownParameter, FhirError):
            return None
    return tuple(out)


class _Frozen(dict[str, Terms]):
    """A read-only, hashable mapping (allowances are cached and de-duplicated)."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items(), key=lambda kv: kv[0])))

    def __setitem__(self, key: str, value: Terms) -> None:
        raise TypeError("frozen")
