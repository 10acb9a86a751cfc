"""Unified-record ingest: two sources send overlapping Synthea patients; throughput and linkage.

Usage: ``.venv/bin/python bench/ingest.py [--engine sqlite|postgresql|both]
[--database-url postgresql+psycopg://USER@HOST:PORT/DB] [--all] [--http] [--no-import]``.
Each run uses throwaway databases: a temporary SQLite file (the default), or
``dhr_bench_<random>`` created on the PostgreSQL server of ``--database-url`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; the named database itself is never
touched) and dropped afterwards.

Data: the Synthea (https://synthetichealth.github.io/synthea/) transaction Bundles in
``../shared/data/synthea-r4-bundles-100-smallest.tar.gz`` (``--all``: the 617 set), each Patient
given a valid NHS number (Modulus 11, https://www.datadictionary.nhs.uk/attributes/nhs_number.html,
deterministic, 999 test range). Two registered sources (ARCHITECTURE.md "The unified record"),
A (EMIS) and B (TPP), each a backend client: half of the patients are sent by both (for B the
Bundle's ids and fullUrls are rewritten to B's own, so they are different local records of the
same person), the other half by one source only, alternately A and B.

1. Transactions (https://hl7.org/fhir/R4/http.html#transaction): every Bundle is POSTed through
   :func:`dhr.api.dispatch.handle` as :func:`dhr.access.system.source_principal` (``--http``:
   through uvicorn on loopback with the sources' real Backend Services tokens).
2. ``$import``: the same resources, into a fresh database, as ``POST /fhir/$import`` bodies of
   ``application/fhir+ndjson`` (one resource per line, the source's own ids, references
   ``Type/<local id>``), one request per source and chunk of Bundles. A 4xx/5xx answer (not
   implemented yet) prints "n/a".

Printed: resources/s, the ``fhir.resources`` R4B validation-only rate on the same resources in
the same run (measured just before and just after each load, as ``bench/search.py`` does), the
ratio (targets >= 0.4 for transactions, >= 0.6 for ``$import``; the server's default validation
workers, ADR 0011, with the same loads validated in-line beside them as info) and the linkage:
for every NHS number sent by both sources, exactly one master Patient
(``_tag=record-role|master``) whose ``$everything``
(https://hl7.org/fhir/R4/patient-operation-everything.html) holds every patient-compartment
resource both sources sent (target 100%).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402
import uvicorn  # noqa: E402
from rest import PG_URL, free_port, postgres_answers  # noqa: E402
from search import print_table  # noqa: E402
from search_data import ALL, SMALL, extract  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from dhr.access.system import (  # noqa: E402
    cli_principal,
    record_service_principal,
    source_principal,
)
from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest, FhirResponse  # noqa: E402
from dhr.app import create_app  # noqa: E402
from dhr.auth import clients  # noqa: E402
from dhr.auth.model import ClientKind  # noqa: E402
from dhr.auth.token_cli import new_key_pair, request_token  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.demo_record import nhs_test_numbers  # noqa: E402
from dhr.fhir.types import model_class  # noqa: E402
from dhr.record.sources import register_source  # noqa: E402
from dhr.record.vocab import NHS_NUMBER_SYSTEM, RECORD_ROLE_SYSTEM, ROLE_MASTER  # noqa: E402
from dhr.search.compartment import compartment  # noqa: E402
from dhr.settle import settle  # noqa: E402
from dhr.store import db  # noqa: E402

Resource = dict[str, Any]
TX_TARGET = 0.4
IMPORT_TARGET = 0.6
LINK_TARGET = 100.0
PROGRESS = 100  # Bundles per progress line (long runs)
IMPORT_CHUNK = 10  # Bundles per $import request, at most
IMPORT_BYTES = 8 * 1024 * 1024  # NDJSON per $import request, about (max_body_bytes is 16 MiB)
FHIR_JSON = {"content-type": "application/fhir+json"}
NDJSON = {"content-type": "application/fhir+ndjson"}
B_NAMESPACE = uuid.UUID("0d5e7c1a-3b6f-4e8d-9a21-7c4b5e6f8a90")


@dataclass(frozen=True)
class BenchSource:
    source_id: str
    client_id: str
    supplier: str
    ods: str


SOURCES = (
    BenchSource("bench-a", "bench-a-system", "EMIS", "A81001"),
    BenchSource("bench-b", "bench-b-system", "TPP", "B82005"),
)


@dataclass
class Sent:
    """One Bundle one source sends, and the server ids its entries got."""

    source: BenchSource
    nhs: str
    bundle: Resource
    server_ids: list[str] = field(default_factory=list)  # "Type/id" per entry (transactions)


# -- data -------------------------------------------------------------------------------------


def with_nhs_number(bundle: Resource, nhs: str) -> Resource:
    for entry in bundle["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Patient":
            r["identifier"] = [
                {"system": NHS_NUMBER_SYSTEM, "value": nhs},
                *r.get("identifier", []),
            ]
    return bundle


def as_source_b(bundle: Resource) -> Resource:
    """B's own copy: every id and fullUrl uuid (and the references to them) replaced."""
    text = orjson.dumps(bundle).decode()
    for entry in bundle["entry"]:
        old = entry["resource"]["id"]
        text = text.replace(old, str(uuid.uuid5(B_NAMESPACE, old)))
    out: Resource = orjson.loads(text)
    return out


def has_patient(bundle: Resource) -> bool:
    return any(e["resource"]["resourceType"] == "Patient" for e in bundle["entry"])


def plan(files: list[Path]) -> list[Sent]:
    """Who sends what: even-numbered patients by both sources, the rest alternately. Bundles
    without a Patient (Synthea's shared hospital and practitioner lists) are sent by A first."""
    bundles = [orjson.loads(path.read_bytes()) for path in files]
    shared = [b for b in bundles if not has_patient(b)]
    people = [b for b in bundles if has_patient(b)]
    numbers = nhs_test_numbers(len(people), start=999_100_001)
    a, b = SOURCES
    out = [Sent(a, "", bundle) for bundle in shared]
    for i, (bundle, nhs) in enumerate(zip(people, numbers, strict=True)):
        with_nhs_number(bundle, nhs)
        if i % 2 == 0:
            out += [Sent(a, nhs, bundle), Sent(b, nhs, as_source_b(bundle))]
        else:
            out.append(Sent(a if i % 4 == 1 else b, nhs, bundle))
    return out


def ndjson_lines(bundle: Resource) -> list[bytes]:
    """The Bundle's resources with ``urn:uuid`` references made ``Type/<local id>``."""
    text = orjson.dumps([e["resource"] for e in bundle["entry"]]).decode()
    for entry in bundle["entry"]:
        r = entry["resource"]
        text = text.replace(f'"{entry["fullUrl"]}"', f'"{r["resourceType"]}/{r["id"]}"')
    return [orjson.dumps(r) for r in orjson.loads(text)]


# -- databases and sources --------------------------------------------------------------------


@contextlib.contextmanager
def throwaway(engine_name: str, server_url: str) -> Iterator[str]:
    """A temporary SQLite file, or a private database on ``server_url``'s PostgreSQL."""
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dhr-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite"
        return
    name = f"dhr_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def open_services(
    url: str, data_dir: Path, workers: int | None = None
) -> tuple[Services, dict[str, Resource]]:
    """A migrated database with both sources registered; their private keys by client id.
    ``workers``: validation processes (ADR 0011; None: the server's default, 0: in-line)."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    extra = {} if workers is None else {"validation_workers": workers}
    settings = Settings(database_url=url, data_dir=data_dir, **extra)
    services = Services(settings, engine)
    # What the server does once started (validation workers, gc.freeze); timing starts once
    # its workers are up, as a started server's would be.
    settle(settings, wait_seconds=120)
    keys: dict[str, Resource] = {}
    for s in SOURCES:
        private, public = new_key_pair("RS384")
        keys[s.client_id] = private
        clients.register_client(
            engine,
            client_id=s.client_id,
            name=f"bench source {s.source_id}",
            kind=ClientKind.BACKEND,
            scopes="system/*.cruds",
            organisation=s.ods,
            jwks=public,
        )
        with db.unit_of_work(engine, write=True) as conn:
            register_source(
                conn,
                source_id=s.source_id,
                name=f"bench source {s.source_id}",
                supplier=s.supplier,
                ods_code=s.ods,
                client_id=s.client_id,
                identifier_systems=("https://github.com/synthetichealth/synthea",),
            )
    return services, keys


# -- sending ----------------------------------------------------------------------------------

Send = Callable[[BenchSource, str, bytes, dict[str, str]], FhirResponse]


def in_process(services: Services) -> Send:
    principals = {s.client_id: source_principal(s.client_id, "bench") for s in SOURCES}

    def send(source: BenchSource, path: str, body: bytes, headers: dict[str, str]) -> FhirResponse:
        request = FhirRequest("POST", path, headers=headers, body=body)
        return handle(services, request, principals[source.client_id])

    return send


@contextlib.contextmanager
def over_http(services: Services, keys: dict[str, Resource]) -> Iterator[Send]:
    """uvicorn on loopback; each source sends with its own Backend Services token."""
    port = free_port()
    settings = services.settings.model_copy(
        update={"port": port, "base_url": f"http://127.0.0.1:{port}/fhir"}
    )
    app = create_app(settings, services.engine, migrate=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        tokens = {}
        for s in SOURCES:
            got = request_token(
                f"{settings.auth_base}/token", s.client_id, keys[s.client_id], "system/*.cruds"
            )
            got.raise_for_status()
            tokens[s.client_id] = got.json()["access_token"]
        with httpx.Client(base_url=settings.fhir_base + "/", timeout=600) as http:

            def send(
                source: BenchSource, path: str, body: bytes, headers: dict[str, str]
            ) -> FhirResponse:
                auth = {"authorization": f"Bearer {tokens[source.client_id]}"}
                resp = http.post(path, content=body, headers={**headers, **auth})
                return FhirResponse(resp.status_code, body=resp.content)

            yield send
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Timed:
    """Seconds spent sending, and validating the same resources with ``fhir.resources`` R4B
    just before each request (interleaved, so a noisy neighbour slows both alike)."""

    count: int = 0
    send: float = 0.0
    validate: float = 0.0

    def rates(self) -> tuple[float, float]:
        return self.count / self.send, self.count / self.validate


def validate(resources: list[Resource]) -> float:
    started = time.perf_counter()
    for r in resources:
        model_class(r["resourceType"]).model_validate(r)
    return time.perf_counter() - started


def send_transactions(send: Send, work: list[Sent]) -> Timed:
    """POST every Bundle (recording the server ids its entries got)."""
    timed = Timed()
    for i, sent in enumerate(work):
        body = orjson.dumps(sent.bundle)
        resources = [e["resource"] for e in sent.bundle["entry"]]
        timed.validate += validate(resources)
        started = time.perf_counter()
        resp = send(sent.source, "", body, FHIR_JSON)
        timed.send += time.perf_counter() - started
        timed.count += len(resources)
        reply = resp.body_json() or {}
        if resp.status != 200:
            raise RuntimeError(f"transaction: {resp.status} {str(reply)[:500]}")
        sent.server_ids = [
            "/".join(e["response"]["location"].split("/_history/")[0].split("/")[-2:])
            for e in reply["entry"]
        ]
        if len(work) > PROGRESS and (i + 1) % PROGRESS == 0:
            print(f"  {i + 1}/{len(work)} Bundles, {timed.count / timed.send:,.0f}/s", flush=True)
    return timed


def import_bodies(work: list[Sent]) -> Iterator[tuple[BenchSource, list[bytes]]]:
    """Per source, NDJSON lines of up to IMPORT_CHUNK Bundles and IMPORT_BYTES (a resource
    once per body: Synthea repeats its Organizations and Practitioners)."""
    for source in SOURCES:
        lines: dict[str, bytes] = {}
        size = bundles = 0
        for sent in (s for s in work if s.source == source):
            for e, line in zip(sent.bundle["entry"], ndjson_lines(sent.bundle), strict=True):
                if (
                    lines.setdefault(f"{e['resource']['resourceType']}/{e['resource']['id']}", line)
                    is line
                ):
                    size += len(line) + 1
            bundles += 1
            if bundles >= IMPORT_CHUNK or size >= IMPORT_BYTES:
                yield source, list(lines.values())
                lines, size, bundles = {}, 0, 0
        if lines:
            yield source, list(lines.values())


def send_imports(send: Send, work: list[Sent]) -> tuple[Timed, str | None]:
    """POST the ``$import`` bodies; why not, when one is refused."""
    timed = Timed()
    for source, lines in import_bodies(work):
        resources = [orjson.loads(line) for line in lines]
        timed.validate += validate(resources)
        count = len(resources)
        del resources  # the client's copies, not the server's: gone before the request
        body = b"\n".join(lines) + b"\n"
        started = time.perf_counter()
        resp = send(source, "$import", body, NDJSON)
        timed.send += time.perf_counter() - started
        timed.count += count
        if resp.status >= 300:
            return timed, f"{resp.status} {str(resp.body_json())[:200]}"
    return timed, None


# -- linkage ----------------------------------------------------------------------------------


def get_all(services: Services, url: str, principal: Any) -> list[Resource]:
    """Every entry of a search or ``$everything``, following ``next`` links."""
    base = services.settings.fhir_base + "/"
    out: list[Resource] = []
    next_url: str | None = url
    while next_url:
        resp = handle(services, FhirRequest.from_url("GET", next_url), principal)
        if resp.status != 200:
            raise RuntimeError(f"GET {next_url}: {resp.status} {str(resp.body_json())[:300]}")
        body = resp.body_json() or {}
        out += [e["resource"] for e in body.get("entry", []) if "resource" in e]
        link = next((x["url"] for x in body.get("link", []) if x["relation"] == "next"), None)
        next_url = link[len(base) :] if link and link.startswith(base) else None
    return out


def in_compartment(resource: Resource) -> bool:
    rtype = resource["resourceType"]
    return rtype != "Patient" and bool(compartment("Patient").params(rtype))


def linkage(services: Services, work: list[Sent], by_ids: bool) -> tuple[int, int, list[str]]:
    """(NHS numbers sent by both, of them linked completely, problems). ``by_ids``: expect the
    transactions' server ids; otherwise count each source's resources by ``meta.source``.

    Read as the record service, which keeps the unified record and so sees all of it: a
    source sees only what the consent policy lets it (its own records, and its patients' when
    it acts for an organisation), which would hide the other source's half of a linked record.
    """
    reader = record_service_principal()
    shared: dict[str, list[Sent]] = {}
    for sent in work:
        if sent.nhs:
            shared.setdefault(sent.nhs, []).append(sent)
    both = {n: s for n, s in shared.items() if len(s) == 2}
    good, problems = 0, []
    for nhs, sents in both.items():
        url = (
            f"Patient?identifier={NHS_NUMBER_SYSTEM}|{nhs}&_tag={RECORD_ROLE_SYSTEM}|{ROLE_MASTER}"
        )
        masters = get_all(services, url, reader)
        if len(masters) != 1:
            problems.append(f"{nhs}: {len(masters)} masters")
            continue
        got = get_all(services, f"Patient/{masters[0]['id']}/$everything?_count=1000", reader)
        if by_ids:
            have = {f"{r['resourceType']}/{r['id']}" for r in got}
            want = {
                sid
                for s in sents
                for sid, e in zip(s.server_ids, s.bundle["entry"], strict=True)
                if in_compartment(e["resource"])
            }
            missing = len(want - have)
        else:
            have_n: dict[str, int] = {}
            for r in got:
                if in_compartment(r):
                    src = str((r.get("meta") or {}).get("source"))
                    have_n[src] = have_n.get(src, 0) + 1
            missing = 0
            for s in sents:
                n = sum(1 for e in s.bundle["entry"] if in_compartment(e["resource"]))
                missing += max(0, n - have_n.get(f"urn:dhr:source:{s.source.source_id}", 0))
        if missing:
            problems.append(f"{nhs}: {missing} resources outside the master's compartment")
        else:
            good += 1
    return len(both), good, problems


# -- report -----------------------------------------------------------------------------------


def ratio_row(label: str, timed: Timed, target: float) -> tuple[str, ...]:
    rate, floor = timed.rates()
    ratio = rate / floor
    verdict = "PASS" if ratio >= target else "FAIL"
    return (label, f"{rate:,.0f}/s", f"{floor:,.0f}/s", f"{ratio:.2f}", f">= {target}", verdict)


def link_row(label: str, result: tuple[int, int, list[str]]) -> tuple[str, ...]:
    total, good, problems = result
    pct = 100.0 * good / total if total else 0.0
    for p in problems[:5]:
        print(f"  linkage problem: {p}")
    verdict = "PASS" if pct >= LINK_TARGET else "FAIL"
    return (label, f"{good}/{total}", "", f"{pct:.1f}%", f"{LINK_TARGET:.0f}%", verdict)


@contextlib.contextmanager
def profiled(sort: str | None) -> Iterator[None]:
    """cProfile the block and print its top 40 functions (``--profile``)."""
    if sort is None:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        pstats.Stats(profiler).sort_stats(sort).print_stats(40)


@contextlib.contextmanager
def fresh(
    name: str, args: argparse.Namespace, keydir: Path, workers: int | None = None
) -> Iterator[tuple[Services, Send]]:
    """A fresh database with the sources registered, and how to send to it."""
    with throwaway(name, args.database_url) as url:
        services, keys = open_services(url, keydir, workers)
        try:
            with contextlib.ExitStack() as stack:
                send = (
                    stack.enter_context(over_http(services, keys))
                    if args.http
                    else in_process(services)
                )
                yield services, send
        finally:
            services.engine.dispose()


def bench_engine(name: str, work: list[Sent], args: argparse.Namespace) -> None:
    rows: list[tuple[str, ...]] = []
    count = sum(len(s.bundle["entry"]) for s in work)
    how = "HTTP" if args.http else "handle()"
    started = time.perf_counter()
    validate([e["resource"] for s in work[:20] for e in s.bundle["entry"]])  # warm: lazy
    with tempfile.TemporaryDirectory(prefix="dhr-bench-keys-") as tmp:
        keydir = Path(tmp)
        print(f"[{name}] {len(work)} transaction Bundles, {count:,} resources ...", flush=True)
        with fresh(name, args, keydir) as (services, send):
            with profiled(args.profile):
                timed = send_transactions(send, work)
            rows.append(ratio_row(f"transactions ({how})", timed, TX_TARGET))
            rows.append(link_row("linkage after transactions", linkage(services, work, True)))
        if args.baseline:
            print(f"[{name}] the same Bundles as the CLI principal (no source) ...", flush=True)
            with fresh(name, args, keydir) as (services, _):
                cli = cli_principal("bench")

                def plain(
                    _: BenchSource, path: str, body: bytes, h: dict[str, str]
                ) -> FhirResponse:
                    return handle(services, FhirRequest("POST", path, headers=h, body=body), cli)

                timed = send_transactions(plain, work)
                label = "transactions, not a source (handle())"
                rows.append((*ratio_row(label, timed, TX_TARGET)[:5], "info"))
        if not args.no_import:
            print(f"[{name}] $import of the same resources into a fresh database ...", flush=True)
            with fresh(name, args, keydir) as (services, send):
                with profiled(args.profile):
                    timed, why = send_imports(send, work)
                if why is not None:
                    rows.append(("$import", "n/a", "", "", f">= {IMPORT_TARGET}", why[:70]))
                else:
                    rows.append(ratio_row(f"$import NDJSON ({how})", timed, IMPORT_TARGET))
                    rows.append(link_row("linkage after $import", linkage(services, work, False)))
        if not args.no_inline:
            # The same two loads with validation in the request's own process (ADR 0011): what
            # one core does, beside the figures above, which use the validation workers too.
            print(f"[{name}] again, validating in-line (no workers) ...", flush=True)
            with fresh(name, args, keydir, workers=0) as (services, send):
                timed = send_transactions(send, work)
            rows.append(
                (*ratio_row("transactions, in-line validation", timed, TX_TARGET)[:5], "info")
            )
            if not args.no_import:
                with fresh(name, args, keydir, workers=0) as (services, send):
                    timed, why = send_imports(send, work)
                if why is None:
                    label = "$import, in-line validation"
                    rows.append((*ratio_row(label, timed, IMPORT_TARGET)[:5], "info"))
    print(f"\n{name} ({time.perf_counter() - started:.0f}s)")
    header = ("measure", "DHR", "R4B validation", "ratio", "target", "verdict")
    print_table(header, rows, {0, 5})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument(
        "--database-url", default=None, help="PostgreSQL server to create a private database on"
    )
    parser.add_argument("--all", action="store_true", help="the 617 Bundles (default: 100)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N Bundle files")
    parser.add_argument("--http", action="store_true", help="through uvicorn with real tokens")
    parser.add_argument("--no-import", action="store_true", help="skip the $import pass")
    parser.add_argument(
        "--no-inline",
        action="store_true",
        help="skip the info runs that validate in the request's own process (no workers)",
    )
    parser.add_argument(
        "--profile",
        choices=["cumulative", "tottime"],
        default=None,
        help="cProfile each phase, sorted so",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also the same Bundles as the CLI principal (no source, no ingest planner): info",
    )
    args = parser.parse_args()
    choice = args.engine or ("postgresql" if args.database_url else "sqlite")
    args.database_url = args.database_url or PG_URL
    engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in engines and not postgres_answers(args.database_url):
        print(f"PostgreSQL does not answer at {args.database_url}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dhr-bench-data-") as tmp:
        files = extract(ALL if args.all else SMALL, Path(tmp))[: args.limit]
        work = plan(files)
    items = [e["resource"] for s in work for e in s.bundle["entry"]]
    senders: dict[str, set[str]] = {}
    for sent in work:
        if sent.nhs:
            senders.setdefault(sent.nhs, set()).add(sent.source.source_id)
    both = sum(1 for v in senders.values() if len(v) == 2)
    print(
        f"data: {len(files)} Synthea Bundles, {len(senders)} patients, {both} sent by both "
        f"sources; {len(work)} Bundles sent, {len(items):,} resources"
    )
    for name in engines:
        bench_engine(name, work, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
