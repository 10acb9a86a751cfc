"""SMART scopes parsed into typed values, and narrowed against what may be granted.

SMART App Launch 2.2, "Scopes and Launch Context"
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html): a resource scope is
``<patient|user|system>/<type|*>.<permissions>[?<search params>]``. v2 permissions are the
letters ``c r u d s`` in that order; v1's ``read`` means ``rs``, ``write`` means ``cud`` and ``*``
means all five. A v2 query (``patient/Observation.rs?category=laboratory``) restricts the scope
to resources matching those search parameters. Everything else (``openid``, ``fhirUser``,
``launch``, ``launch/patient``, ``offline_access``...) is a non-resource scope.

Pure functions only: no I/O, no settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode

from dhr.auth.model import ALL_ACTIONS, Scope, ScopeContext

_CONTEXTS: frozenset[str] = frozenset({"patient", "user", "system"})
_ORDER = "cruds"
_V1 = {"read": frozenset("rs"), "write": frozenset("cud"), "*": ALL_ACTIONS}
_TYPE = re.compile(r"^(\*|[A-Z][A-Za-z]{1,63})$")
_V2 = re.compile(r"^c?r?u?d?s?$")


def split(text: str) -> list[str]:
    """The scope tokens of a space-separated scope string, duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for token in text.split():
        seen.setdefault(token, None)
    return list(seen)


def parse_scope(token: str) -> Scope | None:
    """A resource scope as a :class:`Scope`; None for a non-resource scope.

    Raises ValueError when the token has a resource-scope prefix but is malformed.
    """
    context, slash, rest = token.partition("/")
    if not slash or context not in _CONTEXTS:
        return None
    body, mark, query = rest.partition("?")
    res_type, dot, perms = body.rpartition(".")
    if not dot or not _TYPE.match(res_type):
        raise ValueError(f"malformed SMART scope {token!r}: expected {context}/<Type|*>.<perms>")
    actions = _V1.get(perms)
    if actions is None:
        if not perms or not _V2.match(perms):
            raise ValueError(f"malformed SMART scope {token!r}: permissions must be cruds in order")
        actions = frozenset(perms)
    params = tuple(parse_qsl(query, keep_blank_values=False)) if query else ()
    if mark and not params:
        raise ValueError(f"malformed SMART scope {token!r}: empty restriction")
    return Scope(_context(context), res_type, actions, params, token)


def _context(value: str) -> ScopeContext:
    if value == "patient":
        return "patient"
    if value == "user":
        return "user"
    return "system"


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """The resource scopes of a scope string; malformed resource scopes are skipped."""
    scopes: list[Scope] = []
    for token in split(text):
        try:
            scope = parse_scope(token)
        except ValueError:
            continue
        if scope is not None:
            scopes.append(scope)
    return tuple(scopes)


def format_scope(scope: Scope) -> str:
    """The v2 text of a scope (``patient/Observation.rs?category=laboratory``)."""
    perms = "".join(a for a in _ORDER if a in scope.actions)
    text = f"{scope.context}/{scope.resource_type}.{perms}"
    return f"{text}?{urlencode(scope.params)}" if scope.params else text


def matching(scopes: Sequence[Scope], res_type: str, action: str) -> list[Scope]:
    """The scopes that allow ``action`` (one of c, r, u, d, s) on ``res_type``."""
    return [s for s in scopes if action in s.actions and s.resource_type in ("*", res_type)]


def _covers_context(ceiling: ScopeContext, wanted: ScopeContext) -> bool:
    # A user may see a patient's data in a patient launch; system scopes stand alone.
    return ceiling == wanted or (ceiling == "user" and wanted == "patient")


def _narrow(wanted: Scope, ceiling: Scope) -> Scope | None:
    """``wanted`` cut down to what one ceiling scope allows, or None if nothing is left."""
    if not _covers_context(ceiling.context, wanted.context):
        return None
    if ceiling.resource_type not in ("*", wanted.resource_type):
        res_type = ceiling.resource_type if wanted.resource_type == "*" else None
        if res_type is None:
            return None
    else:
        res_type = wanted.resource_type
    actions = wanted.actions & ceiling.actions
    if not actions:
        return None
    params = dict(wanted.params)
    for name, value in ceiling.params:
        if params.setdefault(name, value) != value:
            return None  # two different required values: nothing can match both
    narrowed = Scope(wanted.context, res_type, frozenset(actions), tuple(params.items()))
    return Scope(
        narrowed.context,
        narrowed.resource_type,
        narrowed.actions,
        narrowed.params,
        format_scope(narrowed),
    )


def _same(a: Scope, b: Scope) -> bool:
    return (
        a.context == b.context
        and a.resource_type == b.resource_type
        and a.actions == b.actions
        and dict(a.params) == dict(b.params)
    )


def grant(requested: str, ceiling: str) -> str:
    """The scopes a token may carry: each requested scope narrowed to what ``ceiling`` allows.

    A requested scope the ceiling fully covers is granted as written (v1 stays v1); one it
    partly covers is granted in its narrowed v2 form; non-resource scopes are granted only if
    the ceiling lists them. Order is kept and duplicates dropped; "" when nothing is left.
    """
    ceiling_tokens = set(split(ceiling))
    ceiling_scopes = parse_scopes(ceiling)
    granted: list[str] = []
    for token in split(requested):
        try:
            wanted = parse_scope(token)
        except ValueError:
            continue
        if wanted is None:
            if token in ceiling_tokens:
                granted.append(token)
            continue
        pieces = [n for c in ceiling_scopes if (n := _narrow(wanted, c)) is not None]
        if any(_same(p, wanted) for p in pieces):
            granted.append(token)
            continue
        granted.extend(p.raw for p in _drop_covered(pieces))
    return " ".join(split(" ".join(granted)))


def _drop_covered(pieces: Iterable[Scope]) -> list[Scope]:
    """Drop pieces another piece already covers (same type and params, more actions)."""
    kept: list[Scope] = []
    items = list(pieces)
    for i, p in enumerate(items):
        covered = any(
            j != i
            and q.context == p.context
            and q.resource_type in ("*", p.resource_type)
            and p.actions <= q.actions
            and set(q.params) <= set(p.params)
            and (p.actions < q.actions or set(q.params) < set(p.params) or j < i)
            for j, q in enumerate(items)
        )
        if not covered:
            kept.append(p)
    return kept
