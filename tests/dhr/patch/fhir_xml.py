"""A small FHIR XML -> JSON converter for the official patch test cases.

https://hl7.org/fhir/R4/xml.html and https://hl7.org/fhir/R4/json.html: repeating elements
become arrays, primitives' ``value`` attributes become JSON strings, numbers or booleans, their
``id``/``extension`` go to ``_name``, and ``div`` stays XHTML text. Cardinality and primitive
types come from the R4B models (through :mod:`dhr.patch.schema`). Enough for test data only.
"""

from __future__ import annotations

import typing
import xml.etree.ElementTree as ET
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from dhr.patch import schema

FHIR = "{http://hl7.org/fhir}"
XHTML = "http://www.w3.org/1999/xhtml"


class UnsupportedXmlError(Exception):
    """The XML uses something this converter does not handle."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _primitive_kind(model: type[BaseModel], name: str) -> type:
    info = next((f for k, f in model.model_fields.items() if (f.alias or k) == name), None)
    if info is None:
        raise UnsupportedXmlError(f"{model.__name__} has no element {name}")
    annotation: Any = info.annotation
    for _ in range(6):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if not args:
            break
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, bool):
        return bool
    if isinstance(annotation, type) and issubclass(annotation, int):
        return int
    if isinstance(annotation, type) and issubclass(annotation, float | Decimal):
        return float
    return str


def _primitive(kind: type, text: str) -> Any:
    if kind is bool:
        return text == "true"
    if kind is int:
        return int(text)
    if kind is float:
        number = Decimal(text)
        return (
            int(number)
            if number == number.to_integral_value() and "." not in text
            else float(number)
        )
    return text


def resource(elem: ET.Element) -> dict[str, Any]:
    """A FHIR resource element as FHIR JSON."""
    rtype = _local(elem.tag)
    model = schema.model_for(rtype)
    if model is None:
        raise UnsupportedXmlError(f"unknown resource type {rtype}")
    out: dict[str, Any] = {"resourceType": rtype}
    out.update(_children(elem, model))
    return out


def _children(elem: ET.Element, model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr in ("id", "url"):
        if attr in elem.attrib:
            out[attr] = elem.attrib[attr]
    for child in elem:
        if not isinstance(child.tag, str):
            continue  # a comment
        name = _local(child.tag)
        if name == "div" and child.tag.startswith("{" + XHTML):
            ET.register_namespace("", XHTML)
            out["div"] = ET.tostring(child, encoding="unicode").strip()
            continue
        info = schema.element(model, name)
        if info is None:
            raise UnsupportedXmlError(f"{model.__name__} has no element {name}")
        _put(out, info, name, _value(child, model, info), info.repeats)
    return out


def _put(out: dict[str, Any], info: schema.Element, name: str, value: Any, repeats: bool) -> None:
    main, ext = value
    if repeats:
        out.setdefault(name, []).append(main)
        if ext is not None or "_" + name in out:
            exts = out.setdefault("_" + name, [None] * (len(out[name]) - 1))
            exts.append(ext)
    else:
        if main is not None:
            out[name] = main
        if ext is not None:
            out["_" + name] = ext


def _value(child: ET.Element, model: type[BaseModel], info: schema.Element) -> tuple[Any, Any]:
    if info.model is not None and info.model.__name__ in ("Resource", "DomainResource"):
        inner = [c for c in child if isinstance(c.tag, str)]
        if len(inner) != 1:
            raise UnsupportedXmlError("a resource element must hold one resource")
        return resource(inner[0]), None
    if info.model is not None:
        return _children(child, info.model), None
    main = None
    if "value" in child.attrib:
        main = _primitive(_primitive_kind(model, info.name), child.attrib["value"])
    ext: dict[str, Any] | None = None
    extensions = [c for c in child if isinstance(c.tag, str)]
    if extensions or "id" in child.attrib:
        ext_model = schema.model_for("Element")
        assert ext_model is not None
        ext = _children(child, ext_model)
    return main, ext
