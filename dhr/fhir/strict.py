"""The JSON rules the R4B models let through (https://hl7.org/fhir/R4/json.html#primitive).

pydantic coerces ``"true"`` to ``True`` and ``"5"`` to ``5`` and does not check required-binding
codes, but FHIR JSON says booleans are JSON booleans, integers and decimals are JSON numbers,
everything else is a JSON string, and a code with a required binding must be one of its values.
This walks the accepted JSON beside the validated model and reports what breaks those rules.
The per-class field plan is computed once, so the walk costs a dict lookup per element.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import cache
from typing import Any

from pydantic import BaseModel

from dhr.errors import Issue
from dhr.fhir.validate_paths import element_path

MAX_ISSUES = 50
# Code lists in the models that are not value sets (parsed from prose): never enforced.
NOT_A_VALUE_SET = frozenset({("CapabilityStatement", "format")})

_STRINGY = (str, dt.date, dt.datetime, dt.time, bytes)
_NUMBER = (int, float, Decimal)


@cache
def _plan(cls: type[BaseModel]) -> dict[str, tuple[str, frozenset[str] | None]]:
    """JSON name -> (attribute name, the complete required code list or None)."""
    plan: dict[str, tuple[str, frozenset[str] | None]] = {}
    for name, info in cls.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        allowed = extra.get("enum_values")
        alias = info.alias or name
        # The models list a binding's codes in full, or cut the list with "+" (then we can't tell).
        complete = (
            isinstance(allowed, list)
            and "+" not in allowed
            and (cls.__name__, alias) not in NOT_A_VALUE_SET
        )
        plan[alias] = (name, frozenset(map(str, allowed)) if complete else None)  # type: ignore[arg-type]
    return plan


def strict_issues(res_type: str, raw: dict[str, Any], model: BaseModel) -> list[Issue]:
    """Issues for primitives of the wrong JSON type and codes outside their required value set."""
    issues: list[Issue] = []
    _walk(raw, model, (), res_type, issues)
    return issues


def _walk(
    raw: dict[str, Any],
    model: BaseModel,
    loc: tuple[int | str, ...],
    res_type: str,
    issues: list[Issue],
) -> None:
    plan = _plan(type(model))
    for alias, raw_value in raw.items():
        entry = plan.get(alias)
        if entry is None or len(issues) >= MAX_ISSUES:
            continue
        name, allowed = entry
        value = getattr(model, name, None)
        if isinstance(value, list):
            if isinstance(raw_value, list):
                for i, (item, raw_item) in enumerate(zip(value, raw_value, strict=False)):
                    if raw_item.__class__ is str and allowed is None and _plain_str(item):
                        continue  # the common case, decided without a call
                    _check(raw_item, item, (*loc, alias, i), allowed, res_type, issues)
        elif raw_value.__class__ is str and allowed is None and _plain_str(value):
            continue
        else:
            _check(raw_value, value, (*loc, alias), allowed, res_type, issues)


def _plain_str(value: Any) -> bool:
    """A JSON string is right for ``value`` (None, or a string-typed primitive)."""
    return value is None or value.__class__ is str


def _check(
    raw: Any,
    value: Any,
    loc: tuple[int | str, ...],
    allowed: frozenset[str] | None,
    res_type: str,
    issues: list[Issue],
) -> None:
    if isinstance(value, BaseModel):
        if isinstance(raw, dict):
            _walk(raw, value, loc, res_type, issues)
        return
    problem = _primitive_problem(raw, value)
    if problem is None and allowed is not None and isinstance(raw, str) and raw not in allowed:
        problem = f"{raw!r} is not one of the required codes ({', '.join(sorted(allowed))})"
    if problem:
        path = element_path(res_type, loc)
        issues.append(Issue("error", "value", f"{path}: {problem}", (path,), "invalid-element"))


def _primitive_problem(raw: Any, value: Any) -> str | None:
    if value is None or isinstance(raw, dict | list):
        return None
    if isinstance(value, bool):
        return None if isinstance(raw, bool) else "a boolean must be JSON true or false"
    if isinstance(value, _NUMBER):
        ok = isinstance(raw, int | float | Decimal) and not isinstance(raw, bool)
        return None if ok else "a number must be a JSON number, not a string"
    if isinstance(value, _STRINGY):
        return None if isinstance(raw, str) else "this element must be a JSON string"
    return None
