"""Search criteria of conditional interactions (https://hl7.org/fhir/R4/http.html#ccreate).

Until the search issue lands, conditional create, update and delete accept ``_id`` and
``identifier`` (token syntax ``[system]|[code]``); any other parameter is refused with a 400
rather than silently ignored, because ignoring a criterion could update the wrong resource.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from dhr.context import RequestContext
from dhr.errors import bad_request, precondition_failed
from dhr.store.repository import Criterion

SUPPORTED = ("_id", "identifier")
_IGNORED = frozenset({"_format", "_pretty"})


def parse_criteria(pairs: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> list[Criterion]:
    criteria: list[Criterion] = []
    for name, value in pairs:
        if name in _IGNORED:
            continue
        if name not in SUPPORTED:
            raise bad_request(
                f"Conditional criteria support {', '.join(SUPPORTED)}; {name[:40]!r} is not "
                "supported yet",
                "unsupported-criterion",
            )
        values = tuple(v for v in value.split(",") if v)
        if not values:
            raise bad_request(f"Criterion {name} has no value", "empty-criterion")
        criteria.append(Criterion(name, values))
    if not criteria:
        raise bad_request("A conditional interaction needs at least one criterion", "no-criteria")
    return criteria


def parse_criteria_string(query: str) -> list[Criterion]:
    return parse_criteria(parse_qsl(query.lstrip("?"), keep_blank_values=True))


def match_one(
    ctx: RequestContext, res_type: str, criteria: list[Criterion], what: str
) -> str | None:
    """The id of the one match, None for no match, 412 for several (spec: multiple matches)."""
    ids = ctx.repo.find_ids(res_type, criteria, limit=2)
    if len(ids) > 1:
        raise precondition_failed(
            f"{what}: the criteria match more than one {res_type}", "multiple-matches"
        )
    return ids[0] if ids else None
