"""``_summary`` and ``_elements`` (https://hl7.org/fhir/R4/search.html#summary, #elements).

Summaries are computed from the R4B models' ``summary_element_property`` flags. A subsetted
resource carries the ``SUBSETTED`` tag from http://terminology.hl7.org/CodeSystem/v3-ObservationValue.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from dhr.fhir.types import model_class

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "As requested, resource is not fully detailed.",
}
_ALWAYS = frozenset({"resourceType", "id", "meta"})


@cache
def _element_sets(res_type: str) -> tuple[frozenset[str], frozenset[str]]:
    """(summary elements, mandatory elements) by JSON name, choice types expanded."""
    summary: set[str] = set()
    mandatory: set[str] = set()
    for name, info in model_class(res_type).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        alias = info.alias or name
        if extra.get("summary_element_property"):
            summary.add(alias)
        if info.is_required() or extra.get("one_of_many_required"):
            mandatory.add(alias)
    return frozenset(summary), frozenset(mandatory)


def _tagged(resource: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" for t in tags if isinstance(t, dict)):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    kept["meta"] = meta
    return kept


def summarise(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """Apply ``_summary=true|text|data`` to a resource."""
    rtype = str(resource.get("resourceType"))
    summary, mandatory = _element_sets(rtype)
    if mode == "data":
        kept = {k: v for k, v in resource.items() if k != "text"}
    elif mode == "text":
        keep = _ALWAYS | {"text"} | mandatory
        kept = {k: v for k, v in resource.items() if k in keep}
    else:
        keep = _ALWAYS | summary | mandatory
        kept = {k: v for k, v in resource.items() if k in keep or _is_ext_of(k, keep)}
    return _tagged(resource, kept)


def select_elements(resource: dict[str, Any], elements: tuple[str, ...]) -> dict[str, Any]:
    """Apply ``_elements``: the named top-level elements, plus id, meta and mandatory ones."""
    rtype = str(resource.get("resourceType"))
    _, mandatory = _element_sets(rtype)
    wanted = {e.split(".")[-1] if e.startswith(rtype + ".") else e.split(".")[0] for e in elements}
    keep = _ALWAYS | mandatory | wanted
    kept = {k: v for k, v in resource.items() if k in keep or _is_ext_of(k, keep)}
    return _tagged(resource, kept)


def _is_ext_of(key: str, keep: frozenset[str] | set[str]) -> bool:
    """``_birthDate`` travels with ``birthDate``."""
    return key.startswith("_") and key[1:] in keep
