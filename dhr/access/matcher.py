"""Does one resource body meet the criteria of a :class:`~dhr.access.read_scope.ReadScope`?

The in-memory twin of the SQL the criteria compile to (:mod:`dhr.store.access_store`,
:mod:`dhr.search.compile`), for a body that has no current index rows: an earlier version
(vread, history), the last content of a deleted resource, or a resource about to be written.
Only the parameters involved are extracted (:mod:`dhr.search.extraction.plan`), so checking a
body costs a few FHIRPath selections, not a full index extraction.

It answers ``True``, ``False`` or ``None`` ("cannot tell here": chains, ``_has``, modifiers,
dates, numbers and quantities are left to the SQL, which the caller runs on the stored current
version, or refuses when there is none: fail closed). The semantics follow
https://hl7.org/fhir/R4/search.html#token, #reference, #string and #uri as the SQL does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from dhr.search import compartment
from dhr.search.compile import Term
from dhr.search.extraction.paths import Items
from dhr.search.extraction.plan import Plan, plans, unwrap
from dhr.search.params import Criterion, Filter
from dhr.search.rows import IndexRow, ReferenceRow, StringRow, TokenRow, UriRow
from dhr.search.sql.values import Ref, Text, Token, Uri, Value
from dhr.store.access_store import OWNER, AnyOf, PatientRecord

Verdict = bool | None


def matches(res_type: str, body: dict[str, Any], criteria: Sequence[Criterion | Term]) -> Verdict:
    """Whether ``body`` (a ``res_type``) meets every criterion (None: cannot tell in memory)."""
    rows = _Rows(res_type, body)
    try:
        return _all(_one(res_type, body, c, rows) for c in criteria)
    except Exception:  # an odd value the extractors cannot read: leave it to the SQL
        return None


def _all(verdicts: Iterable[Verdict]) -> Verdict:
    unknown = False
    for v in verdicts:
        if v is False:
            return False
        unknown = unknown or v is None
    return None if unknown else True


def _any(verdicts: Iterable[Verdict]) -> Verdict:
    unknown = False
    for v in verdicts:
        if v is True:
            return True
        unknown = unknown or v is None
    return None if unknown else False


class _Rows:
    """Index rows of ``body``, extracted per parameter code on first use."""

    def __init__(self, res_type: str, body: dict[str, Any]) -> None:
        self.res_type = res_type
        self.body = body
        self._rows: dict[str, list[IndexRow]] = {}

    def of(self, code: str) -> list[IndexRow]:
        found = self._rows.get(code)
        if found is None:
            found = self._rows[code] = self._extract(code)
        return found

    def _extract(self, code: str) -> list[IndexRow]:
        root: Items = [(self.body, self.res_type)]
        out: list[IndexRow] = []
        for plan in _plans(self.res_type, code):
            if plan.gate is not None and self.body.keys().isdisjoint(plan.gate):
                continue
            assert plan.extractor is not None
            for value, kind in unwrap(plan.select(root, root)):
                out.extend(plan.extractor(code, value, kind, 0, 0))
        return out


@cache
def _plans(res_type: str, code: str) -> tuple[Plan, ...]:
    """The (non-composite) extraction plans of one parameter of one type."""
    return tuple(p for p in plans(res_type) if p.code == code and p.extractor is not None)


# The usual way into a record first: most members name their patient in ``subject``/``patient``.
_FIRST = {"patient": 0, "subject": 1}


@cache
def _record_codes(res_type: str) -> tuple[str, ...]:
    codes = compartment.compartment(OWNER).params(res_type)
    return tuple(sorted(codes, key=lambda c: _FIRST.get(c, 2)))


def _one(res_type: str, body: dict[str, Any], c: Criterion | Term, rows: _Rows) -> Verdict:
    if isinstance(c, PatientRecord):
        return _in_record(res_type, body, c, rows)
    if isinstance(c, AnyOf):
        return _any(_all(_one(res_type, body, x, rows) for x in alt) for alt in c.alternatives)
    if isinstance(c, Filter):
        return _filter(body, c, rows)
    return None


def _in_record(res_type: str, body: dict[str, Any], c: PatientRecord, rows: _Rows) -> bool:
    if res_type == OWNER and body.get("id") == c.patient_id:
        return True
    local = c.base + "/"
    for code in _record_codes(res_type):
        for row in rows.of(code):
            if (
                isinstance(row, ReferenceRow)
                and row.target_type == OWNER
                and row.target_id == c.patient_id
                and (row.url is None or row.url.startswith(local))
            ):
                return True
    return False


def _filter(body: dict[str, Any], f: Filter, rows: _Rows) -> Verdict:
    param = f.param
    if param.code == "_id" and f.modifier is None:
        return any(isinstance(v, Token) and v.code == body.get("id") for v in f.values)
    if f.modifier is not None or param.type not in ("token", "reference", "string", "uri"):
        return None
    found = rows.of(param.code)
    verdicts = [_value(param.targets, v, found) for v in f.values]
    return _any(verdicts)


def _value(targets: tuple[str, ...], v: Value, rows: list[IndexRow]) -> Verdict:
    if isinstance(v, Token):
        return any(isinstance(r, TokenRow) and _token(r, v) for r in rows)
    if isinstance(v, Ref):
        return any(isinstance(r, ReferenceRow) and _ref(r, v, targets) for r in rows)
    if isinstance(v, Text):
        return any(isinstance(r, StringRow) and r.norm.startswith(v.text) for r in rows)
    if isinstance(v, Uri):
        return any(isinstance(r, UriRow) and r.uri == v.uri for r in rows)
    return None


def _token(row: TokenRow, v: Token) -> bool:
    if v.code is not None and row.code != v.code[:255]:
        return False
    if v.system == "":
        return row.system is None
    return v.system is None or row.system == v.system


def _ref(row: ReferenceRow, v: Ref, targets: tuple[str, ...]) -> bool:
    if v.url is not None:
        return row.url == v.url
    if row.target_id != v.target_id:
        return False
    if v.target_type is not None:
        return row.target_type == v.target_type
    return not targets or row.target_type in targets
