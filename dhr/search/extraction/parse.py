"""A parser for the FHIRPath subset search parameter expressions use (https://hl7.org/fhirpath/).

Search parameter expressions (https://hl7.org/fhir/R4/searchparameter.html, element
``SearchParameter.expression``) use a small part of FHIRPath: member paths, indexers, unions,
``as``/``is`` type operators, ``=``/``!=``/``and``, and a few functions (``where``, ``as``,
``ofType``, ``extension``, ``hasExtension``, ``exists``, ``empty``, ``not``, ``first``, ``last``,
``resolve``). This module turns such text into a small tuple AST; anything else raises
:class:`UnsupportedPathError` so the caller can fall back to a complete FHIRPath engine.
"""

from __future__ import annotations

import re
from typing import Any

Node = tuple[Any, ...]

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|(?P<id>`[^`]+`|[A-Za-z_][\w]*)"
    r"|(?P<op>!=|[.()\[\]|=%,]))"
)
_ESCAPES = {"\\'": "'", '\\"': '"', "\\\\": "\\", "\\n": "\n", "\\t": "\t", "\\r": "\r"}
FUNCTIONS = frozenset(
    {
        "where",
        "as",
        "is",
        "ofType",
        "extension",
        "hasExtension",
        "exists",
        "empty",
        "not",
        "first",
        "last",
        "resolve",
    }
)


class UnsupportedPathError(ValueError):
    """The expression uses FHIRPath beyond the natively compiled subset (or is malformed)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise UnsupportedPathError(f"cannot read {text[pos : pos + 20]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\.", lambda m: _ESCAPES.get(m.group(0), m.group(0)[1:]), body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, value: str | None = None) -> bool:
        if self.i >= len(self.toks):
            return False
        return value is None or self.toks[self.i][1] == value

    def take(self, value: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks) or (value is not None and self.toks[self.i][1] != value):
            got = self.toks[self.i][1] if self.i < len(self.toks) else "end"
            raise UnsupportedPathError(f"expected {value or 'a token'}, got {got!r}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def union(self) -> Node:
        parts = [self.conj()]
        while self.peek("|"):
            self.take("|")
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else ("union", tuple(parts))

    def conj(self) -> Node:
        left = self.compare()
        while self.peek("and"):
            self.take()
            left = ("and", left, self.compare())
        return left

    def compare(self) -> Node:
        left = self.typed()
        if self.peek("=") or self.peek("!="):
            op = self.take()[1]
            return ("eq" if op == "=" else "ne", left, self.typed())
        return left

    def typed(self) -> Node:
        node = self.postfix()
        while self.peek("as") or self.peek("is"):
            op = self.take()[1]
            node = (op, node, self.type_name())
        return node

    def type_name(self) -> str:
        name = self.take()[1]
        while self.peek("."):
            self.take(".")
            name = self.take()[1]  # FHIR.Quantity / System.String -> the last part
        return name.strip("`")

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.take(".")
                kind, name = self.take()
                if kind != "id":
                    raise UnsupportedPathError(f"member name expected, got {name!r}")
                node = self.member(node, name.strip("`"))
            elif self.peek("["):
                self.take("[")
                kind, num = self.take()
                self.take("]")
                if kind != "num" or not num.isdigit():
                    raise UnsupportedPathError("only constant indexers are supported")
                node = ("index", node, int(num))
            else:
                return node

    def member(self, base: Node | None, name: str) -> Node:
        if not self.peek("("):
            return ("path", base, name) if base is not None else ("ident", name)
        self.take("(")
        if name not in FUNCTIONS:
            raise UnsupportedPathError(f"function {name}() is not compiled natively")
        args: list[Node] = []
        if name in ("as", "is", "ofType"):
            args.append(("type", self.type_name()))
        elif not self.peek(")"):
            args.append(self.union())
            while self.peek(","):
                self.take(",")
                args.append(self.union())
        self.take(")")
        return ("call", base, name, tuple(args))

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "str":
            return ("lit", _unquote(value), "string")
        if kind == "num":
            return ("lit", float(value) if "." in value else int(value), "decimal")
        if value == "(":
            node = self.union()
            self.take(")")
            return node
        if value == "%":
            return ("env", self.take()[1])
        if kind == "id" and value in ("true", "false"):
            return ("lit", value == "true", "boolean")
        if kind == "id":
            return self.member(None, value.strip("`"))
        raise UnsupportedPathError(f"unexpected {value!r}")


def parse(text: str) -> Node:
    """The AST of ``text``; raises :class:`UnsupportedPathError` outside the compiled subset."""
    parser = _Parser(text)
    node = parser.union()
    if parser.i != len(parser.toks):
        raise UnsupportedPathError(f"unexpected {parser.toks[parser.i][1]!r}")
    return node


def branches(node: Node) -> tuple[Node, ...]:
    """The operands of a top-level union (or the node itself)."""
    return node[1] if node[0] == "union" else (node,)


def leading_name(node: Node) -> str | None:
    """The identifier an expression starts from (``Observation`` in ``Observation.code``)."""
    while True:
        kind = node[0]
        if kind == "ident":
            return str(node[1])
        if kind in ("path", "index", "as", "is", "and", "eq", "ne"):
            node = node[1]
        elif kind == "call":
            if node[1] is None:
                return None
            node = node[1]
        elif kind == "union":
            node = node[1][0]
        else:
            return None


_FILTERS = frozenset({"where", "as", "ofType", "first", "last", "resolve", "extension"})


def first_member(node: Node) -> str | None:
    """The element a pure navigation branch first reads (``code`` in ``Observation.code.x``).

    None when the branch can yield something even without that element (``exists()``,
    comparisons, ``and``...): such branches must always run.
    """
    found = first_read(node)
    return found[0] if found is not None else None


def first_read(node: Node, relative: bool = False) -> tuple[str, str | None] | None:
    """The element a pure navigation branch first reads, and the type an ``as`` or
    ``ofType()`` applied right to it keeps (``("value", "dateTime")`` for
    ``(Observation.value as dateTime).x``; None for the type when nothing narrows it).

    ``relative``: the branch starts at the focus (``value.as(DateTime)``, a composite's
    component), not at a type name. None as in :func:`first_member`.
    """
    wanted: str | None = None  # set by the node just above, when it narrows its base's type
    while True:
        kind = node[0]
        if relative and kind == "ident":
            return str(node[1]), wanted
        if kind in ("path", "index", "as") or (kind == "call" and node[2] in _FILTERS):
            base = node[1]
            if base is None:
                return None
            if not relative and base[0] == "ident" and base[1][:1].isupper():
                if kind == "path":
                    return str(node[2]), wanted
                return ("extension", None) if kind == "call" and node[2] == "extension" else None
            wanted = _narrows(node)
            node = base
        else:
            return None


def _narrows(node: Node) -> str | None:
    """The type ``node`` keeps of its base's items (``as``, ``.as()``, ``.ofType()``)."""
    if node[0] == "as":
        return str(node[2])
    if node[0] == "call" and node[2] in ("as", "ofType") and node[3]:
        return str(node[3][0][1])
    return None
