"""FHIRPath Patch: a ``Parameters`` resource of ``operation`` parameters.

https://hl7.org/fhir/R4/fhirpatch.html. Each operation has parts ``type`` (add, insert, delete,
replace, move), ``path`` (FHIRPath, see :mod:`dhr.patch.fhirpath_nav`) and, as its type needs,
``name``, ``value`` (a ``value[x]``, a ``resource``, or nested ``part``s for an anonymous type such
as ``Patient.contact``), ``index``, ``source`` and ``destination``. Operations apply in order to
a deep copy of the resource.

Semantics, per the spec's table: ``add`` needs the path to find exactly one element and appends
to the named child when it repeats, or sets it when it does not and is absent; ``insert`` and
``move`` work on the list the path names, with 0-based indexes; ``delete`` removes the one
element found and does nothing when none is found; ``replace`` needs exactly one element.
Primitive extensions (``_name``) follow their values. Status rule (see :mod:`dhr.patch`): a
malformed Parameters is a 400; an operation that cannot apply to this resource is a 422.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from dhr.errors import FhirError, bad_request, unprocessable
from dhr.patch import schema
from dhr.patch.fhirpath_nav import Navigator, Node, parse

TYPES = ("add", "insert", "delete", "replace", "move")
_NEEDS = {
    "add": ("path", "name", "value"),
    "insert": ("path", "index", "value"),
    "delete": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "source", "destination"),
}
_KNOWN_PARTS = frozenset({"type", "path", "name", "value", "index", "source", "destination"})


@dataclass(frozen=True)
class Anonymous:
    """A value given as nested parts: (name, type suffix of its value[x] or None, value)."""

    items: tuple[tuple[str, str | None, Any], ...]


@dataclass(frozen=True)
class Operation:
    number: int
    type: str
    path: str
    name: str | None = None
    value: Any = None
    value_type: str | None = None  # "Identifier" for valueIdentifier
    index: int | None = None
    source: int | None = None
    destination: int | None = None


def _part_value(part: dict[str, Any], where: str) -> tuple[str | None, Any]:
    """A part's value: (type suffix, JSON value) from value[x], resource or nested parts."""
    typed = [k for k in part if k.startswith("value") and len(k) > 5 and k[5].isupper()]
    if "resource" in part:
        typed.append("resource")
    if len(typed) > 1:
        raise bad_request(f"{where} has several values", "patch-invalid-parameters")
    nested = part.get("part")
    if typed and nested:
        raise bad_request(f"{where} has both a value and parts", "patch-invalid-parameters")
    if typed:
        key = typed[0]
        return (None if key == "resource" else key[5:]), part[key]
    if isinstance(nested, list) and nested:
        items: list[tuple[str, str | None, Any]] = []
        for i, sub in enumerate(nested):
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise bad_request(f"{where}.part[{i}] has no name", "patch-invalid-parameters")
            suffix, value = _part_value(sub, f"{where}.part[{i}]")
            items.append((sub["name"], suffix, value))
        return None, Anonymous(tuple(items))
    raise bad_request(f"{where} has no value", "patch-invalid-parameters")


def _integer(part: dict[str, Any], where: str) -> int:
    value = part.get("valueInteger")
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f"{where} must be a valueInteger", "patch-invalid-parameters")
    return value


def _string(part: dict[str, Any], where: str) -> str:
    for key in ("valueString", "valueCode", "valueUri"):
        if isinstance(part.get(key), str):
            text: str = part[key]
            return text
    raise bad_request(f"{where} must be a valueString", "patch-invalid-parameters")


def parse_operations(parameters: dict[str, Any]) -> list[Operation]:
    """Read and check the operations of a FHIRPath Patch ``Parameters`` (400 when malformed)."""
    if parameters.get("resourceType") != "Parameters":
        raise bad_request("A FHIRPath Patch body must be a Parameters resource", "patch-not-params")
    raw = parameters.get("parameter", [])
    if not isinstance(raw, list):
        raise bad_request("Parameters.parameter must be a list", "patch-invalid-parameters")
    operations = []
    for number, param in enumerate(raw):
        try:
            operations.append(_operation(number, param))
        except FhirError as exc:
            exc.expression = exc.expression or (f"Parameters.parameter[{number}]",)
            raise
    return operations


def _operation(number: int, param: Any) -> Operation:
    where = f"Parameters.parameter[{number}]"
    if not isinstance(param, dict) or param.get("name") != "operation":
        raise bad_request(f"{where} must be named 'operation'", "patch-invalid-parameters", where)
    parts = param.get("part")
    if not isinstance(parts, list):
        raise bad_request(f"{where} has no parts", "patch-invalid-parameters", where)
    found: dict[str, dict[str, Any]] = {}
    for i, part in enumerate(parts):
        name = part.get("name") if isinstance(part, dict) else None
        if name not in _KNOWN_PARTS or name in found:
            what = "repeats" if name in found else "is not a FHIRPath Patch part"
            raise bad_request(
                f"{where}.part[{i}] ({str(name)[:40]}) {what}", "patch-invalid-parameters", where
            )
        found[str(name)] = part
    op_type = _string(found["type"], f"{where} type") if "type" in found else None
    if op_type not in TYPES:
        raise bad_request(
            f"{where}: type must be one of {', '.join(TYPES)}", "patch-invalid-parameters", where
        )
    missing = [p for p in _NEEDS[op_type] if p not in found]
    if missing:
        raise bad_request(
            f"{where} ({op_type}) lacks {', '.join(missing)}", "patch-invalid-parameters", where
        )
    path = _string(found["path"], f"{where} path")
    parse(path)  # a path that does not parse is a malformed patch
    value_type, value = None, None
    if "value" in found:
        value_type, value = _part_value(found["value"], f"{where} value")
    ints = {
        k: _integer(found[k], f"{where} {k}")
        for k in ("index", "source", "destination")
        if k in found
    }
    return Operation(
        number,
        op_type,
        path,
        _string(found["name"], f"{where} name") if "name" in found else None,
        value,
        value_type,
        ints.get("index"),
        ints.get("source"),
        ints.get("destination"),
    )


def apply(resource: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """Apply a FHIRPath Patch to a deep copy of ``resource`` and return the copy."""
    try:
        return _apply_all(resource, parse_operations(parameters))
    except RecursionError:
        raise bad_request("The FHIRPath Patch is nested too deeply", "json-too-deep") from None


def _apply_all(resource: dict[str, Any], operations: list[Operation]) -> dict[str, Any]:
    result = copy.deepcopy(resource)
    for op in operations:
        try:
            _apply_one(Navigator(result), op)
        except FhirError as exc:
            exc.diagnostics = f"FHIRPath Patch operation {op.number} ({op.type}): {exc.diagnostics}"
            if not exc.expression:
                exc.expression = (f"Parameters.parameter[{op.number}]",)
            raise
    _prune(result)
    return result


def _prune(value: Any) -> bool:
    """Drop the empty objects and arrays deletes leave (FHIR JSON has none); True if empty."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if _prune(v)]:
            del value[key]
        return not value
    if isinstance(value, list):
        for item in value:
            _prune(item)
        return not value
    return value is None


def _apply_one(nav: Navigator, op: Operation) -> None:
    if op.type in ("insert", "move"):
        _list_operation(nav, op)
        return
    nodes = nav.find(op.path)
    if op.type == "delete" and not nodes:
        return
    if len(nodes) != 1:
        found = "no element" if not nodes else f"{len(nodes)} elements"
        raise unprocessable(
            f"the path {op.path[:120]!r} found {found}; it must find exactly one",
            "patch-path-not-single",
        )
    node = nodes[0]
    if op.type == "add":
        _add(node, op)
    elif node.holder is None or node.key is None:
        raise unprocessable(f"cannot {op.type} the resource itself", "patch-whole-resource")
    elif op.type == "delete":
        _delete(node.holder, node.key, node.index)
    else:
        holder_model = _holder_model(nav, node)
        key = node.key
        info = schema.element(holder_model, key)
        if info is not None and info.choice_of and op.value_type and node.index is None:
            # a choice element may change type: valueQuantity -> valueString
            key = _json_name(holder_model, info.choice_of, op.value_type)
            info = schema.element(holder_model, key)
            if key != node.key:
                _delete(node.holder, node.key, None)
        value = _materialise(op.value, info.model if info else None)
        if node.index is None:
            node.holder[key] = value
        else:
            node.holder[key][node.index] = value


def _holder_model(nav: Navigator, node: Node) -> type[BaseModel] | None:
    """The model of the object holding ``node`` (found again by identity)."""
    stack = [nav.root]
    while stack:
        here = stack.pop()
        if here.value is node.holder:
            return here.model
        stack.extend(_children(here))
    return None


def _children(node: Node) -> list[Node]:
    if not isinstance(node.value, dict):
        return []
    out = []
    for key, value in node.value.items():
        info = schema.element(node.model, key)
        model = info.model if info else None
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                rtype = item.get("resourceType")
                sub = schema.model_for(rtype) if isinstance(rtype, str) else model
                out.append(Node(item, node.value, key, None, sub))
    return out


def _json_name(model: type[BaseModel] | None, name: str, value_type: str | None) -> str:
    """``deceased`` given a valueBoolean -> ``deceasedBoolean`` (choice elements)."""
    if schema.element(model, name) is None and value_type:
        typed = name + value_type[:1].upper() + value_type[1:]
        if any(e.name == typed for e in schema.choice_elements(model, name)):
            return typed
    return name


def _add(node: Node, op: Operation) -> None:
    if not isinstance(node.value, dict):
        raise unprocessable(
            f"the path {op.path[:120]!r} names a primitive; add needs an element with children",
            "patch-add-to-primitive",
        )
    assert op.name is not None
    key = _json_name(node.model, op.name, op.value_type)
    info = schema.element(node.model, key)
    value = _materialise(op.value, info.model if info else None)
    target = node.value
    if info is not None and info.repeats:
        existing = target.setdefault(key, [])
        if not isinstance(existing, list):
            raise unprocessable(f"{key} is not a list", "patch-not-a-list")
        existing.append(value)
        ext = target.get("_" + key)
        if isinstance(ext, list):
            ext.append(None)
    elif key in target:
        raise unprocessable(
            f"{key} already has a value and does not repeat; use replace", "patch-add-existing"
        )
    else:
        target[key] = value


def _delete(holder: dict[str, Any], key: str, index: int | None) -> None:
    for name in (key, "_" + key):
        if name not in holder:
            continue
        if index is None:
            del holder[name]
        elif isinstance(holder[name], list) and index < len(holder[name]):
            del holder[name][index]
            if not holder[name] or all(v is None for v in holder[name]):
                del holder[name]


def _list_operation(nav: Navigator, op: Operation) -> None:
    """insert and move: the path names a list; its parent must be one element."""
    ast = parse(op.path)
    last = ast.get("children", [{}])[-1]
    if ast.get("type") != "InvocationExpression" or last.get("type") != "MemberInvocation":
        raise unprocessable(
            f"{op.type} needs the path of a list (ending with an element name), "
            f"not {op.path[:120]!r}",
            "patch-not-a-list",
        )
    parents = nav.eval(ast["children"][0], [nav.root], first=True)
    if len(parents) != 1 or not isinstance(parents[0].value, dict):
        raise unprocessable(
            f"the path {op.path[:120]!r} must lie in exactly one element", "patch-path-not-single"
        )
    parent = parents[0]
    name = str(last["children"][0]["text"]).strip("`")
    info = schema.element(parent.model, name)
    if info is not None and not info.repeats:
        raise unprocessable(f"{name} does not repeat, so it is not a list", "patch-not-a-list")
    items = parent.value.get(name, [])
    if not isinstance(items, list):
        raise unprocessable(f"{name} is not a list", "patch-not-a-list")
    size = len(items)
    ext = parent.value.get("_" + name)
    lists = [items] + ([ext] if isinstance(ext, list) and len(ext) == size else [])
    if op.type == "insert":
        assert op.index is not None
        if not 0 <= op.index <= size:
            raise unprocessable(
                f"index {op.index} is out of range (the list has {size} items)",
                "patch-index-out-of-range",
            )
        items.insert(op.index, _materialise(op.value, info.model if info else None))
        if len(lists) > 1:
            lists[1].insert(op.index, None)
        parent.value[name] = items
        return
    assert op.source is not None
    assert op.destination is not None
    for what, at in (("source", op.source), ("destination", op.destination)):
        if not 0 <= at < size:
            raise unprocessable(
                f"{what} {at} is out of range (the list has {size} items)",
                "patch-index-out-of-range",
            )
    for each in lists:
        each.insert(op.destination, each.pop(op.source))


def _materialise(value: Any, model: type[BaseModel] | None) -> Any:
    """The JSON of an operation's value; nested parts become an object shaped by ``model``."""
    if not isinstance(value, Anonymous):
        return copy.deepcopy(value)
    out: dict[str, Any] = {}
    for name, suffix, item in value.items:
        key = _json_name(model, name, suffix)
        info = schema.element(model, key)
        json_value = _materialise(item, info.model if info else None)
        if key in out:
            if not isinstance(out[key], list) or (info is not None and not info.repeats):
                out[key] = [out[key]]
            out[key].append(json_value)
        elif info is not None and info.repeats:
            out[key] = [json_value]
        else:
            out[key] = json_value
    return out
