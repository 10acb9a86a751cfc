"""Reference resolution inside a transaction. https://hl7.org/fhir/R4/http.html#trules

A transaction maps each entry's ``fullUrl`` (``urn:uuid:``, ``urn:oid:`` or an absolute URL) to
the ``Type/id`` the server gives it, then rewrites every ``Reference.reference`` in every entry's
resource (however deeply nested, ``contained`` included, ``#local`` references left alone) and
every request URL that uses one. Conditional references (``Patient?identifier=sys|val``) resolve
to their one match (https://hl7.org/fhir/R4/http.html#trules, "conditional references").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dhr.context import RequestContext
from dhr.errors import FhirError, bad_request, precondition_failed
from dhr.fhir.types import check_type
from dhr.interactions.criteria import match_one, parse_criteria_string

URN_PREFIXES = ("urn:uuid:", "urn:oid:")
_URN_IN_TEXT = re.compile(r"urn:(?:uuid|oid):[A-Za-z0-9.\-]+")
_CONDITIONAL = re.compile(r"^([A-Z][A-Za-z]{1,63})\?(.+)$", re.DOTALL)


def is_placeholder(url: str) -> bool:
    return url.startswith(URN_PREFIXES)


def needs_resolution(value: str) -> bool:
    """Whether :meth:`ReferenceResolver.reference` may change ``value`` even when no entry
    has a fullUrl: a ``urn:`` placeholder or a conditional reference ``Type?query``."""
    return is_placeholder(value) or _CONDITIONAL.match(value) is not None


class ReferenceResolver:
    """The ``fullUrl`` map of one transaction, plus cached conditional-reference matches."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx
        self.targets: dict[str, str] = {}  # fullUrl (and relative alias) -> "Type/id"
        self._conditional: dict[str, str] = {}
        # Called before a conditional reference searches: pending writes must be visible.
        self.before_lookup: Callable[[], None] = lambda: None

    def add(self, full_url: str, res_type: str, res_id: str) -> None:
        target = f"{res_type}/{res_id}"
        self.targets[full_url] = target
        base = self.ctx.base + "/"
        if full_url.startswith(base):
            alias = full_url[len(base) :]
            if alias != target:
                self.targets[alias] = target

    def reference(self, value: str) -> str:
        """The rewritten form of one reference value (unchanged when it needs no rewriting)."""
        if not value or value.startswith("#"):
            return value
        mapped = self.targets.get(value)
        if mapped is not None:
            return mapped
        if is_placeholder(value):
            raise bad_request(
                f"Reference {value[:100]!r} names no fullUrl of an entry in this transaction",
                "bundle-unresolved-reference",
            )
        match = _CONDITIONAL.match(value)
        if match is not None:
            return self._resolve_conditional(value, match.group(1), match.group(2))
        return value

    def url(self, url: str) -> str:
        """A request URL with placeholders replaced (``urn:uuid:x`` or ``Obs?subject=urn:..``)."""
        mapped = self.targets.get(url)
        if mapped is not None:
            return mapped
        if "urn:" not in url:
            return url

        def swap(found: re.Match[str]) -> str:
            target = self.targets.get(found.group(0))
            if target is None:
                raise bad_request(
                    f"Request URL {url[:100]!r} uses {found.group(0)!r}, which names no "
                    "fullUrl of an entry in this transaction",
                    "bundle-unresolved-reference",
                )
            return target

        return _URN_IN_TEXT.sub(swap, url)

    def _resolve_conditional(self, value: str, res_type: str, query: str) -> str:
        cached = self._conditional.get(value)
        if cached is not None:
            return cached
        try:
            check_type(res_type)
        except FhirError as exc:
            raise bad_request(
                f"Conditional reference {value[:100]!r}: {exc.diagnostics}", "bad-reference"
            ) from None
        what = f"Conditional reference {value[:100]!r}"
        self.before_lookup()
        found = match_one(self.ctx, res_type, parse_criteria_string(query), what)
        if found is None:
            raise precondition_failed(f"{what} matches no {res_type}", "reference-no-match")
        target = f"{res_type}/{found}"
        self._conditional[value] = target
        return target

    def rewrite(self, resource: dict[str, Any], final: bool = False) -> dict[str, Any]:
        """``resource`` with every ``reference`` rewritten (a new top-level dict; input untouched;
        containers without a rewritten reference are shared with the input). ``final``: the
        caller knows no reference needs resolution (see :func:`needs_resolution`), so when no
        entry has a fullUrl nothing can change and the walk is skipped."""
        if final and not self.targets:
            return dict(resource)
        return walk_references(resource, self.reference)


# A container met during the walk: (the container, (its parent's entry, its key)) or None at root.
_Entry = tuple[Any, "tuple[_Entry, Any] | None"]


# A reference found in a resource: the container holding it (as a walk met it) and its value.
Found = tuple[_Entry, str]


def walk_references(resource: dict[str, Any], fix: Callable[[str], str]) -> dict[str, Any]:
    """``resource`` with references passed through ``fix``, without recursion (no depth limit).

    Copy on write: only the containers on the way to a changed reference are copied (as plain
    dicts and lists); the rest is shared with ``resource``, which is never modified.
    """
    return rewrite_found(resource, find_references(resource), fix)


def find_references(resource: dict[str, Any]) -> list[Found]:
    """Every ``reference`` string in ``resource``, in the order :func:`walk_references` passes
    them to its ``fix`` (a caller that walks a resource twice can find them once)."""
    found: list[Found] = []
    stack: list[_Entry] = [(resource, None)]
    push, pop = stack.append, stack.pop
    while stack:
        entry = pop()
        node = entry[0]
        if isinstance(node, dict):
            for key, value in node.items():
                kind = value.__class__
                if kind is str:
                    if key == "reference":
                        found.append((entry, value))
                elif kind is dict or kind is list or isinstance(value, dict | list):
                    push((value, (entry, key)))
        else:
            for i, value in enumerate(node):
                kind = value.__class__
                if kind is dict or kind is list or isinstance(value, dict | list):
                    push((value, (entry, i)))
    return found


def rewrite_found(
    resource: dict[str, Any], found: list[Found], fix: Callable[[str], str]
) -> dict[str, Any]:
    """:func:`walk_references` over references already found in the unchanged ``resource``."""
    copies: dict[int, Any] = {}
    for entry, value in found:
        new = fix(value)
        if new != value:
            _own(entry, copies)["reference"] = new
    out = copies.get(id(resource))
    return dict(resource) if out is None else out


def _own(entry: _Entry, copies: dict[int, Any]) -> Any:
    """The copy of ``entry``'s container, made (with its parents' copies) on first write."""
    node = entry[0]
    mine = copies.get(id(node))
    if mine is None:
        mine = copies[id(node)] = dict(node) if isinstance(node, dict) else list(node)
        link = entry[1]
        if link is not None:
            parent, key = link
            _own(parent, copies)[key] = mine
    return mine
