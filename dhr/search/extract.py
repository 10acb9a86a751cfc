"""Index extraction at write time (https://hl7.org/fhir/R4/search.html).

``extract(res_type, body)`` returns the index rows of one resource for every registered search
parameter of its type: each parameter's FHIRPath expression is compiled once per type
(:mod:`dhr.search.extraction.plan`) and its values turned into rows by the module of the
parameter's type (:mod:`dhr.search.extraction.token`, ``string``, ``date``, ``number``,
``quantity``, ``reference``, ``uri``, ``composite``). ``_id`` and ``_lastUpdated`` are not
extracted (the store assigns them afterwards; search reads the ``resource`` table).

Extraction never fails a write: a parameter whose values cannot be indexed is logged and
skipped. Duplicate rows (one value reached by two union branches) are stored once. A parameter
that is the union of others (Observation's ``combo-code``...) is not extracted: its parts' rows
answer it (:mod:`dhr.search.unions`).
"""

from __future__ import annotations

import logging
from collections.abc import Set as AbstractSet
from typing import Any

from dhr.search.extraction import composite
from dhr.search.extraction.paths import Items
from dhr.search.extraction.plan import Plan, unwrap
from dhr.search.rows import IndexRow
from dhr.search.unions import stored_plans

_log = logging.getLogger(__name__)


# The plans that can yield rows for a body, by its type and its top-level element names (a
# parameter whose element is absent reads nothing): resources of one type come in few shapes.
# Bounded: past it, bodies of new shapes are judged plan by plan, as before.
_CHOSEN: dict[tuple[str, frozenset[str]], tuple[Plan, ...]] = {}
_MAX_SHAPES = 4096


def _may_read(plan: Plan, keys: AbstractSet[str]) -> bool:
    if plan.gate is not None and keys.isdisjoint(plan.gate):
        return False  # the element the parameter reads is absent
    # a composite over the resource has nothing to read unless every component finds its element
    return not (plan.requires and any(keys.isdisjoint(need) for need in plan.requires))


def _plans_for(res_type: str, keys: AbstractSet[str]) -> tuple[Plan, ...]:
    shape = (res_type, frozenset(keys))
    chosen = _CHOSEN.get(shape)
    if chosen is None:
        chosen = tuple(p for p in stored_plans(res_type) if _may_read(p, keys))
        if len(_CHOSEN) < _MAX_SHAPES:
            _CHOSEN[shape] = chosen
    return chosen


def extract(res_type: str, body: dict[str, Any]) -> list[IndexRow]:
    """The index rows for ``body``."""
    root: Items = [(body, res_type)]
    out: list[IndexRow] = []
    for plan in _plans_for(res_type, body.keys()):
        try:
            if plan.extractor is None:
                out.extend(composite.rows(plan, root))
                continue
            extractor, code = plan.extractor, plan.code
            for value, kind in unwrap(plan.select(root, root)):
                out.extend(extractor(code, value, kind, 0, 0))
        except Exception:  # an odd value must never fail a write that passed validation
            _log.warning("could not index %s.%s", res_type, plan.code, exc_info=True)
    return list(dict.fromkeys(out))
