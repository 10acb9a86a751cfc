"""Element definitions FHIRPath Patch needs, read from the ``fhir.resources.R4B`` models.

https://hl7.org/fhir/R4/fhirpatch.html: ``add`` appends to an element when it repeats and sets
it otherwise, and choice elements (``value[x]``) are named by their type in JSON
(https://hl7.org/fhir/R4/json.html#choice). Both facts come from the element definitions, which
the R4B models carry as pydantic field annotations.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir.resources import R4B as r4b  # noqa: N811
from pydantic import BaseModel


@dataclass(frozen=True)
class Element:
    """One element of a complex type: its JSON name, cardinality and type."""

    name: str
    repeats: bool
    model: type[BaseModel] | None  # None for primitives and opaque types
    choice_of: str | None  # "value" for valueQuantity


def model_for(type_name: str) -> type[BaseModel] | None:
    """The R4B model of a resource or complex data type, None when unknown."""
    return _model_for(type_name)


@cache
def _model_for(type_name: str) -> type[BaseModel] | None:
    try:
        cls = r4b.get_fhir_model_class(type_name)
    except (KeyError, ValueError, AttributeError, ImportError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap(annotation: Any) -> tuple[bool, Any]:
    """``Optional[List[XType]]`` -> (True, XType)."""
    repeats = False
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if args else None
        elif origin is list:
            repeats = True
            annotation = typing.get_args(annotation)[0]
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return repeats, annotation


@cache
def elements(model: type[BaseModel]) -> dict[str, Element]:
    """The elements of a model by JSON name (extension fields ``_x`` left out)."""
    out: dict[str, Element] = {}
    for field_name, info in model.model_fields.items():
        if field_name.endswith("__ext"):
            continue
        name = info.alias or field_name
        repeats, inner = _unwrap(info.annotation)
        element_model = None
        type_name = getattr(inner, "__name__", "")
        if isinstance(inner, type) and type_name.endswith("Type") and type_name != "Type":
            element_model = model_for(type_name[: -len("Type")])
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        choice = extra.get("one_of_many")
        out[name] = Element(
            name, repeats, element_model, choice if isinstance(choice, str) else None
        )
    return out


def element(model: type[BaseModel] | None, name: str) -> Element | None:
    """The element ``name`` of ``model`` (None when unknown or when the model is unknown)."""
    if model is None:
        return None
    return elements(model).get(name)


def choice_elements(model: type[BaseModel] | None, base: str) -> list[Element]:
    """The typed forms of a choice element: ``value`` -> valueQuantity, valueString, ..."""
    if model is None:
        return []
    return [e for e in elements(model).values() if e.choice_of == base]
