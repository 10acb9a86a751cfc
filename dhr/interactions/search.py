"""FHIR search interaction: ``GET [type]?...`` and ``POST [type]/_search``.

https://hl7.org/fhir/R4/http.html#search and https://hl7.org/fhir/R4/search.html. Answers a
``searchset`` Bundle whose entries have ``search.mode = match``. Unknown parameters are ignored
and reported in an OperationOutcome entry (``search.mode = outcome``); the ``self`` link shows
only what was used; ``Prefer: handling=strict`` turns unknown parameters into a 400.

Paging (#paging) is keyset: ``next`` carries an opaque ``_page`` token holding the last row's
sort values and resource key, so pages never repeat or skip a resource while others create or
delete resources (a resource whose sort value changes between pages may move, as in any live
list). ``_total`` (#total): ``none`` omits it; ``estimate`` and ``accurate`` (the default) both
count exactly, with one ``COUNT`` query, skipped when the first page already holds every match.
A page costs at most two statements whatever its size (rows with their JSON, then the count),
plus one per ``_include``/``_revinclude`` parameter and round (#include, :mod:`dhr.search.include`):
included resources follow the page's matches with ``search.mode = include``, each once.
Compartment search (``GET Patient/123/Observation?...``, https://hl7.org/fhir/R4/http.html#search
and :mod:`dhr.search.compartment`) is this search with compartment membership as one more
criterion; its links keep the compartment path. What the principal may see is ANDed in by the
enforcing repository (:mod:`dhr.enforce`), for the matches and for the included resources.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from dhr.api.http import check_parameters, prefer_strict, representation
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import Issue, bad_request, operation_outcome, unsupported_media_type
from dhr.fhir import jsonio
from dhr.fhir.subset import select_elements, summarise
from dhr.search import compartment, include
from dhr.search.compile import decode_cursor, encode_cursor
from dhr.search.params import SearchRequest, parse_search

FORM = "application/x-www-form-urlencoded"


def search_pairs(req: FhirRequest) -> list[tuple[str, str]]:
    """URL query pairs, plus a ``POST _search`` form body's (https://hl7.org/fhir/R4/http.html#search)."""
    pairs = list(req.query)
    if req.method != "POST" or not req.body:
        return pairs
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype != FORM:
        raise unsupported_media_type(f"POST _search takes a {FORM} body")
    try:
        text = req.body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("The form body is not valid UTF-8", "invalid-utf8") from None
    form = parse_qsl(text, keep_blank_values=True)
    check_parameters(form)  # the URL's were checked when the request was routed
    return pairs + form


def search_type(
    ctx: RequestContext, req: FhirRequest, res_type: str, within: tuple[str, str] | None = None
) -> FhirResponse:
    """Search ``res_type``; ``within=(type, id)`` limits it to that compartment."""
    pairs = search_pairs(req)
    merged = FhirRequest(req.method, req.path, tuple(pairs), req.headers)
    rep = representation(merged)
    settings = ctx.settings
    sreq = parse_search(res_type, pairs, ctx.base, settings.max_page_size, prefer_strict(req))
    path = res_type
    if within is not None:
        scope = compartment.criterion(within[0], within[1], res_type)
        sreq = replace(sreq, criteria=(scope, *sreq.criteria))
        path = f"{within[0]}/{within[1]}/{res_type}"
    count = settings.default_page_size if sreq.count is None else sreq.count
    after = decode_cursor(sreq.sort, sreq.page) if sreq.page else None
    rows: list[Any] = []
    more = False
    searched = count > 0 and rep.summary != "count"
    if searched:
        rows = ctx.repo.search(res_type, sreq.criteria, sreq.sort, count + 1, after)
        more = len(rows) > count
        rows = rows[:count]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if sreq.total != "none":
        # a first page that holds every match (none included) is its own total
        complete = searched and after is None and not more
        bundle["total"] = len(rows) if complete else ctx.repo.count(res_type, sreq.criteria)
    bundle["link"] = _links(ctx, path, sreq, rows if more else [])
    entries = [_entry(ctx, row, rep.summary, rep.elements) for row in rows]
    included, truncated = ctx.repo.include(sreq.includes, rows)
    entries += [_entry(ctx, row, None, (), "include") for row in included]
    if sreq.ignored:
        entries.append(_ignored_outcome(sreq.ignored))
    if truncated:
        entries.append(_truncated_outcome())
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, None, bundle, {}, "Bundle")


def _links(
    ctx: RequestContext, path: str, sreq: SearchRequest, page: list[Any]
) -> list[dict[str, str]]:
    def url(extra: list[tuple[str, str]]) -> str:
        qs = urlencode([*sreq.used, *extra], safe=":,|$/*", quote_via=quote)
        return f"{ctx.base}/{path}" + (f"?{qs}" if qs else "")

    links = [{"relation": "self", "url": url([("_page", sreq.page)] if sreq.page else [])}]
    links.append({"relation": "first", "url": url([])})
    if page:
        last = page[-1]
        values = [*last[4:-1], last[0]]  # the sort values (the patient key ends the row)
        links.append(
            {"relation": "next", "url": url([("_page", encode_cursor(sreq.sort, values))])}
        )
    return links


def _entry(
    ctx: RequestContext,
    row: Any,
    summary: str | None,
    elements: tuple[str, ...],
    mode: str = "match",
) -> dict[str, Any]:
    resource = jsonio.loads(bytes(row[3]))
    if summary in ("true", "text", "data"):
        resource = summarise(resource, summary)
    elif elements:
        resource = select_elements(resource, elements)
    return {
        "fullUrl": f"{ctx.base}/{row[1]}/{row[2]}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _ignored_outcome(ignored: tuple[str, ...]) -> dict[str, Any]:
    names = ", ".join(sorted(set(ignored)))
    issue = Issue(
        "warning",
        "not-supported",
        f"Ignored search parameters this server does not know or support here: {names}",
        (),
        "ignored-parameter",
    )
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}


def _truncated_outcome() -> dict[str, Any]:
    issue = Issue(
        "warning",
        "too-costly",
        f"Only the first {include.MAX_INCLUDED} included resources are in this page",
        (),
        "include-truncated",
    )
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}
