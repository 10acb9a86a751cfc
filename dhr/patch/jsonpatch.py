"""JSON Patch (RFC 6902, https://www.rfc-editor.org/rfc/rfc6902) over JSON Pointers (RFC 6901).

Used by the FHIR patch interaction for ``application/json-patch+json`` bodies
(https://hl7.org/fhir/R4/http.html#patch). All six operations are supported: ``add``,
``remove``, ``replace``, ``move``, ``copy`` and ``test``. Operations apply in order to a deep copy
of the document; the first failure raises and the caller's document is left untouched.

Status rule (see :mod:`dhr.patch`): a malformed patch document (not an array of objects, a
missing ``op``/``path``/``from``/``value``, an unknown ``op``, a pointer that is not RFC 6901, an
array index that is not ``-`` or a decimal without leading zeros, moving a value into itself)
is a **400**; a well-formed patch that cannot apply to this document (a missing target or
parent, an index out of range, a failed ``test``) is a **422**. Unknown members of an operation
object are ignored (RFC 6902 section 4).
"""

from __future__ import annotations

import copy
from typing import Any

from dhr.errors import FhirError, bad_request, unprocessable

OPS = ("add", "remove", "replace", "move", "copy", "test")
_NEEDS_VALUE = frozenset({"add", "replace", "test"})
_NEEDS_FROM = frozenset({"move", "copy"})


def parse_pointer(pointer: object, what: str = "path") -> list[str]:
    """RFC 6901: ``"/a~1b/0"`` -> ``["a/b", "0"]``; ``""`` is the whole document."""
    if not isinstance(pointer, str):
        raise bad_request(f"JSON Patch {what} must be a string", "patch-invalid-pointer")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(
            f"JSON Patch {what} {pointer[:80]!r} must be empty or start with '/'",
            "patch-invalid-pointer",
        )
    tokens = []
    for raw in pointer[1:].split("/"):
        rest = raw.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise bad_request(
                f"JSON Patch {what} {pointer[:80]!r}: '~' must be followed by 0 or 1",
                "patch-invalid-pointer",
            )
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))
    return tokens


def _index(token: str, size: int, pointer: str, *, append: bool) -> int:
    """An array index token: ``-`` (only where appending) or a decimal, range-checked."""
    if token == "-" and append:  # noqa: S105 - RFC 6901's "past the end", not a secret
        return size
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise bad_request(
            f"JSON Patch pointer {pointer[:80]!r}: {token[:20]!r} is not an array index",
            "patch-invalid-index",
        )
    index = int(token)
    limit = size if append else size - 1
    if index > limit:
        raise unprocessable(
            f"JSON Patch pointer {pointer[:80]!r}: index {index} is out of range "
            f"(the array has {size} items)",
            "patch-index-out-of-range",
        )
    return index


def _parent(doc: Any, tokens: list[str], pointer: str) -> Any:
    """The container that holds the last token of ``tokens``; 422 if it is absent."""
    node = doc
    for depth, token in enumerate(tokens[:-1]):
        node = _child(node, token, pointer, tokens[: depth + 1])
    if not isinstance(node, dict | list):
        raise unprocessable(
            f"JSON Patch pointer {pointer[:80]!r}: the parent is not an object or array",
            "patch-no-parent",
        )
    return node


def _child(node: Any, token: str, pointer: str, walked: list[str]) -> Any:
    if isinstance(node, dict):
        if token in node:
            return node[token]
    elif isinstance(node, list):
        return node[_index(token, len(node), pointer, append=False)]
    where = "/" + "/".join(t.replace("~", "~0").replace("/", "~1") for t in walked)
    raise unprocessable(
        f"JSON Patch pointer {pointer[:80]!r}: nothing at {where[:80]!r}", "patch-no-target"
    )


def get(doc: Any, pointer: str) -> Any:
    """The value a pointer names (422 if absent)."""
    tokens = parse_pointer(pointer)
    node = doc
    for depth, token in enumerate(tokens):
        node = _child(node, token, pointer, tokens[: depth + 1])
    return node


def _add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    else:
        parent.insert(_index(tokens[-1], len(parent), pointer, append=True), value)
    return doc


def _remove(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    """Remove and return (document, removed value)."""
    if not tokens:
        raise unprocessable("JSON Patch cannot remove the whole document", "patch-remove-root")
    parent = _parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise unprocessable(
                f"JSON Patch pointer {pointer[:80]!r}: there is nothing to remove",
                "patch-no-target",
            )
        return doc, parent.pop(tokens[-1])
    return doc, parent.pop(_index(tokens[-1], len(parent), pointer, append=False))


def _replace(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise unprocessable(
                f"JSON Patch pointer {pointer[:80]!r}: there is nothing to replace",
                "patch-no-target",
            )
        parent[tokens[-1]] = value
    else:
        parent[_index(tokens[-1], len(parent), pointer, append=False)] = value
    return doc


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902 section 4.6): types must match, so ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _check_operation(number: int, op: object) -> dict[str, Any]:
    if not isinstance(op, dict):
        raise bad_request(
            f"JSON Patch operation {number} must be an object", "patch-invalid-operation"
        )
    name = op.get("op")
    if name not in OPS:
        shown = "missing" if name is None else repr(name)[:40]
        raise bad_request(
            f"JSON Patch operation {number}: op is {shown}; expected one of {', '.join(OPS)}",
            "patch-invalid-operation",
        )
    if "path" not in op:
        raise bad_request(
            f"JSON Patch operation {number} ({name}) has no path", "patch-invalid-operation"
        )
    if name in _NEEDS_VALUE and "value" not in op:
        raise bad_request(
            f"JSON Patch operation {number} ({name}) has no value", "patch-invalid-operation"
        )
    if name in _NEEDS_FROM and "from" not in op:
        raise bad_request(
            f"JSON Patch operation {number} ({name}) has no from", "patch-invalid-operation"
        )
    return op


def parse_patch(patch: object) -> list[dict[str, Any]]:
    """Check a parsed JSON Patch document's shape (400 when malformed)."""
    if not isinstance(patch, list):
        raise bad_request(
            "A JSON Patch document must be a JSON array of operations", "patch-not-an-array"
        )
    ops = [_check_operation(n, op) for n, op in enumerate(patch)]
    for n, op in enumerate(ops):
        parse_pointer(op["path"])
        if op["op"] in _NEEDS_FROM:
            source = parse_pointer(op["from"], "from")
            target = parse_pointer(op["path"])
            if op["op"] == "move" and len(source) < len(target) and target[: len(source)] == source:
                raise bad_request(
                    f"JSON Patch operation {n}: cannot move {op['from'][:80]!r} into itself",
                    "patch-move-into-itself",
                )
    return ops


def apply(doc: Any, patch: object) -> Any:
    """Apply a JSON Patch to a deep copy of ``doc`` and return the copy."""
    ops = parse_patch(patch)
    result = copy.deepcopy(doc)
    for number, op in enumerate(ops):
        try:
            result = _apply_one(result, op)
        except FhirError as exc:
            exc.diagnostics = f"JSON Patch operation {number} ({op['op']}): {exc.diagnostics}"
            raise
        except RecursionError:
            raise bad_request(
                f"JSON Patch operation {number} ({op['op']}): the value is nested too deeply",
                "json-too-deep",
            ) from None
    return result


def _apply_one(doc: Any, op: dict[str, Any]) -> Any:
    name: str = op["op"]
    path: str = op["path"]
    tokens = parse_pointer(path)
    if name == "add":
        return _add(doc, tokens, copy.deepcopy(op["value"]), path)
    if name == "remove":
        return _remove(doc, tokens, path)[0]
    if name == "replace":
        return _replace(doc, tokens, copy.deepcopy(op["value"]), path)
    if name == "test":
        actual = get(doc, path)
        if not json_equal(actual, op["value"]):
            raise unprocessable(
                f"test failed: the value at {path[:80]!r} is not the expected value",
                "patch-test-failed",
            )
        return doc
    source: str = op["from"]
    if name == "copy":
        return _add(doc, tokens, copy.deepcopy(get(doc, source)), path)
    if source == path:
        get(doc, source)  # the source must exist even when moving it onto itself
        return doc
    doc, value = _remove(doc, parse_pointer(source, "from"), source)
    return _add(doc, tokens, value, path)
