"""``dhr load PATH...``: FHIR JSON, Bundle and NDJSON files through the API's write path.

Every resource goes through :func:`dhr.api.dispatch.handle`, exactly as an HTTP request would,
as the explicit CLI system principal (:func:`dhr.access.system.cli_principal`, ``system/*.cruds``),
so the load is enforced and audited like any client's writes:

* a ``transaction`` or ``batch`` Bundle is posted to the base as it is
  (https://hl7.org/fhir/R4/http.html#transaction); the per-entry ``response.status`` of the
  answer says which entries loaded;
* any other Bundle whose entries are the content (``collection``, ``searchset``, ``history``) is
  loaded entry by entry; a ``document`` or ``message`` Bundle is stored as one resource
  (https://hl7.org/fhir/R4/bundle.html#bundle-unique);
* a single resource is an update (``PUT Type/id``, https://hl7.org/fhir/R4/http.html#update) when
  it carries an id, so that loading twice does not duplicate, else a create (``POST Type``);
* NDJSON (https://hl7.org/fhir/uv/bulkdata/export.html#file-format) is one resource per line,
  treated like a single resource; a bad line is reported and the rest of the file still loads.

``dhr load --source SOURCE_ID`` loads as that registered, active source system (ARCHITECTURE.md
"The unified record"): it runs as :func:`dhr.access.system.source_principal` of the source's
backend client instead of the CLI principal, so every write is attributed to the source
(``meta.source``, controller tags, Provenance) and planned by the ingest planner
(:mod:`dhr.record.ingest`: the source's ids mapped, patients linked by NHS number):

* a transaction Bundle is one ingest, a batch Bundle one ingest per entry (posted as above);
* an NDJSON file is one ``$import`` (:mod:`dhr.operations.bulk_import`): one ingest of the
  whole file, all or nothing, so lines may reference lines further down; a bad line fails the
  file (every bad line is listed, and every line of the file counts as failed);
* a ``collection``/``searchset``/``history`` Bundle's resources likewise form one ``$import``
  (errors name ``entry[n]``);
* a single resource is a create (``POST Type``) whose id stays the source's own: the planner
  maps it (an update when the source sent it before), never clashing with the server's ids.

Exit code: 0 when everything loaded, 1 when some entries failed, 2 for a usage error.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine

from dhr.access.system import cli_principal, source_principal
from dhr.api.dispatch import Services, handle
from dhr.api.http import FHIR_JSON
from dhr.api.message import FhirRequest, FhirResponse
from dhr.auth.model import Principal
from dhr.config import Settings
from dhr.errors import FhirError
from dhr.fhir import jsonio
from dhr.fhir.ids import is_valid_id
from dhr.interactions import bundle  # noqa: F401 - registers the batch/transaction processor
from dhr.loading.files import UsageError, discover, kind_of, ndjson_lines, read_all
from dhr.loading.progress import Progress
from dhr.operations.bulk_import import FHIR_NDJSON
from dhr.record.sources import Source
from dhr.settle import settle

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

POSTED_AS_IS = frozenset({"transaction", "batch"})
ENTRY_BY_ENTRY = frozenset({"collection", "searchset", "history"})
_HEADERS = {"content-type": FHIR_JSON, "prefer": "return=minimal"}


@dataclass(frozen=True)
class LoadError:
    """One failed entry: where it was and what the server said."""

    path: str
    where: str  # "line 12", "entry[3]", or "file"
    status: int | None
    diagnostics: str

    def __str__(self) -> str:
        status = f" {self.status}" if self.status is not None else ""
        return f"{self.path} {self.where}:{status} {self.diagnostics}"


@dataclass
class LoadResult:
    """What a load did, for the summary and the exit code."""

    files: int = 0
    loaded: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[LoadError] = field(default_factory=list)
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.loaded / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILURES if self.failed or self.errors else EXIT_OK

    def summary(self) -> str:
        lines = [
            f"dhr load: {self.files} file(s), {self.loaded} resource(s) loaded, "
            f"{self.failed} failed, {self.seconds:.2f}s, {self.rate:,.1f} resources/s"
            + (" (interrupted)" if self.interrupted else "")
        ]
        if self.errors:
            lines.append(f"{len(self.errors)} error(s):")
            lines.extend(f"  {error}" for error in self.errors)
        return "\n".join(lines)


def outcome_text(outcome: Any) -> str:
    """The diagnostics of an OperationOutcome (or its issue codes when there are none)."""
    if not isinstance(outcome, dict):
        return "no OperationOutcome in the response"
    parts: list[str] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (
            details.get("text") if isinstance(details, dict) else None
        )
        parts.append(str(text or issue.get("code") or "error"))
    return "; ".join(parts) or "no diagnostics"


def _status_code(status: Any) -> int | None:
    head = str(status or "").strip().split(" ", 1)[0]
    return int(head) if head.isdigit() else None


class Loader:
    """Loads files into one server's database, counting and collecting errors."""

    def __init__(
        self, services: Services, progress: Progress, principal: Principal, as_source: bool = False
    ) -> None:
        self.services = services
        self.principal = principal
        self.as_source = as_source  # the principal is a source: ingest whole files ($import)
        self.progress = progress
        self.result = LoadResult()

    # -- files ---------------------------------------------------------------------------

    def load_file(self, path: Path) -> None:
        name = str(path)
        self.progress.start_file(name)
        try:
            if kind_of(path) == "ndjson" and self.as_source:
                raw = read_all(path)
                self._import(raw, name, lambda n: f"line {n}")
            elif kind_of(path) == "ndjson":
                self._load_ndjson(path, name)
            else:
                self._load_json(path, name)
        except OSError as exc:  # unreadable, or a corrupt gzip stream
            self._fail(LoadError(name, "file", None, f"cannot read the file: {exc}"))
        except EOFError as exc:
            self._fail(LoadError(name, "file", None, f"the gzip stream is truncated: {exc}"))
        self.result.files += 1
        self.progress.finish_file()

    def _load_ndjson(self, path: Path, name: str) -> None:
        for number, line in ndjson_lines(path):
            where = f"line {number}"
            try:
                resource = jsonio.parse_object(line, "line")
            except FhirError as exc:
                self._fail(LoadError(name, where, exc.status, exc.diagnostics))
                continue
            self._put_or_post(resource, name, where)

    def _load_json(self, path: Path, name: str) -> None:
        raw = read_all(path)
        try:
            data = jsonio.parse_object(raw, "file")
        except FhirError as exc:
            self._fail(LoadError(name, "file", exc.status, exc.diagnostics))
            return
        if data.get("resourceType") != "Bundle":
            self._put_or_post(data, name, "resource")
            return
        kind = data.get("type")
        if kind in POSTED_AS_IS:
            self._post_bundle(raw, data, name)
        elif kind in ENTRY_BY_ENTRY and self.as_source:
            self._import_entries(data, name)
        elif kind in ENTRY_BY_ENTRY:
            self._load_entries(data, name)
        else:
            self._put_or_post(data, name, "resource")

    # -- requests ------------------------------------------------------------------------

    def _put_or_post(self, resource: dict[str, Any], name: str, where: str) -> None:
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or not rtype.isalnum():
            self._fail(LoadError(name, where, 400, "The resource has no valid resourceType"))
            return
        rid = resource.get("id")
        if rid is None or self.as_source:  # a source's id is its own: the planner maps it
            req = FhirRequest("POST", rtype, headers=dict(_HEADERS), parsed_body=resource)
        elif isinstance(rid, str) and is_valid_id(rid):
            req = FhirRequest("PUT", f"{rtype}/{rid}", headers=dict(_HEADERS), parsed_body=resource)
        else:
            self._fail(
                LoadError(name, where, 400, f"{rtype}.id {str(rid)[:80]!r} is not a FHIR id")
            )
            return
        response = handle(self.services, req, self.principal)
        if response.status < 300:
            self._ok()
        else:
            self._fail(LoadError(name, where, response.status, _diagnostics(response)))

    def _load_entries(self, data: dict[str, Any], name: str) -> None:
        for where, resource in self._content(data, name):
            self._put_or_post(resource, name, where)

    def _content(self, data: dict[str, Any], name: str) -> list[tuple[str, dict[str, Any]]]:
        """The resources a content Bundle carries, with where they are (bad entries failed)."""
        entries = data.get("entry") or []
        if not isinstance(entries, list):
            self._fail(LoadError(name, "file", 400, "Bundle.entry is not a list"))
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        for index, entry in enumerate(entries):
            where = f"entry[{index}]"
            if not isinstance(entry, dict):
                self._fail(LoadError(name, where, 400, "The entry is not a JSON object"))
                continue
            search = entry.get("search")
            if isinstance(search, dict) and search.get("mode") == "outcome":
                continue  # a searchset's OperationOutcome about the search, not content
            resource = entry.get("resource")
            if resource is None and isinstance(entry.get("request"), dict):
                continue  # a history entry recording a deletion
            if not isinstance(resource, dict):
                self._fail(LoadError(name, where, 400, "The entry has no resource"))
                continue
            out.append((where, resource))
        return out

    def _import_entries(self, data: dict[str, Any], name: str) -> None:
        """A content Bundle's resources as one ``$import`` (one NDJSON line per resource)."""
        content = self._content(data, name)
        if not content:
            return
        raw = b"\n".join(jsonio.dumps(resource) for _, resource in content)
        self._import(raw, name, lambda n: content[n - 1][0] if 0 < n <= len(content) else "file")

    def _import(self, raw: bytes, name: str, where_of: Callable[[int], str]) -> None:
        """Post NDJSON to ``$import`` as the source: all lines load, or none (each bad one is
        reported where ``where_of(line number)`` says)."""
        lines = sum(1 for line in raw.split(b"\n") if line.strip())
        if not lines:
            return
        headers = {"content-type": FHIR_NDJSON, "prefer": "return=representation"}
        req = FhirRequest("POST", "$import", headers=headers, body=raw)
        response = handle(self.services, req, self.principal)
        body = response.body_json() if response.status < 300 else None
        if body is not None and body.get("resourceType") == "Parameters":
            self._ok(_total(body, lines))
            return
        errors = _import_errors(name, response, where_of)
        self._fail(errors[0], lines)
        for error in errors[1:]:
            self._fail(error, 0)

    def _post_bundle(self, raw: bytes, data: dict[str, Any], name: str) -> None:
        entries = data.get("entry") or []
        count = len(entries) if isinstance(entries, list) else 0
        req = FhirRequest("POST", "", headers=dict(_HEADERS), body=raw, parsed_body=data)
        response = handle(self.services, req, self.principal)
        body = response.body_json()
        if response.status >= 300 or not isinstance(body, dict) or body.get("type") is None:
            diagnostics = _diagnostics(response)
            self._fail(
                LoadError(name, f"{data.get('type')} Bundle", response.status, diagnostics),
                max(count, 1),
            )
            return
        answered = body.get("entry") or []
        for index, entry in enumerate(answered):
            reply = entry.get("response") if isinstance(entry, dict) else None
            reply = reply if isinstance(reply, dict) else {}
            status = _status_code(reply.get("status"))
            if status is not None and status < 300:
                self._ok()
            else:
                text = outcome_text(reply.get("outcome"))
                self._fail(LoadError(name, f"entry[{index}]", status, text))
        if len(answered) < count:
            missing = count - len(answered)
            self._fail(
                LoadError(name, "Bundle", response.status, f"{missing} entries got no response"),
                missing,
            )

    # -- counting ------------------------------------------------------------------------

    def _ok(self, entries: int = 1) -> None:
        self.result.loaded += entries
        self.progress.count(loaded=entries)

    def _fail(self, error: LoadError, entries: int = 1) -> None:
        self.result.errors.append(error)
        self.result.failed += entries
        self.progress.count(failed=entries)


_LINE = re.compile(r"^line\[(\d+)\]")
_LINE_PREFIX = re.compile(r"^line \d+: ")


def _total(parameters: dict[str, Any], default: int) -> int:
    for part in parameters.get("parameter") or []:
        if isinstance(part, dict) and part.get("name") == "total":
            value = part.get("valueInteger")
            return value if isinstance(value, int) else default
    return default


def _import_errors(
    name: str, response: FhirResponse, where_of: Callable[[int], str]
) -> list[LoadError]:
    """One LoadError per issue of a refused ``$import`` (at its line, else at the file)."""
    try:
        outcome = response.body_json()
    except ValueError:
        outcome = None
    issues = outcome.get("issue") if isinstance(outcome, dict) else None
    errors: list[LoadError] = []
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        expression = issue.get("expression") or [""]
        found = _LINE.match(str(expression[0]))
        where = where_of(int(found.group(1))) if found else "file"
        text = outcome_text({"issue": [issue]})
        if found:
            text = _LINE_PREFIX.sub("", text)
        errors.append(LoadError(name, where, response.status, text))
    return errors or [LoadError(name, "file", response.status, _diagnostics(response))]


def _diagnostics(response: FhirResponse) -> str:
    try:
        return outcome_text(response.body_json())
    except ValueError:
        return f"HTTP {response.status} without a readable OperationOutcome"


def load_files(
    services: Services,
    files: Iterable[Path],
    total: int,
    stderr: TextIO | None = None,
    principal: Principal | None = None,
    as_source: bool = False,
) -> LoadResult:
    """Load ``files`` one after another as ``principal`` (default: the CLI system principal;
    ``as_source``: it is a source system's); Ctrl-C stops after a partial summary."""
    progress = Progress(stderr or sys.stderr, total)
    loader = Loader(services, progress, principal or cli_principal(), as_source)
    started = time.perf_counter()
    try:
        for path in files:
            loader.load_file(path)
    except KeyboardInterrupt:
        loader.result.interrupted = True
    finally:
        progress.close()
        loader.result.seconds = time.perf_counter() - started
    return loader.result


def _migrate(engine: Engine, err: TextIO) -> None:
    """Bring the schema up to date (creating it in an empty database), quietly."""
    from dhr.store import db

    fresh = db.is_empty(engine)
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(logging.WARNING)
    try:
        db.upgrade(engine)
    finally:
        alembic_log.setLevel(level)
    if fresh:
        print(f"dhr load: created the schema in {engine.url.render_as_string()}", file=err)


def source_for_load(engine: Engine, source_id: str) -> Source | str:
    """The registered, active source ``source_id`` whose client may send, or why not."""
    from dhr.store.auth_client_store import client_row
    from dhr.store.source_store import get_source

    with engine.connect() as conn:
        source = get_source(conn, source_id)
        client = client_row(conn, source.client_id) if source is not None else None
    if source is None:
        return f"no source {source_id!r} is registered (see `dhr sources list`)"
    if not source.active:
        return f"source {source_id!r} is inactive"
    if client is None or not client._mapping["active"]:
        return f"the client {source.client_id!r} of source {source_id!r} is revoked"
    return source


def run_load(
    settings: Settings,
    paths: list[str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    source_id: str | None = None,
) -> int:
    """``dhr load``: migrate the database if needed, load every file (as source ``source_id``
    when given), print a summary."""
    from dhr.store import db

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if not paths:
        print("dhr load: name at least one file or directory", file=err)
        return EXIT_USAGE
    try:
        files = discover(paths)
    except UsageError as exc:
        print(f"dhr load: {exc}", file=err)
        return EXIT_USAGE
    if not files:
        print("dhr load: no .json or .ndjson files found under " + " ".join(paths), file=err)
        return EXIT_USAGE
    engine = db.engine_for(settings)
    try:
        _migrate(engine, err)
        principal = None
        if source_id is not None:
            source = source_for_load(engine, source_id)
            if isinstance(source, str):
                print(f"dhr load: {source}", file=err)
                return EXIT_USAGE
            principal = source_principal(source.client_id)
        services = Services(settings, engine)
        settle(settings)
        result = load_files(services, files, len(files), err, principal, source_id is not None)
        db.analyze(engine)
    finally:
        engine.dispose()
    print(result.summary(), file=out, flush=True)
    return result.exit_code
