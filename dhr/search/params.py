"""Search query parsing: query pairs to a typed :class:`SearchRequest` (pure; no database).

https://hl7.org/fhir/R4/search.html. Repeated parameters are AND-ed, comma-separated values are
OR-ed (https://hl7.org/fhir/R4/search.html#combining); ``\\,`` ``\\|`` ``\\$`` ``\\\\`` escape
(#escaping). Prefixes (#prefix) apply to number, date and quantity only: on other types a value
such as ``ge5`` is a literal. Chains (#chaining) on an unqualified reference search every target
type that defines the chained parameter (400 if none does). Reverse chains (#has) nest.
Unknown top-level parameters are reported in ``ignored``; everything else malformed is a 400.
``_include`` / ``_revinclude`` (#include, with ``:iterate``) are parsed here and resolved per
page by :mod:`dhr.search.include`; a bad one (unknown type or parameter, not a reference) is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dhr.digits import natural
from dhr.errors import bad_request, not_supported
from dhr.fhir.types import resource_types
from dhr.search.compartment import InCompartment
from dhr.search.registry import SearchParam, registry
from dhr.search.sql.values import Missing, Value, parse_value, split

CONTROL = frozenset(
    {"_count", "_sort", "_total", "_summary", "_elements", "_page", "_format", "_pretty"}
)
LATER = frozenset({"_contained", "_containedType"})
INCLUDES = frozenset({"_include", "_revinclude"})
_MODIFIERS = {
    "string": {"exact", "contains"},
    "token": {"text", "not", "of-type"},
    "uri": {"below", "above"},
    "reference": {"identifier"},
}
_TERMINOLOGY = {"in", "not-in", "below", "above"}  # token modifiers needing a terminology server
_SORTABLE = {"string", "date", "number", "token", "quantity", "reference", "uri"}
MAX_DEPTH = 4


@dataclass(frozen=True)
class Filter:
    """``param[:modifier]=v1,v2``: a resource matches when any value matches."""

    param: SearchParam
    modifier: str | None
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Chain:
    """``ref[:Type].inner``: resources whose ``param`` points at a target matching ``inner``."""

    param: SearchParam
    inner: tuple[tuple[str, Criterion], ...]  # (target type, criterion parsed for that type)


@dataclass(frozen=True)
class Has:
    """``_has:Source:ref:inner``: resources that some ``Source`` matching ``inner`` refers to."""

    source: str
    param: SearchParam
    inner: Criterion


@dataclass(frozen=True)
class Guarded:
    """``inner``, further restricted by an access ``term`` (a :class:`dhr.search.compile.Term`,
    e.g. the consent policy's): the enforcing repository guards the targets of chains and the
    sources of ``_has`` so that nothing hidden is matched through them."""

    inner: Criterion
    term: Any = field(compare=False, hash=False)


Criterion = Filter | Chain | Has | InCompartment | Guarded


@dataclass(frozen=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude=...``; ``None`` stands for ``*``."""

    reverse: bool
    source: str | None
    param: SearchParam | None
    target: str | None
    iterate: bool


@dataclass(frozen=True)
class SortKey:
    param: SearchParam
    descending: bool


@dataclass(frozen=True)
class SearchRequest:
    res_type: str
    criteria: tuple[Criterion, ...]
    sort: tuple[SortKey, ...] = ()
    count: int | None = None
    total: str | None = None
    page: str | None = None
    used: tuple[tuple[str, str], ...] = ()  # what the self link shows
    ignored: tuple[str, ...] = ()
    includes: tuple[Include, ...] = ()


class UnknownParameter(Exception):  # noqa: N818 - a condition, not a crash
    """A parameter this server does not know on this type (ignored unless strict)."""


def _param(res_type: str, code: str) -> SearchParam:
    found = registry().get(res_type, code)
    if found is None:
        raise UnknownParameter(code)
    if found.type == "special" or (found.expression is None and code != "_id"):
        raise not_supported(f"Search parameter {code!r} is not supported by this server", 400)
    return found


def parse_criterion(res_type: str, key: str, raw: str, base: str, depth: int = 0) -> Criterion:
    """One ``key=value`` pair on ``res_type`` (raises :class:`UnknownParameter`)."""
    if depth > MAX_DEPTH:
        raise bad_request(f"{key[:80]!r} chains deeper than {MAX_DEPTH} levels", "chain-too-deep")
    if key.startswith("_has:"):
        return _parse_has(res_type, key, raw, base, depth)
    head, dot, rest = key.partition(".")
    code, _, modifier = head.partition(":")
    param = _param(res_type, code)
    if not dot:
        return Filter(param, modifier or None, parse_values(param, modifier, raw, base))
    if param.type != "reference":
        raise bad_request(f"{code!r} is a {param.type} parameter and cannot be chained", "chain")
    targets = param.targets or tuple(sorted(resource_types()))
    if modifier:
        if modifier not in targets:
            raise bad_request(f"{code!r} cannot refer to {modifier[:40]!r}", "bad-modifier")
        targets = (modifier,)
    inner: list[tuple[str, Criterion]] = []
    for target in targets:
        try:
            inner.append((target, parse_criterion(target, rest, raw, base, depth + 1)))
        except UnknownParameter:
            continue
    if not inner:
        raise bad_request(
            f"No target type of {code!r} has a search parameter {rest.split(':')[0][:40]!r}",
            "chain-unknown",
        )
    return Chain(param, tuple(inner))


def _parse_has(res_type: str, key: str, raw: str, base: str, depth: int) -> Has:
    parts = key.split(":", 3)
    if len(parts) < 4 or not parts[3]:
        raise bad_request("_has takes the form _has:Type:reference:parameter", "bad-has")
    source, ref_code, rest = parts[1], parts[2], parts[3]
    if source not in resource_types():
        raise bad_request(f"_has names an unknown resource type {source[:40]!r}", "bad-has")
    try:
        ref = _param(source, ref_code)
        inner = parse_criterion(source, rest, raw, base, depth + 1)
    except UnknownParameter as exc:
        raise bad_request(f"_has: {source} has no search parameter {exc}", "bad-has") from None
    if ref.type != "reference" or (ref.targets and res_type not in ref.targets):
        raise bad_request(f"_has: {source}.{ref_code} cannot refer to {res_type}", "bad-has")
    return Has(source, ref, inner)


def parse_values(param: SearchParam, modifier: str, raw: str, base: str) -> tuple[Value, ...]:
    """The OR-ed values of one parameter occurrence, checked against its type and modifier."""
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise bad_request(f"{param.code}:missing takes true or false", "bad-missing")
        return (Missing(raw == "true"),)
    if modifier:
        _check_modifier(param, modifier)
    values = split(raw, ",")
    if any(not v for v in values):
        raise bad_request(f"{param.code} has an empty value", "empty-value")
    return tuple(parse_value(param, modifier, v, base) for v in values)


def _check_modifier(param: SearchParam, modifier: str) -> None:
    if param.type == "token" and modifier in _TERMINOLOGY:
        raise not_supported(f"{param.code}:{modifier} needs terminology support", 400)
    if param.type == "token" and modifier == "of-type":
        raise not_supported(
            f"{param.code}:of-type is not supported: identifier types are not indexed", 400
        )
    if modifier in _MODIFIERS.get(param.type, ()):
        return
    if param.type == "reference" and modifier in (param.targets or resource_types()):
        return
    raise bad_request(
        f"Modifier :{modifier[:40]} does not apply to {param.type} parameter {param.code}",
        "bad-modifier",
    )


def parse_include(key: str, raw: str) -> Include:
    """``_include[:iterate]=Source:param[:Target]`` or ``=*`` (#include; ``:recurse`` is R3's
    name for ``:iterate``)."""
    name, _, modifier = key.partition(":")
    if modifier not in ("", "iterate", "recurse"):
        raise bad_request(f"{name} has no modifier :{modifier[:20]}", "bad-include")
    reverse, iterate = name == "_revinclude", bool(modifier)
    if raw == "*":
        return Include(reverse, None, None, None, iterate)
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise bad_request(f"{name} takes Type:parameter[:targetType] or *", "bad-include")
    source, code, target = parts[0], parts[1], parts[2] if len(parts) == 3 else None
    if source not in resource_types():
        raise bad_request(f"{name}: {source[:40]!r} is not a resource type", "bad-include")
    param = None
    if code != "*":
        param = registry().get(source, code)
        if param is None or param.type != "reference" or param.expression is None:
            raise bad_request(
                f"{name}: {code[:40]!r} is not a reference search parameter of {source}",
                "bad-include",
            )
    if target is not None:
        allowed = param.targets if param is not None and param.targets else resource_types()
        if target not in allowed:
            raise bad_request(f"{name}: {raw[:80]!r} cannot refer to {target[:40]}", "bad-include")
    return Include(reverse, source, param, target, iterate)


def parse_sort(res_type: str, raw: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for item in raw.split(","):
        code = item.strip().removeprefix("-")
        param = registry().get(res_type, code)
        if param is not None and param.type not in _SORTABLE:
            param = None
        if param is None:
            raise bad_request(f"_sort: {code[:40]!r} is not a sortable parameter", "bad-sort")
        keys.append(SortKey(param, item.strip().startswith("-")))
    return tuple(keys)


# How large one search may be (a 400 beyond): each criterion is a subquery and each value one
# more alternative in it, and a request repeating ``name=x`` 100 times took PostgreSQL 30 s
# and, at 500, all its memory. Real searches use a handful of criteria.
MAX_CRITERIA = 20
MAX_VALUES = 200


def _check_size(key: str, raw: str, criteria: int) -> None:
    if criteria >= MAX_CRITERIA:
        raise bad_request(
            f"A search may combine at most {MAX_CRITERIA} criteria; split it or use fewer",
            "too-many-criteria",
        )
    if raw.count(",") - raw.count("\\,") >= MAX_VALUES:
        raise bad_request(
            f"Search parameter {key[:60]!r} lists more than {MAX_VALUES} values; split the search",
            "too-many-values",
        )


def parse_search(
    res_type: str,
    pairs: list[tuple[str, str]] | tuple[tuple[str, str], ...],
    base: str,
    max_count: int,
    strict: bool = False,
) -> SearchRequest:
    """Parse every pair; unknown parameters go to ``ignored`` (a 400 when ``strict``)."""
    criteria: list[Criterion] = []
    used: list[tuple[str, str]] = []
    ignored: list[str] = []
    sort: tuple[SortKey, ...] = ()
    count = total = page = None
    includes: list[Include] = []
    for key, raw in pairs:
        if key.partition(":")[0] in INCLUDES:
            includes.append(parse_include(key, raw))
            used.append((key, raw))
            continue
        if key in CONTROL:
            if key == "_count":
                count = natural(raw)
                if count is None or count > max_count:
                    raise bad_request(
                        f"_count must be an integer from 0 to {max_count}", "bad-count"
                    )
            elif key == "_sort":
                sort = parse_sort(res_type, raw)
            elif key == "_total":
                if raw not in ("none", "estimate", "accurate"):
                    raise bad_request("_total takes none, estimate or accurate", "bad-total")
                total = raw
            elif key == "_page":
                page = raw
                continue
            used.append((key, raw))
            continue
        try:
            if key in LATER:
                raise UnknownParameter(key)
            if raw == "":
                ignored.append(key)
                continue
            _check_size(key, raw, len(criteria))
            criteria.append(parse_criterion(res_type, key, raw, base))
            used.append((key, raw))
        except UnknownParameter:
            if strict:
                raise bad_request(
                    f"Unknown or unsupported search parameter {key[:60]!r} on {res_type}",
                    "unknown-parameter",
                ) from None
            ignored.append(key)
    return SearchRequest(
        res_type,
        tuple(criteria),
        sort,
        count,
        total,
        page,
        tuple(used),
        tuple(ignored),
        tuple(includes),
    )
