"""Locating the elements a FHIRPath Patch ``path`` names inside a resource's JSON.

https://hl7.org/fhir/R4/fhirpatch.html says each operation's ``path`` is a FHIRPath expression
(https://hl7.org/fhirpath/) that identifies elements to change. To change them we need their
place in the JSON tree, not copies of their values, so the path's spine is walked here over
the dict tree: ``Type``, ``.element`` (choice elements by their base name, e.g.
``Observation.value``), ``[n]``, ``first()``, ``last()``, ``tail()``, ``skip(n)``, ``take(n)``,
``single()``, ``ofType(T)`` and ``where(criteria)``. The criteria of ``where`` may be any FHIRPath
expression: they are evaluated on each candidate by ``fhirpathpy``. A path that does not parse,
or uses anything else, is a 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from antlr4 import CommonTokenStream, InputStream, Token  # type: ignore[import-untyped]
from antlr4.error.ErrorListener import ErrorListener  # type: ignore[import-untyped]
from antlr4.tree.Tree import ParseTreeWalker  # type: ignore[import-untyped]
from fhirpathpy import apply_parsed_path
from fhirpathpy.models import models
from fhirpathpy.parser.ASTPathListener import ASTPathListener
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser
from pydantic import BaseModel

from dhr.errors import FhirError, bad_request
from dhr.patch import schema

Ast = dict[str, Any]
_ABSTRACT = ("Resource", "DomainResource")
_KEYWORD_MEMBER = re.compile(r"\.\s*(div|mod)\b(?!\s*\()")


@dataclass
class Node:
    """An element found by a path: its value and where it sits in the JSON tree."""

    value: Any
    holder: dict[str, Any] | None  # the object with the element; None for the resource itself
    key: str | None  # JSON name in ``holder``
    index: int | None  # position in ``holder[key]`` when the element repeats
    model: type[BaseModel] | None  # the value's R4B model when it is complex


class _Raise(ErrorListener):  # type: ignore[misc]
    def syntaxError(  # noqa: N802 - antlr's name
        self, recognizer: Any, offending: Any, line: int, column: int, msg: str, e: Any
    ) -> None:
        raise ValueError(f"column {column + 1}: {msg}")


def _quote_keyword_names(path: str) -> str:
    """``text.div`` -> ``text.`div```: FHIR element names that are FHIRPath operators."""
    pieces = re.split(r"('(?:[^'\\]|\\.)*')", path)
    for i in range(0, len(pieces), 2):
        pieces[i] = _KEYWORD_MEMBER.sub(r".`\1`", pieces[i])
    return "".join(pieces)


def parse(path: str) -> Ast:
    """Parse a FHIRPath expression strictly (a syntax error is a 400)."""
    if not path.strip():
        raise bad_request("A FHIRPath Patch path must not be empty", "patch-invalid-path")
    try:
        lexer = FHIRPathLexer(InputStream(_quote_keyword_names(path)))
        lexer.removeErrorListeners()
        lexer.addErrorListener(_Raise())
        parser = FHIRPathParser(CommonTokenStream(lexer))
        parser.removeErrorListeners()
        parser.addErrorListener(_Raise())
        listener = ASTPathListener()  # type: ignore[no-untyped-call]
        ParseTreeWalker().walk(listener, parser.expression())
        if parser.getCurrentToken().type != Token.EOF:
            raise ValueError("unexpected text after the expression")
    except (ValueError, RecursionError, AttributeError, TypeError) as exc:
        raise bad_request(
            f"The FHIRPath {path[:120]!r} does not parse: {exc}", "patch-invalid-path"
        ) from None
    tree: Ast = listener.parentStack[0]
    if not tree.get("children"):
        raise bad_request(f"The FHIRPath {path[:120]!r} is empty", "patch-invalid-path")
    child: Ast = tree["children"][0]
    return child


def _unsupported(what: str) -> FhirError:
    return bad_request(
        f"FHIRPath Patch paths support element names, [n], first(), last(), tail(), skip(), "
        f"take(), single(), ofType() and where(); {what[:80]!r} is not supported",
        "patch-unsupported-path",
    )


def _identifier(ast: Ast) -> str:
    text: str = ast["children"][0]["text"] if ast.get("children") else ast.get("text", "")
    return text[1:-1] if text.startswith("`") and text.endswith("`") else text


def _model_of(value: Any, model: type[BaseModel] | None) -> type[BaseModel] | None:
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return schema.model_for(value["resourceType"])  # a contained or nested resource
    return model


def _members(nodes: list[Node], name: str) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        value = node.value
        if not isinstance(value, dict):
            continue
        keys = [name] if name in value else []
        if not keys:
            keys = [e.name for e in schema.choice_elements(node.model, name) if e.name in value]
        for key in keys:
            info = schema.element(node.model, key)
            model = info.model if info else None
            item = value[key]
            if isinstance(item, list):
                for i, each in enumerate(item):
                    out.append(Node(each, value, key, i, _model_of(each, model)))
            else:
                out.append(Node(item, value, key, None, _model_of(item, model)))
    return out


class Navigator:
    """Evaluates a path's spine against one resource."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.root = Node(resource, None, None, None, _model_of(resource, None))

    def find(self, path: str) -> list[Node]:
        return self.eval(parse(path), [self.root], first=True)

    def eval(self, ast: Ast, context: list[Node], first: bool = False) -> list[Node]:
        kind = ast.get("type")
        children: list[Ast] = ast.get("children", [])
        if kind == "TermExpression" and children:
            return self.eval(children[0], context, first)
        if kind == "InvocationTerm" and children:
            return self.invoke(children[0], context, first)
        if kind == "ParenthesizedTerm" and children:
            return self.eval(children[0], context, first)
        if kind == "InvocationExpression" and len(children) == 2:
            return self.invoke(children[1], self.eval(children[0], context, first))
        if kind == "IndexerExpression" and len(children) == 2:
            return self._at(self.eval(children[0], context, first), self._integer(children[1]))
        raise _unsupported(str(ast.get("text") or kind))

    def invoke(self, ast: Ast, context: list[Node], first: bool = False) -> list[Node]:
        kind = ast.get("type")
        if kind == "ThisInvocation":
            return context
        if kind == "MemberInvocation":
            name = _identifier(ast["children"][0])
            rtype = self.resource.get("resourceType")
            if first and (name == rtype or name in _ABSTRACT):
                return context
            return _members(context, name)
        if kind == "FunctionInvocation":
            return self._function(ast["children"][0], context)
        raise _unsupported(str(ast.get("text") or kind))

    def _function(self, functn: Ast, nodes: list[Node]) -> list[Node]:
        parts: list[Ast] = functn.get("children", [])
        name = _identifier(parts[0])
        params: list[Ast] = parts[1]["children"] if len(parts) > 1 else []
        if name in ("first", "last", "tail", "single") and params:
            raise _unsupported(f"{name}() with arguments")
        if name == "first":
            return nodes[:1]
        if name == "last":
            return nodes[-1:]
        if name == "tail":
            return nodes[1:]
        if name == "single":
            if len(nodes) > 1:
                raise bad_request("single() found several elements", "patch-not-single")
            return nodes
        if name in ("skip", "take", "where", "ofType") and len(params) != 1:
            raise _unsupported(f"{name}() needs one argument")
        if name == "skip":
            return nodes[max(self._integer(params[0]), 0) :]
        if name == "take":
            return nodes[: max(self._integer(params[0]), 0)]
        if name == "ofType":
            return [n for n in nodes if _is_type(n, _type_name(params[0]))]
        if name == "where":
            return [n for n in nodes if self._holds(params[0], n)]
        raise _unsupported(f"{name}()")

    def _holds(self, criteria: Ast, node: Node) -> bool:
        env = {"resource": self.resource, "rootResource": self.resource}
        try:
            result = apply_parsed_path(  # type: ignore[no-untyped-call]
                node.value, {"children": [criteria]}, env, models["r4"], None
            )
        except Exception as exc:  # any evaluator failure is the path's fault
            raise bad_request(
                f"The where() criteria could not be evaluated: {str(exc)[:200]}",
                "patch-invalid-path",
            ) from None
        return isinstance(result, list) and result == [True]

    @staticmethod
    def _integer(ast: Ast) -> int:
        text = str(ast.get("text", ""))
        if not text.lstrip("-").isdigit():
            raise _unsupported(f"index {text}")
        return int(text)

    @staticmethod
    def _at(nodes: list[Node], index: int) -> list[Node]:
        return [nodes[index]] if 0 <= index < len(nodes) else []


def _type_name(ast: Ast) -> str:
    text = str(ast.get("text", ""))
    return text.rsplit(".", 1)[-1].strip("`")


def _is_type(node: Node, type_name: str) -> bool:
    if node.model is not None and node.model.__name__ == type_name:
        return True
    if isinstance(node.value, dict) and node.value.get("resourceType") == type_name:
        return True
    suffix = type_name[:1].upper() + type_name[1:]
    return bool(node.key and node.key.endswith(suffix) and node.key != suffix)
