"""FHIR element types for path navigation (https://hl7.org/fhir/R4/datatypes.html).

FHIRPath over FHIR JSON (https://hl7.org/fhir/R4/fhirpath.html) needs to know, for each element
of a type, its JSON name(s) and its FHIR type: a choice element ``value[x]`` appears in JSON as
``valueQuantity``, ``valueString``... (https://hl7.org/fhir/R4/formats.html#choice). The tables
here are read once per type from the ``fhir.resources`` R4B models that also validate writes.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from dhr.fhir.types import resource_types

# One element: every JSON key it may appear under (several for a choice) with that key's type.
Spec = tuple[tuple[str, str | None], ...]
Table = dict[str, Spec]

_TABLES: dict[str, Table] = {}
_IS: dict[tuple[str, str], bool] = {}
_NONE = type(None)
_PLAIN: dict[type, str] = {bool: "boolean", str: "string", int: "integer", float: "decimal"}

# Types FHIRPath ``as``/``is``/``ofType`` also accept for a named type (profiles of Quantity).
SUBTYPES: dict[str, frozenset[str]] = {
    "quantity": frozenset(
        {"quantity", "age", "duration", "distance", "count", "simplequantity", "moneyquantity"}
    ),
    "datetime": frozenset({"datetime", "instant", "date"}),
    "string": frozenset({"string", "code", "id", "markdown", "uri", "url", "canonical", "oid"}),
    "uri": frozenset({"uri", "url", "canonical", "oid", "uuid"}),
    "integer": frozenset({"integer", "positiveint", "unsignedint"}),
}


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def type_name(annotation: Any) -> str | None:
    """The FHIR type name behind an R4B field annotation (``abc.QuantityType`` -> Quantity)."""
    ann = annotation
    for _ in range(6):
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            meta = [m for m in getattr(ann, "__metadata__", ()) if not isinstance(m, type)]
            if meta:
                return _lower_first(type(meta[-1]).__name__)
            ann = typing.get_args(ann)[0]
        elif origin in (typing.Union, types.UnionType, list, typing.List):  # noqa: UP006
            args = [a for a in typing.get_args(ann) if a is not _NONE]
            if not args:
                return None
            ann = args[0]
        else:
            break
    if isinstance(ann, type):
        if ann in _PLAIN:
            return _PLAIN[ann]
        name = ann.__name__
        return name[:-4] if name.endswith("Type") else name
    return None


def _build(fhir_type: str) -> Table:
    try:
        cls = get_fhir_model_class(fhir_type)
    except (KeyError, ValueError, AttributeError, ImportError):
        return {}
    gathered: dict[str, list[tuple[str, str | None]]] = {}
    for name, field in cls.model_fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        key = field.alias or name
        base = extra.get("one_of_many")
        gathered.setdefault(base if isinstance(base, str) else key, []).append(
            (key, type_name(field.annotation))
        )
    return {k: tuple(v) for k, v in gathered.items()}


def table(fhir_type: str) -> Table:
    """The elements of ``fhir_type`` by FHIRPath name (empty for primitives and unknown names)."""
    found = _TABLES.get(fhir_type)
    if found is None:
        found = _TABLES[fhir_type] = _build(fhir_type)
    return found


def is_type(actual: str | None, wanted: str) -> bool:
    """FHIRPath ``is``: ``actual`` (a FHIR type name) is ``wanted`` or one of its profiles."""
    if actual is None:
        return False
    key = (actual, wanted)
    found = _IS.get(key)
    if found is None:
        found = _IS[key] = _is_type(actual, wanted)
    return found


def _is_type(actual: str, wanted: str) -> bool:
    want = wanted.rsplit(".", 1)[-1].lower()
    have = actual.lower()
    if have == want:
        return True
    if want in ("resource", "domainresource"):
        return actual in resource_types()
    sub = SUBTYPES.get(want)
    return sub is not None and have in sub
