"""``POST /fhir/$import``: a registered source sends NDJSON in the body; all or nothing.

ARCHITECTURE.md "The unified record". This is the synchronous, "NDJSON in the body" variant of
bulk import: the Bulk Data ``$import`` draft
(https://github.com/smart-on-fhir/bulk-import/blob/master/import.md) is asynchronous and pulls
files from URLs; here the client posts one file and gets the result in the response. The file
format is the Bulk Data one (https://hl7.org/fhir/uv/bulkdata/export.html#file-format).

Request:

* ``Content-Type: application/fhir+ndjson`` (or ``application/ndjson``,
  ``application/x-ndjson``); anything else is a 415.
* Only a registered, active source system may call it (its principal's client is the source,
  :meth:`~dhr.enforce.EnforcingRepository.source`); anyone else gets a 403.
* One resource per line (blank lines are ignored), each the source's own resource with its own
  id; references between lines use the source's ids (``Patient/<its id>``), in any order: the
  ingest planner (:mod:`dhr.record.ingest`) maps every line before anything is written, so an
  Observation may come before the Patient it is about. A line without an id is recognised
  again only by an identifier in one of the source's own identifier systems; otherwise each
  import creates it anew.
* Limits: the body is capped by ``max_body_bytes`` (the HTTP layer refuses a larger one with
  413 before this runs, :func:`dhr.api.routes.read_body`) and at ``max_bundle_entries * 10``
  non-blank lines (413 past that).

Every line becomes one ``POST <resourceType>`` entry (index = line number - 1) of one ingest
(:func:`dhr.record.ingest.ingest`), so the whole file is one transaction: re-sending it changes
nothing, and one bad line writes nothing. Before the ingest runs every line is parsed and
validated (:func:`dhr.fhir.validate.validate_resource`); a line that is not JSON, not an object,
has a missing or unknown ``resourceType``, fails validation, or repeats another line's
``Type/id`` is reported, all of them at once (up to :data:`MAX_ISSUES` issues), with
``diagnostics`` starting ``line N:`` and ``expression`` ``line[N]`` (N counts from 1, blank lines
included): 400, or 422 when every problem is an invalid NHS number. A failure inside the ingest
(an NHS number, a forbidden write, a conflict) names its line the same way.

Response (200), chosen with ``Prefer`` (https://hl7.org/fhir/R4/http.html#ops):

* by default (also with ``return=minimal`` or ``representation``) a ``Parameters`` resource:
  ``total``, ``created``, ``updated``, ``unchanged``, ``deleted`` (``valueInteger``), one
  ``provenance`` (``valueReference``) per Provenance the ingest wrote (none when nothing
  changed), and ``outcome`` (the OperationOutcome below);
* with ``Prefer: return=OperationOutcome`` just that OperationOutcome: one ``information``
  issue whose diagnostics read ``N resources: C created, U updated, K unchanged, D deleted;
  Provenance: Provenance/a, ...``.

The Provenance ``entity`` is ``$import <request id>``. Audit: the dispatcher audits this write
route (IHE BALP) from the request's recorder; the ingest's transaction collects per entry, so
everything its entries touched is gathered back under the request
(:meth:`~dhr.audit.recorder.AuditRecorder.gather`) and the AuditEvents name every patient the
import touched, on success and on failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dhr.api.http import prefer_return
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.enforce import forbidden
from dhr.errors import FhirError, Issue, operation_outcome, unsupported_media_type
from dhr.fhir import jsonio, validate_pool
from dhr.fhir.validate import check_resource_id, resource_type_of, validate_resource
from dhr.interactions.bundle_entries import BundleEntry
from dhr.store.db import before_commit

if TYPE_CHECKING:
    from dhr.record.ingest import IngestOutcome

FHIR_NDJSON = "application/fhir+ndjson"
NDJSON_TYPES = frozenset({FHIR_NDJSON, "application/ndjson", "application/x-ndjson"})
MAX_ISSUES = 100
LINES_PER_BUNDLE_ENTRY = 10  # the line cap is max_bundle_entries times this

_PARSER_LINE = re.compile(r"line 1 column (\d+)(?: \(char \d+\))?")
_ENTRY = re.compile(r"Bundle\.entry\[(\d+)\](?:\.resource)?(?: \((?:POST|PUT|DELETE) ([^)]*)\))?")


@dataclass(frozen=True)
class ImportResult:
    """What one import did (for the response and for ``dhr load --source``)."""

    lines: int
    outcome: IngestOutcome


def import_ndjson(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    """Run ``$import``: the body's lines as one ingest of the principal's source."""
    if ctx.repo.source() is None:
        raise forbidden("Only a registered source system can $import (its own data)")
    ctype = (req.header("content-type") or "").split(";")[0].strip().lower()
    if ctype not in NDJSON_TYPES:
        raise unsupported_media_type(
            f"Content-Type {ctype[:60] or '(none)'} is not accepted; $import takes "
            "application/fhir+ndjson (one resource per line)"
        )
    result = run_import(ctx, req.body or b"", f"$import {ctx.request_id}")
    summary = outcome_resource(result)
    if prefer_return(req) == "OperationOutcome":
        return FhirResponse(200, None, summary, {}, "OperationOutcome")
    return FhirResponse(200, None, parameters(result, summary), {}, "Parameters")


def line_limit(max_bundle_entries: int) -> int:
    return max_bundle_entries * LINES_PER_BUNDLE_ENTRY


def run_import(ctx: RequestContext, body: bytes, entity: str) -> ImportResult:
    """Validate every line of ``body``, then ingest them all (raises FhirError: nothing kept).

    A large body is validated in the worker pool (:mod:`dhr.fhir.validate_pool`) while the
    ingest runs; its verdicts are in before the unit of work can commit, and an invalid line is
    the answer whatever the ingest made of it."""
    # Imported here: the planner runs transactions, which import the dispatcher and so this.
    from dhr.record.ingest import ingest

    lines = split_lines(body, line_limit(ctx.settings.max_bundle_entries))
    pending = validate_pool.aside(ctx.settings, len(lines))
    entries, problems = parse_lines(lines, pending)
    try:
        if problems:
            raise _bad_lines(_with_verdicts(problems, pending), len(lines))
        # The pool's verdicts are waited for just before the commit (the write overlaps them).
        if pending is not None:
            before_commit(ctx.repo.conn, lambda: _raise_invalid(pending, len(lines)))
        _, outcome = ingest(ctx, entries, entity)
    except FhirError as exc:
        raise _at_line(exc) from None
    finally:
        ctx.audit.gather()
    return ImportResult(len(entries), outcome)


def _with_verdicts(
    problems: list[tuple[int, FhirError]], pending: validate_pool.Pending | None
) -> list[tuple[int, FhirError]]:
    """The lines the request found bad, with those the pool found invalid, in line order."""
    if pending is None:
        return problems
    bad = {number for number, _ in problems}
    found = [(i + 1, exc) for i, exc in pending.failures().items() if i + 1 not in bad]
    return sorted(problems + found, key=lambda p: p[0])


def _raise_invalid(pending: validate_pool.Pending | None, total: int) -> None:
    if pending is not None and (found := _with_verdicts([], pending)):
        raise _bad_lines(found, total)


# -- lines -----------------------------------------------------------------------------------


def split_lines(body: bytes, limit: int) -> list[tuple[int, bytes]]:
    """The non-blank lines with their numbers (from 1); none or too many is a 400/413."""
    lines = [(n, raw.strip()) for n, raw in enumerate(body.split(b"\n"), start=1)]
    lines = [(n, raw) for n, raw in lines if raw]
    if not lines:
        raise FhirError(400, "invalid", "The body has no resources (one per line)", "import-empty")
    if len(lines) > limit:
        raise FhirError(
            413,
            "too-costly",
            f"The body has {len(lines)} resources; $import takes at most {limit} per request",
            "import-too-many-lines",
        )
    return lines


def parse_lines(
    lines: list[tuple[int, bytes]], pending: validate_pool.Pending | None = None
) -> tuple[list[BundleEntry], list[tuple[int, FhirError]]]:
    """One POST entry per line, and the lines found bad. With ``pending`` the lines are only
    checked for JSON, ``resourceType`` and ``id`` here and validated in the pool."""
    entries: list[BundleEntry] = []
    problems: list[tuple[int, FhirError]] = []
    seen: dict[str, int] = {}
    for number, raw in lines:
        try:
            resource = jsonio.parse_object(raw, "line")
            if pending is None:
                res_type = validate_resource(resource)
            else:
                res_type = resource_type_of(resource)
                check_resource_id(res_type, resource)
                pending.add(number - 1, raw, None)
        except FhirError as exc:
            problems.append((number, exc))
            continue
        rid = resource.get("id")
        if isinstance(rid, str):
            first = seen.setdefault(f"{res_type}/{rid}", number)
            if first != number:
                message = (
                    f"{res_type}/{rid} repeats line {first}; each resource may appear once "
                    "per import"
                )
                problems.append((number, FhirError(400, "invalid", message, "import-duplicate")))
                continue
        entry = BundleEntry(number - 1, "POST", res_type, None, resource, {}, validated=True)
        entries.append(entry)
    return entries, problems


def _bad_lines(problems: list[tuple[int, FhirError]], total: int) -> FhirError:
    """One error listing every bad line (up to MAX_ISSUES issues)."""
    issues: list[Issue] = []
    listed = 0
    for number, exc in problems:
        if len(issues) >= MAX_ISSUES:
            break
        listed += 1
        for issue in exc.issues[: MAX_ISSUES - len(issues)]:
            issues.append(_line_issue(number, issue))
    if listed < len(problems):
        rest = problems[listed:]
        more = ", ".join(str(n) for n, _ in rest[:20]) + (", ..." if len(rest) > 20 else "")
        issues.append(Issue("error", "invalid", f"{len(rest)} more bad lines not listed: {more}"))
    status = 400 if any(exc.status == 400 for _, exc in problems) else problems[0][1].status
    head = f"{len(problems)} of {total} lines are not valid; nothing was imported"
    code = "invalid" if status == 400 else "processing"
    return FhirError(status, code, head, "import-invalid-lines", (), tuple(issues))


def _line_issue(number: int, issue: Issue) -> Issue:
    where = f"line[{number}]"
    expression = tuple(_line_path(where, e) for e in issue.expression) or (where,)
    text = _PARSER_LINE.sub(r"column \1", issue.diagnostics)  # a line is one line of JSON
    return Issue(
        issue.severity,
        issue.code,
        f"line {number}: {text}",
        expression,
        issue.message_code,
    )


def _line_path(where: str, expression: str) -> str:
    """At line 3: ``Patient.name[0]`` -> ``line[3].name[0]``, ``resourceType`` ->
    ``line[3].resourceType``."""
    head, dot, rest = expression.partition(".")
    if head[:1].isupper() and "[" not in head:
        return f"{where}.{rest}" if dot else where
    return f"{where}.{expression}"


def _at_line(exc: FhirError) -> FhirError:
    """The ingest's error restated with lines instead of ``Bundle.entry[n]``."""

    def line_text(m: re.Match[str]) -> str:
        kind = f" ({m.group(2)})" if m.group(2) else ""
        return f"line {int(m.group(1)) + 1}{kind}"

    def line_expr(text: str) -> str:
        return _ENTRY.sub(lambda m: f"line[{int(m.group(1)) + 1}]", text)

    def restate(text: str) -> str:
        text = text.replace("Transaction failed at", "The import failed at")
        return _ENTRY.sub(line_text, text)

    extra = tuple(
        Issue(
            i.severity,
            i.code,
            restate(i.diagnostics),
            tuple(line_expr(e) for e in i.expression),
            i.message_code,
        )
        for i in exc.extra_issues
    )
    return FhirError(
        exc.status,
        exc.code,
        restate(exc.diagnostics),
        exc.message_code,
        tuple(dict.fromkeys(line_expr(e) for e in exc.expression)),
        extra,
        exc.headers,
    )


# -- audit -----------------------------------------------------------------------------------


# -- the answer ------------------------------------------------------------------------------


def counts(result: ImportResult) -> dict[str, int]:
    out = result.outcome
    return {
        "total": result.lines,
        "created": len(out.created),
        "updated": len(out.updated),
        "unchanged": len(out.unchanged),
        "deleted": len(out.deleted),
    }


def summary_text(result: ImportResult) -> str:
    n = counts(result)
    provenance = ", ".join(f"Provenance/{p}" for p in result.outcome.provenance)
    return (
        f"{n['total']} resources: {n['created']} created, {n['updated']} updated, "
        f"{n['unchanged']} unchanged, {n['deleted']} deleted; "
        f"Provenance: {provenance or 'none (nothing changed)'}"
    )


def outcome_resource(result: ImportResult) -> dict[str, Any]:
    return operation_outcome(
        [Issue("information", "informational", summary_text(result), (), "import-complete")]
    )


def parameters(result: ImportResult, summary: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "valueInteger": value} for name, value in counts(result).items()
    ]
    params += [
        {"name": "provenance", "valueReference": {"reference": f"Provenance/{p}"}}
        for p in result.outcome.provenance
    ]
    params.append({"name": "outcome", "resource": summary})
    return {"resourceType": "Parameters", "parameter": params}
