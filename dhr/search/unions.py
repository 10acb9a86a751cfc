"""Union parameters: stored once, as their parts.

https://hl7.org/fhir/R4/observation.html#search: for one resource type some R4 search
parameters are exactly the union of others of the same type. Observation's ``combo-code``
(``Observation.code | Observation.component.code``) is ``code`` together with
``component-code``; ``combo-code-value-quantity`` (over ``Observation | Observation.component``)
is ``code-value-quantity`` together with ``component-code-value-quantity``. Their rows would
repeat their parts' rows value for value (a fifth of an Observation's index rows in the Synthea
data), so they are not extracted (:func:`stored_plans`), and a search, ``:missing`` test or sort
on one reads its parts' rows instead (:func:`stored_codes`, ``param IN (...)``). A composite's
elements keep apart: its rows join on (resource, param, grp) (:mod:`dhr.search.sql.composite`).

A parameter is a union of others when its branches for the type (the top-level ``|`` operands
that apply, :func:`dhr.search.extraction.plan.branches`) are split exactly among other
parameters of the same type, each extracted itself, with the same parameter type and, for
composites, the same component expressions and component types; the extraction of a branch
depends on nothing else, so the parts' rows are the union's rows. Reference parameters are left
alone: the access policy and the compartments read their rows by code.
"""

from __future__ import annotations

from functools import cache

from dhr.search.extraction.plan import (
    Plan,
    branches,
    component_expression,
    effective_expression,
    plans,
)
from dhr.search.registry import SearchParam, registry

_KEPT_WHOLE = frozenset({"reference", "special"})

Signature = tuple[str, tuple[tuple[str, str], ...]]
"""A parameter's type and its components' (expression, type): what must match between parts."""


def _signature(param: SearchParam) -> Signature:
    parts = []
    for j, comp in enumerate(param.components):
        definition = registry().by_url(comp.definition)
        parts.append((component_expression(param, j), definition.type if definition else ""))
    return param.type, tuple(parts)


def _branch_sets(res_type: str) -> dict[str, tuple[Signature, frozenset[str]]]:
    planned = {p.code for p in plans(res_type)}
    out: dict[str, tuple[Signature, frozenset[str]]] = {}
    for code, param in registry().for_type(res_type).items():
        expression = effective_expression(param)
        if code not in planned or expression is None or param.type in _KEPT_WHOLE:
            continue
        out[code] = (_signature(param), frozenset(branches(expression, res_type)))
    return out


def _cover(whole: frozenset[str], parts: list[tuple[str, frozenset[str]]]) -> tuple[str, ...]:
    """Codes of ``parts`` whose branch sets split ``whole`` exactly (largest first), or ()."""
    chosen: list[str] = []
    left = set(whole)
    for code, found in sorted(parts, key=lambda p: (-len(p[1]), p[0])):
        if found <= left:
            chosen.append(code)
            left -= found
    return tuple(sorted(chosen)) if not left and len(chosen) > 1 else ()


@cache
def _unions(res_type: str) -> dict[str, tuple[str, ...]]:
    sets = _branch_sets(res_type)
    out: dict[str, tuple[str, ...]] = {}
    for code, (signature, whole) in sets.items():
        if len(whole) < 2:
            continue
        parts = [
            (other, found)
            for other, (sig, found) in sets.items()
            if other != code and sig == signature and found < whole
        ]
        cover = _cover(whole, parts)
        if cover:
            out[code] = cover
    # A part that is itself a union is read through its own parts.
    return {code: _flatten(cover, out) for code, cover in out.items()}


def _flatten(codes: tuple[str, ...], unions: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    flat: list[str] = []
    for code in codes:
        flat.extend(_flatten(unions[code], unions) if code in unions else (code,))
    return tuple(sorted(set(flat)))


def stored_codes(res_type: str, code: str) -> tuple[str, ...]:
    """The ``param`` values of the rows that answer ``code`` on ``res_type``: its parts' codes
    for a union parameter, else ``(code,)``."""
    return _unions(res_type).get(code, (code,))


def unions(res_type: str) -> dict[str, tuple[str, ...]]:
    """Every union parameter of ``res_type`` with the codes of its parts."""
    return dict(_unions(res_type))


@cache
def stored_plans(res_type: str) -> tuple[Plan, ...]:
    """The extraction plans of ``res_type`` whose rows are stored (no union parameter's)."""
    skipped = _unions(res_type)
    return tuple(p for p in plans(res_type) if p.code not in skipped)
