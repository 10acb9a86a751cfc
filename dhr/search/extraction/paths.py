"""A compiler from search parameter FHIRPath to fast evaluators over FHIR JSON.

https://hl7.org/fhir/R4/searchparameter.html (``SearchParameter.expression``) and
https://hl7.org/fhir/R4/fhirpath.html. The subset :mod:`.parse` reads is compiled here into
closures that walk the parsed JSON directly. Every value travels with its FHIR type name
(``Item = (value, type)``) taken from the R4B models (:mod:`.model`), so choice elements
(``Observation.value`` -> ``valueQuantity``...) and ``as``/``is``/``ofType`` work without
guessing, and extractors know a Coding from an Identifier. Expressions outside the subset are
compiled with ``fhirpathpy`` instead (:func:`compile_branch` says which it used).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fhirpathpy import compile as fp_compile
from fhirpathpy.models import models

from dhr.search.extraction import reference
from dhr.search.extraction.model import is_type, table
from dhr.search.extraction.parse import Node, UnsupportedPathError, parse

_log = logging.getLogger(__name__)
Item = tuple[Any, str | None]
Items = list[Item]
# (focus, root) -> result. ``root`` is the resource for %resource and resolve() of #contained.
Fn = Callable[[Items, Items], Items]

_TRUE: Items = [(True, "boolean")]
_FALSE: Items = [(False, "boolean")]


_SPECS: dict[tuple[str | None, str], tuple[tuple[str, str | None], ...]] = {}


def _type_of(value: Any, declared: str | None) -> str | None:
    if declared == "Resource" or (declared is None and isinstance(value, dict)):
        kind = value.get("resourceType") if isinstance(value, dict) else None
        return kind if isinstance(kind, str) else declared
    return declared


def _spec(kind: str | None, name: str) -> tuple[tuple[str, str | None], ...]:
    found = table(kind).get(name) if kind else None
    if found is None:
        found = ((name, None),)  # unknown to the model: read the JSON as it is
    _SPECS[kind, name] = found
    return found


def child(items: Items, name: str) -> Items:
    """``items.name``: a member of every item, choice elements under all their JSON names."""
    out: Items = []
    for value, declared in items:
        if value.__class__ is not dict:
            continue
        kind = declared if declared and declared != "Resource" else value.get("resourceType")
        spec = _SPECS.get((kind, name)) or _spec(kind, name)
        for key, ctype in spec:
            found = value.get(key)
            if found is None:
                continue
            if found.__class__ is list:
                out.extend([(v, ctype) for v in found if v is not None])
            else:
                out.append((found, ctype))
    return out


def _chain(names: tuple[str, ...]) -> Fn:
    """A run of member steps ``a.b.c`` from the focus, as one loop."""

    def run(f: Items, r: Items) -> Items:
        for name in names:
            if not f:
                return f
            f = child(f, name)
        return f

    return run


def _truth(items: Items) -> bool | None:
    if len(items) != 1:
        return None if not items else True
    value = items[0][0]
    return value if isinstance(value, bool) else True


def _resolve(items: Items, root: Items) -> Items:
    host = root[0][0] if root else None
    out: Items = []
    for value, _ in items:
        kind = reference.target_type(value, host)
        if kind is not None:
            out.append(({"resourceType": kind}, kind))
    return out


def _ext_url(item: Item, url: str) -> bool:
    return isinstance(item[0], dict) and item[0].get("url") == url


class _Compiler:
    def __init__(self, relative: bool) -> None:
        self.relative = relative

    def compile(self, node: Node, start: bool = True) -> Fn:
        kind = node[0]
        if kind in ("ident", "path"):
            return self._members(node, start)
        if kind == "index":
            base = self.compile(node[1], start)
            n: int = node[2]
            return lambda f, r: base(f, r)[n : n + 1]
        if kind == "lit":
            lit: Items = [(node[1], node[2])]
            return lambda f, r: lit
        if kind == "env":
            if node[1] in ("resource", "rootResource"):
                return lambda f, r: r
            if node[1] == "context":
                return lambda f, r: f
            raise UnsupportedPathError(f"%{node[1]}")
        if kind == "union":
            parts = [self.compile(p, start) for p in node[1]]
            return lambda f, r: [it for p in parts for it in p(f, r)]
        if kind in ("as", "is"):
            return self._typed(kind, self.compile(node[1], start), node[2])
        if kind in ("eq", "ne"):
            return self._compare(kind == "ne", self.compile(node[1]), self.compile(node[2]))
        if kind == "and":
            left, right = self.compile(node[1]), self.compile(node[2])
            return lambda f, r: _and(_truth(left(f, r)), _truth(right(f, r)))
        if kind == "call":
            return self._call(node)
        raise UnsupportedPathError(kind)

    def _members(self, node: Node, start: bool) -> Fn:
        names: list[str] = []
        while node[0] == "path":
            names.append(node[2])
            node = node[1]
        if node[0] == "ident":
            name: str = node[1]
            if self.relative or not start or not name[:1].isupper():
                names.append(name)
            # else: the branch's type name; plans only run branches of the resource's own type
            return _chain(tuple(reversed(names)))
        base = self.compile(node, start)
        rest = _chain(tuple(reversed(names)))
        return lambda f, r: rest(base(f, r), r)

    @staticmethod
    def _typed(op: str, base: Fn, wanted: str) -> Fn:
        if op == "as":
            return lambda f, r: [it for it in base(f, r) if is_type(_type_of(*it), wanted)]

        def check(f: Items, r: Items) -> Items:
            got = base(f, r)
            if len(got) != 1:
                return []
            return _TRUE if is_type(_type_of(*got[0]), wanted) else _FALSE

        return check

    @staticmethod
    def _compare(negate: bool, left: Fn, right: Fn) -> Fn:
        def compare(f: Items, r: Items) -> Items:
            a, b = left(f, r), right(f, r)
            if not a or not b:
                return []
            same = len(a) == len(b) and all(x[0] == y[0] for x, y in zip(a, b, strict=True))
            return _TRUE if same != negate else _FALSE

        return compare

    def _call(self, node: Node) -> Fn:
        name: str = node[2]
        args: tuple[Node, ...] = node[3]
        base: Fn = (lambda f, r: f) if node[1] is None else self.compile(node[1])
        if name in ("as", "ofType", "is"):
            return self._typed("is" if name == "is" else "as", base, args[0][1])
        if name == "first":
            return lambda f, r: base(f, r)[:1]
        if name == "last":
            return lambda f, r: base(f, r)[-1:]
        if name == "resolve":
            return lambda f, r: _resolve(base(f, r), r)
        if name in ("extension", "hasExtension"):
            if len(args) != 1 or args[0][0] != "lit":
                raise UnsupportedPathError(f"{name}() needs a literal url")
            url: str = args[0][1]
            if name == "extension":
                return lambda f, r: [e for e in child(base(f, r), "extension") if _ext_url(e, url)]
            return lambda f, r: _has_ext(base(f, r), url)
        inner = _Compiler(relative=True)
        crit = inner.compile(args[0]) if args else None
        if name == "where":
            if crit is None:
                raise UnsupportedPathError("where() needs criteria")
            cond = crit
            return lambda f, r: [it for it in base(f, r) if _truth(cond([it], r)) is True]
        if name in ("exists", "empty"):
            want = name == "exists"
            if crit is None:
                return lambda f, r: _TRUE if bool(base(f, r)) == want else _FALSE
            cond = crit
            return lambda f, r: (
                _TRUE if any(_truth(cond([it], r)) is True for it in base(f, r)) == want else _FALSE
            )
        if name == "not":
            return lambda f, r: _not(_truth(base(f, r)))
        raise UnsupportedPathError(f"{name}()")


def _and(a: bool | None, b: bool | None) -> Items:
    if a is False or b is False:
        return _FALSE
    return _TRUE if a is True and b is True else []


def _not(a: bool | None) -> Items:
    return [] if a is None else _FALSE if a else _TRUE


def _has_ext(items: Items, url: str) -> Items:
    if len(items) != 1:
        return []
    return _TRUE if any(_ext_url(e, url) for e in child(items, "extension")) else _FALSE


def compile_node(node: Node, relative: bool = False) -> Fn:
    """Compile a parsed expression (``relative``: it starts at the focus, not at a type name)."""
    return _Compiler(relative).compile(node)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list, str, int, float, bool)):
        return value
    return str(value)


def fallback(text: str) -> Fn:
    """Evaluate ``text`` with fhirpathpy (slow; for expressions outside the native subset)."""
    evaluate = fp_compile(text, models["r4"])

    def run(f: Items, r: Items) -> Items:
        out: Items = []
        for value, _ in f:
            try:
                found = evaluate(value, {"resource": r[0][0] if r else value})
            except Exception:  # an odd value must never fail a write
                _log.debug("fhirpathpy could not evaluate %s", text, exc_info=True)
                continue
            out.extend((_plain(v), None) for v in found if v is not None)
        return out

    return run


def compile_branch(text: str, relative: bool = False) -> tuple[Fn, bool]:
    """``(evaluator, native)`` for one expression; ``native`` is False for the fallback."""
    try:
        return compile_node(parse(text), relative), True
    except UnsupportedPathError:
        return fallback(text), False
