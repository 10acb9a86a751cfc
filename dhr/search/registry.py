"""The search parameter registry, loaded once from the vendored official R4 definitions.

https://hl7.org/fhir/R4/searchparameter-registry.html. ``dhr/data/search-parameters.json`` is
derived from the official CC0 bundle by ``scripts/derive_search_params.py``. Parameters whose
base is ``Resource`` or ``DomainResource`` apply to every type. A parameter type this server
does not know fails the load (loudly, at start-up), never a query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from dhr.fhir.types import resource_types

PARAM_TYPES = frozenset(
    {"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
)
_ABSTRACT_BASES = ("Resource", "DomainResource")


class RegistryError(Exception):
    """The vendored definitions hold something this server cannot search on."""


@dataclass(frozen=True)
class Component:
    """One component of a composite parameter: another parameter, applied to ``expression``."""

    definition: str  # canonical URL of the component's SearchParameter
    expression: str  # FHIRPath relative to the composite's element


@dataclass(frozen=True)
class SearchParam:
    """One search parameter as defined for (possibly) several base types."""

    url: str
    code: str
    type: str
    base: tuple[str, ...]
    expression: str | None  # FHIRPath over all bases (union); None for special params
    targets: tuple[str, ...] = ()  # reference targets
    components: tuple[Component, ...] = ()


class Registry:
    """Lookup of search parameters by resource type and code, or by canonical URL."""

    def __init__(self, params: list[SearchParam]) -> None:
        self._by_url = {p.url: p for p in params}
        served = resource_types()
        common: dict[str, SearchParam] = {}
        per_type: dict[str, dict[str, SearchParam]] = {t: {} for t in served}
        for p in params:
            for base in p.base:
                if base in _ABSTRACT_BASES:
                    common[p.code] = p
                elif base in per_type:
                    per_type[base][p.code] = p
        self._by_type = {t: {**common, **own} for t, own in per_type.items()}
        self._common = common

    def get(self, res_type: str, code: str) -> SearchParam | None:
        """The parameter ``code`` on ``res_type`` (including Resource-level ones), or None."""
        return self._by_type.get(res_type, self._common).get(code)

    def for_type(self, res_type: str) -> dict[str, SearchParam]:
        """Every parameter that applies to ``res_type``, by code."""
        return self._by_type.get(res_type, self._common)

    def by_url(self, url: str) -> SearchParam | None:
        return self._by_url.get(url)

    def common(self) -> dict[str, SearchParam]:
        """Parameters that apply to every type (``_id``, ``_lastUpdated``, ``_tag``...)."""
        return self._common


def _parse(raw: dict[str, Any]) -> SearchParam:
    ptype = raw.get("type")
    if ptype not in PARAM_TYPES:
        raise RegistryError(f"search parameter {raw.get('url')} has unknown type {ptype!r}")
    components = tuple(
        Component(c["definition"], c["expression"]) for c in raw.get("component") or ()
    )
    if ptype == "composite" and not components:
        raise RegistryError(f"composite search parameter {raw['url']} has no components")
    return SearchParam(
        url=raw["url"],
        code=raw["code"],
        type=str(ptype),
        base=tuple(raw["base"]),
        expression=raw.get("expression"),
        targets=tuple(raw.get("target") or ()),
        components=components,
    )


def load(data: dict[str, Any]) -> Registry:
    """Build a registry from the vendored JSON document (checks every component resolves)."""
    params = [_parse(p) for p in data["parameters"]]
    registry = Registry(params)
    for p in params:
        for c in p.components:
            if registry.by_url(c.definition) is None:
                raise RegistryError(f"{p.url}: component {c.definition} is not defined")
    return registry


@cache
def registry() -> Registry:
    """The registry of the vendored R4 definitions (loaded once per process)."""
    text = resources.files("dhr").joinpath("data/search-parameters.json").read_text("utf-8")
    return load(json.loads(text))
