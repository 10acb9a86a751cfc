"""Per-type extraction plans compiled from the search parameter registry.

https://hl7.org/fhir/R4/searchparameter-registry.html: each parameter's ``expression`` is a
FHIRPath union over all its base types. For one resource type only the union branches that
start from that type (or from ``Resource`` / ``DomainResource``) apply; they are compiled once
(:mod:`.paths`) and paired with the extractor of the parameter's type. Not planned:

* ``special`` parameters (``near``, ``_filter``) and those without an expression (``_text``,
  ``_content``, ``_query``);
* ``_id`` and ``_lastUpdated``: the server assigns both after extraction ran on the incoming
  body, so the query compiler answers them from the ``resource`` table columns instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dhr.search.extraction import date, number, quantity, reference, string, token, uri
from dhr.search.extraction.model import is_type, table
from dhr.search.extraction.parse import UnsupportedPathError, first_read, leading_name, parse
from dhr.search.extraction.paths import Fn, Items, child, compile_branch
from dhr.search.registry import SearchParam, registry
from dhr.search.rows import IndexRow

Extractor = Callable[[str, Any, str | None, int, int], list[IndexRow]]

EXTRACTORS: dict[str, Extractor] = {
    "token": token.rows,
    "string": string.rows,
    "date": date.rows,
    "number": number.rows,
    "quantity": quantity.rows,
    "reference": reference.rows,
    "uri": uri.rows,
}
SKIPPED = frozenset({"_id", "_lastUpdated"})
_ROOTS = ("Resource", "DomainResource")
_LEADING = re.compile(r"[\s(]*([A-Za-z_]\w*)")
# Errata in the official R4 definitions: DocumentReference-relationship swaps its components'
# expressions (the reference component reads ``code``, the token one ``target``).
# The mothersMaidenName parameter names a URL no extension has; the extension's own URL is
# http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName (both are read).
EXTRA_BRANCHES: dict[str, str] = {
    "http://hl7.org/fhir/SearchParameter/patient-extensions-Patient-mothersMaidenName": (
        "Patient.extension('http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName')"
    ),
}
ERRATA: dict[tuple[str, int], str] = {
    ("http://hl7.org/fhir/SearchParameter/DocumentReference-relationship", 0): "target",
    ("http://hl7.org/fhir/SearchParameter/DocumentReference-relationship", 1): "code",
}


@dataclass(frozen=True)
class Plan:
    """How to extract one parameter of one type."""

    code: str
    type: str
    select: Fn
    extractor: Extractor | None  # None for composites
    components: tuple[tuple[Fn, Extractor], ...] = ()
    native: bool = True  # False when some part runs on the fhirpathpy fallback
    # JSON keys of which the resource must have one for this plan to yield anything (None: any)
    gate: frozenset[str] | None = None
    # More such sets, each of which the resource must meet too (a composite over the resource
    # itself yields nothing unless every component finds its element: see _requires)
    requires: tuple[frozenset[str], ...] = ()


def split_union(text: str) -> list[str]:
    """The top-level ``|`` operands of ``text`` (parentheses and quotes respected)."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == "|":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _leading(branch: str) -> str | None:
    try:
        return leading_name(parse(branch))
    except UnsupportedPathError:
        found = _LEADING.match(branch)
        return found.group(1) if found else None


def _union(fns: list[Fn]) -> Fn:
    if len(fns) == 1:
        return fns[0]
    return lambda f, r: [it for fn in fns for it in fn(f, r)]


def _gate(res_type: str, branch: str, relative: bool = False) -> set[str] | None:
    """The JSON keys of ``res_type`` of which one must be present for ``branch`` to yield.

    An element read through ``as``/``ofType`` counts only under the keys of its choice types
    that can be that type (``(Observation.value as dateTime)``: ``valueDateTime``), as the
    compiled ``as`` keeps only those (:mod:`.paths`); ``relative``: see :func:`first_read`.
    """
    try:
        found = first_read(parse(branch), relative)
    except UnsupportedPathError:
        return None
    if found is None:
        return None
    name, wanted = found
    spec = table(res_type).get(name) or table("DomainResource").get(name) or ()
    if wanted is not None and spec:
        return {k for k, kind in spec if kind in (None, "Resource") or is_type(kind, wanted)}
    return {name, *(key for key, _ in spec)}


def _requires(res_type: str, expression: str, components: list[str]) -> tuple[frozenset[str], ...]:
    """Necessary key sets for a composite whose expression may select the resource itself.

    Every component must yield for a row, so for component *j* the resource needs a key of
    its gate when the element is the resource, or else a key that lets another branch select
    an element: one set per component (empty: nothing known, the plan always runs).
    """
    bare: bool = False
    others: set[str] = set()
    for branch in branches(expression, res_type):
        if branch == res_type:
            bare = True
            continue
        keys = _gate(res_type, branch)
        if keys is None:
            return ()
        others |= keys
    if not bare:
        return ()
    out: list[frozenset[str]] = []
    for component in components:
        keys = set()
        for branch in split_union(component):
            found = _gate(res_type, branch, relative=True)
            if found is None:
                return ()
            keys |= found
        out.append(frozenset(keys | others))
    return tuple(out)


def branches(expression: str, res_type: str | None) -> list[str]:
    """The union branches of ``expression`` that apply to ``res_type`` (None: every one)."""
    out = []
    for branch in split_union(expression):
        if res_type is not None:
            lead = _leading(branch)
            if lead is None or (lead[:1].isupper() and lead not in (res_type, *_ROOTS)):
                continue
        out.append(branch)
    return out


def effective_expression(param: SearchParam) -> str | None:
    """``param``'s expression with this server's added branches (:data:`EXTRA_BRANCHES`)."""
    if param.code in SKIPPED or param.type == "special" or not param.expression:
        return None
    if param.url in EXTRA_BRANCHES:
        return f"{param.expression} | {EXTRA_BRANCHES[param.url]}"
    return param.expression


def component_expression(param: SearchParam, position: int) -> str:
    """The expression of ``param``'s component at ``position`` (0-based; errata applied)."""
    return ERRATA.get((param.url, position), param.components[position].expression)


def select(expression: str, res_type: str | None) -> tuple[Fn, bool, frozenset[str] | None] | None:
    """Compile the branches of ``expression`` that apply to ``res_type`` (None: relative).

    Also says which top-level JSON keys the branches read first (None: not known).
    """
    fns: list[Fn] = []
    native = True
    gate: set[str] | None = set()
    for branch in branches(expression, res_type):
        if res_type is not None:
            keys = _gate(res_type, branch)
            gate = None if gate is None or keys is None else gate | keys
        fn, ok = compile_branch(branch, relative=res_type is None)
        fns.append(fn)
        native = native and ok
    if not fns:
        return None
    return _union(fns), native, frozenset(gate) if gate and res_type is not None else None


def _plan(res_type: str, param: SearchParam) -> Plan | None:
    expression = effective_expression(param)
    if expression is None:
        return None
    chosen = select(expression, res_type)
    if chosen is None:
        return None
    fn, native, gate = chosen
    if param.type != "composite":
        return Plan(param.code, param.type, fn, EXTRACTORS[param.type], (), native, gate)
    parts: list[tuple[Fn, Extractor]] = []
    texts: list[str] = []
    for j, comp in enumerate(param.components):
        definition = registry().by_url(comp.definition)
        text = component_expression(param, j)
        sub = select(text, None)
        if definition is None or definition.type not in EXTRACTORS or sub is None:
            return None
        parts.append((sub[0], EXTRACTORS[definition.type]))
        texts.append(text)
        native = native and sub[1]
    requires = _requires(res_type, expression, texts)
    return Plan(param.code, "composite", fn, None, tuple(parts), native, gate, requires)


_PLANS: dict[str, tuple[Plan, ...]] = {}


def plans(res_type: str) -> tuple[Plan, ...]:
    """Every extraction plan of ``res_type`` (compiled on first use, then cached)."""
    found = _PLANS.get(res_type)
    if found is None:
        built = [_plan(res_type, p) for p in registry().for_type(res_type).values()]
        found = _PLANS[res_type] = tuple(p for p in built if p is not None)
    return found


def unwrap(items: Items) -> Items:
    """Extensions stand for their ``value[x]`` (``Patient.extension('...')`` parameters)."""
    for _, kind in items:
        if kind == "Extension":
            break
    else:
        return items
    out: Items = []
    for item in items:
        out.extend(child([item], "value") if item[1] == "Extension" else [item])
    return out
