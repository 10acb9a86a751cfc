"""Search criteria of conditional interactions (https://hl7.org/fhir/R4/http.html#ccreate).

Conditional create, update, patch and delete accept any search criteria the search parser and
compiler accept (https://hl7.org/fhir/R4/search.html). Unlike a search, an unknown or empty
parameter, or a result parameter such as ``_count``, is refused with a 400 rather than silently
ignored, because ignoring a criterion could update or delete the wrong resource. The criteria
are a search: they need the ``s`` scope and see only what the principal may see (SMART).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from dhr.api.http import check_parameters
from dhr.context import RequestContext
from dhr.errors import bad_request, precondition_failed
from dhr.search.params import CONTROL, parse_search

_IGNORED = frozenset({"_format", "_pretty"})


@dataclass(frozen=True)
class Criteria:
    """The query pairs of a condition; parsed against the resource type by :func:`match_one`."""

    pairs: tuple[tuple[str, str], ...]


def parse_criteria(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> Criteria:
    check_parameters(pairs)  # If-None-Exist and ifNoneExist come from no URL
    kept: list[tuple[str, str]] = []
    for name, value in pairs:
        if name in _IGNORED:
            continue
        if name in CONTROL:
            raise bad_request(
                f"{name[:40]} is a result parameter, not a criterion", "unsupported-criterion"
            )
        if not value:
            raise bad_request(f"Criterion {name[:40]} has no value", "empty-criterion")
        kept.append((name, value))
    if not kept:
        raise bad_request("A conditional interaction needs at least one criterion", "no-criteria")
    return Criteria(tuple(kept))


def parse_criteria_string(query: str) -> Criteria:
    return parse_criteria(parse_qsl(query.lstrip("?"), keep_blank_values=True))


def match_one(ctx: RequestContext, res_type: str, criteria: Criteria, what: str) -> str | None:
    """The id of the one match, None for no match, 412 for several (spec: multiple matches)."""
    parsed = parse_search(
        res_type, criteria.pairs, ctx.base, ctx.settings.max_page_size, strict=True
    )
    ids = ctx.repo.match_ids(res_type, parsed.criteria, limit=2)
    if len(ids) > 1:
        raise precondition_failed(
            f"{what}: the criteria match more than one {res_type}", "multiple-matches"
        )
    return ids[0] if ids else None
