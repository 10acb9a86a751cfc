"""Parsed search values: what each SQL predicate module takes (https://hl7.org/fhir/R4/search.html).

One dataclass per kind of value; :func:`parse_value` turns one query value (escapes still in,
https://hl7.org/fhir/R4/search.html#escaping) of a parameter of any type into one. Prefixes
(#prefix) apply to number, date and quantity only; on other types ``ge5`` is a literal value.
Numbers keep their implicit precision range (``100`` is [99.5, 100.5)); dates their range.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from dhr.errors import bad_request, not_supported
from dhr.fhir.ids import is_valid_id
from dhr.fhir.instant import parse_range
from dhr.fhir.types import resource_types
from dhr.search.normalise import normalise
from dhr.search.registry import SearchParam, registry

PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class Missing:
    missing: bool


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code


@dataclass(frozen=True)
class Text:
    text: str  # normalised for starts-with/contains; as written for :exact


@dataclass(frozen=True)
class Range:
    prefix: str
    value: float  # the value as written (number/quantity), the range start (date)
    low: float  # the value's implicit precision range [low, high)
    high: float


@dataclass(frozen=True)
class Quantity:
    range: Range
    system: str | None
    code: str | None  # matches code, or unit when no system is given


@dataclass(frozen=True)
class Ref:
    target_type: str | None
    target_id: str | None
    url: str | None = None


@dataclass(frozen=True)
class Uri:
    uri: str


@dataclass(frozen=True)
class Composite:
    parts: tuple[tuple[SearchParam, Value], ...]


Value = Missing | Token | Text | Range | Quantity | Ref | Uri | Composite


def split(raw: str, sep: str) -> list[str]:
    """Split on ``sep`` where not escaped by a backslash; escapes stay in the parts."""
    parts, cur, i = [], [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            cur.append(raw[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def unescape(raw: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", raw)


def parse_value(param: SearchParam, modifier: str, raw: str, base: str) -> Value:
    """One value (escapes still in) of a parameter of any type."""
    kind = param.type
    if kind == "string":
        text = unescape(raw)
        return Text(text if modifier == "exact" else normalise(text))
    if kind == "token":
        if modifier == "text":
            return Text(normalise(unescape(raw)))
        if param.code == "_id":
            return _id_value(unescape(raw))
        return _token(param.code, raw)
    if kind in ("number", "date"):
        return _range(param.code, kind, raw)
    if kind == "quantity":
        return _quantity(param.code, raw)
    if kind == "reference":
        return (
            _token(param.code, raw)
            if modifier == "identifier"
            else _ref(param, modifier, raw, base)
        )
    if kind == "uri":
        return Uri(unescape(raw))
    if kind == "composite":
        return _composite(param, raw, base)
    raise not_supported(f"Search parameter {param.code} ({kind}) is not supported", 400)


def _id_value(raw: str) -> Token:
    if not is_valid_id(raw):
        raise bad_request(f"_id {raw[:60]!r} is not a FHIR id", "invalid-id")
    return Token(None, raw)


def _token(code: str, raw: str) -> Token:
    parts = split(raw, "|")
    if len(parts) == 1:
        return Token(None, unescape(raw))
    if len(parts) > 2 or parts == ["", ""]:
        raise bad_request(f"{code}={raw[:60]!r} is not [system]|[code]", "bad-token")
    return Token(unescape(parts[0]), unescape(parts[1]) or None)


def _prefixed(raw: str) -> tuple[str, str]:
    if raw[:2].isalpha():
        if raw[:2] not in PREFIXES:
            raise bad_request(f"{raw[:40]!r} starts with an unknown prefix", "bad-prefix")
        return raw[:2], raw[2:]
    return "eq", raw


def _range(code: str, kind: str, raw: str) -> Range:
    prefix, text = _prefixed(unescape(raw))
    if kind == "date":
        try:
            start, end = parse_range(text, code)
        except (ValueError, OverflowError):
            raise bad_request(f"{code}: {text[:40]!r} is out of range", "invalid-date") from None
        return Range(prefix, start, start, end)
    return Range(prefix, *_number(code, text))


def _number(code: str, text: str) -> tuple[float, float, float]:
    """A decimal and its implicit precision range: ``100`` is [99.5, 100.5)."""
    if not _NUMBER.fullmatch(text):
        raise bad_request(f"{code}: {text[:40]!r} is not a number", "bad-number")
    try:
        number = Decimal(text)
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        half = Decimal(5).scaleb(exponent - 1)
    except (InvalidOperation, AssertionError):
        raise bad_request(f"{code}: {text[:40]!r} is not a number", "bad-number") from None
    bounds = (float(number), float(number - half), float(number + half))
    if not all(math.isfinite(b) for b in bounds):
        raise bad_request(f"{code}: {text[:40]!r} is out of range", "bad-number")
    return bounds


def _quantity(code: str, raw: str) -> Quantity:
    parts = split(raw, "|")
    if len(parts) not in (1, 3):
        raise bad_request(f"{code}={raw[:60]!r} is not [prefix]number|system|code", "bad-quantity")
    rng = _range(code, "number", parts[0])
    if len(parts) == 1:
        return Quantity(rng, None, None)
    return Quantity(rng, unescape(parts[1]) or None, unescape(parts[2]) or None)


def _ref(param: SearchParam, modifier: str, raw: str, base: str) -> Ref:
    value = unescape(raw)
    if value.startswith(base + "/"):
        value = value[len(base) + 1 :]
    elif "://" in value or value.startswith(("urn:", "urn%3A")):
        return Ref(None, None, value)
    parts = value.split("/")
    if len(parts) == 4 and parts[2] == "_history":
        parts = parts[:2]
    if len(parts) == 1 and is_valid_id(parts[0]):
        return Ref(modifier or None, parts[0])
    if len(parts) == 2 and parts[0] in resource_types() and is_valid_id(parts[1]):
        if (modifier and modifier != parts[0]) or (param.targets and parts[0] not in param.targets):
            raise bad_request(f"{param.code} cannot refer to {parts[0]}", "bad-reference")
        return Ref(parts[0], parts[1])
    raise bad_request(f"{param.code}={raw[:60]!r} is not [Type/]id or a URL", "bad-reference")


def _composite(param: SearchParam, raw: str, base: str) -> Composite:
    pieces = split(raw, "$")
    if len(pieces) != len(param.components):
        raise bad_request(
            f"{param.code} takes {len(param.components)} $-separated components", "bad-composite"
        )
    parts: list[tuple[SearchParam, Value]] = []
    for comp, piece in zip(param.components, pieces, strict=True):
        sub = registry().by_url(comp.definition)
        assert sub is not None  # the registry checks components at load
        parts.append((sub, parse_value(sub, "", piece, base)))
    return Composite(tuple(parts))
