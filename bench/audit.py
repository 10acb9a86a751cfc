"""What audit costs: throughput with audit on ÷ audit off, in the same run, on both engines.

Usage: ``.venv/bin/python bench/audit.py [--engine sqlite|postgresql|both] [--n N]
[--threads T] [--rounds R]``. Each engine gets a throwaway database (a temporary SQLite file;
``CREATE DATABASE dhr_bench_<random>`` on PostgreSQL, dropped afterwards), never the shared one.

Requests go through :func:`dhr.api.dispatch.handle` from ``T`` client threads at once (the
audit writer batches the events of concurrent requests into one commit, so one client would
not show how it behaves), as the command line's system principal. Two services share the
engine: one with the :class:`~dhr.audit.sink.DatabaseSink` (audit on: an AuditEvent per
interaction and patient; writes audited in their own transaction, reads through the group
commit) and one with the :class:`~dhr.audit.sink.NullSink` (audit off, the baseline). Measures
alternate off/on for ``R`` rounds and the best round of each counts (reads, a second or two a
round and the noisiest figure on a shared machine, ``--read-rounds``, default 6):

* create (``POST Type``, https://hl7.org/fhir/R4/http.html#create);
* read (``GET Type/id``, https://hl7.org/fhir/R4/http.html#read);
* search (``GET Observation?subject=Patient/x``: one event per patient in the page).

Target: on ÷ off >= 0.7 for each. The background chainer is not running here (it runs in the
server); ``dhr audit chain`` afterwards would link the events.

Over HTTP (unless ``--no-http``): the same creates and reads against a real server process
(``python -m dhr serve``, open access: ``DHR_AUTH_ENABLED=false``) started once with audit on
and once with it off (``DHR_AUDIT_ENABLED``) on the same database, ``T`` client threads in this
process. In-process, the GIL serialises the clients' CPU, so a 50 µs read pays the whole cost of
building and storing its AuditEvent; over HTTP the comparison is the one a client sees.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import orjson  # noqa: E402
from bench_data import dataset  # noqa: E402
from rest import (  # noqa: E402
    JSON_HEADERS,
    PG_URL,
    PRINCIPAL,
    postgres_answers,
    print_table,
    ratio_row,
    throwaway_database,
)
from sqlalchemy import Engine, text  # noqa: E402

from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest  # noqa: E402
from dhr.audit.sink import DatabaseSink, NullSink  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.store import db  # noqa: E402

TARGET = 0.7
Request = FhirRequest


def concurrently(
    services: Services, requests: list[Request], threads: int, expect: int
) -> tuple[float, list[str]]:
    """Requests per second with ``threads`` clients sharing ``requests``; and the Locations."""
    chunks = [requests[i::threads] for i in range(threads)]
    errors: list[str] = []
    locations: list[str] = []
    lock = threading.Lock()

    def client(chunk: list[Request]) -> None:
        for req in chunk:
            resp = handle(services, req, PRINCIPAL)
            if resp.status != expect:
                errors.append(f"{req.method} {req.path}: {resp.status} {resp.body_json()}")
                return
            location = resp.headers.get("Location")
            if location:
                with lock:
                    locations.append(location.split("/_history/")[0].split("/fhir/")[-1])

    workers = [threading.Thread(target=client, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    return len(requests) / seconds, locations


class ServerProcess:
    """``python -m dhr serve`` on its own port, open access, audit on or off."""

    def __init__(self, url: str, data_dir: Path, audit: bool) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.base = f"http://127.0.0.1:{port}/fhir"
        env = dict(
            os.environ,
            DHR_DATABASE_URL=url,
            DHR_BASE_URL=self.base,
            DHR_DATA_DIR=str(data_dir),
            DHR_AUTH_ENABLED="false",
            DHR_AUDIT_ENABLED="true" if audit else "false",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dhr", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/metadata", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def over_http(
    base: str, calls: list[tuple[str, str, bytes | None]], threads: int, expect: int
) -> tuple[float, list[str]]:
    """Requests per second of ``threads`` HTTP clients sharing ``calls``; and the Locations."""
    chunks = [calls[i::threads] for i in range(threads)]
    errors: list[str] = []
    locations: list[str] = []
    lock = threading.Lock()

    def client(chunk: list[tuple[str, str, bytes | None]]) -> None:
        with httpx.Client(base_url=base + "/", headers=JSON_HEADERS, timeout=60) as http:
            for method, path, body in chunk:
                resp = http.request(method, path, content=body)
                if resp.status_code != expect:
                    errors.append(f"{method} {path}: {resp.status_code} {resp.text[:200]}")
                    return
                location = resp.headers.get("location")
                if location:
                    with lock:
                        locations.append(location.split("/fhir/")[1].split("/_history")[0])

    workers = [threading.Thread(target=client, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(errors[0])
    return len(calls) / seconds, locations


def http_rows(
    url: str, args: argparse.Namespace, bodies: list[tuple[str, bytes]]
) -> list[tuple[str, ...]]:
    sample = bodies[: args.http_n]
    made: list[str] = []
    rates: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for audit in (False, True):
            server = ServerProcess(url, Path(args.data_dir), audit)
            try:
                calls = [("POST", t, b) for t, b in sample]
                over_http(server.base, calls[:20], args.threads, 201)  # warm
                got, locations = over_http(server.base, calls, args.threads, 201)
                rates.setdefault(("create", audit), []).append(got)
                made.extend(locations)
                reads: list[tuple[str, str, bytes | None]] = [
                    ("GET", p, None) for p in made[: args.http_n]
                ]
                got, _ = over_http(server.base, reads, args.threads, 200)
                rates.setdefault(("read", audit), []).append(got)
            finally:
                server.stop()
    return [
        ratio_row(
            f"HTTP {what:6}",
            max(rates[(what, True)]),
            "audit off",
            max(rates[(what, False)]),
            TARGET,
        )
        for what in ("create", "read")
    ]


def audit_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one())


def best_of(rounds: int, off: Callable[[], float], on: Callable[[], float]) -> tuple[float, float]:
    """Alternate baseline and audited runs; the best rate of each."""
    offs: list[float] = []
    ons: list[float] = []
    for _ in range(rounds):
        offs.append(off())
        ons.append(on())
    return max(ons), max(offs)


def bench_engine(name: str, args: argparse.Namespace) -> list[tuple[str, ...]]:
    _, singles, _ = dataset(args.n)
    bodies = [(r["resourceType"], orjson.dumps(r)) for r in singles]
    rows: list[tuple[str, ...]] = []
    with throwaway_database(name) as url:
        engine = db.make_engine(url)
        sink = DatabaseSink(engine)
        try:
            db.upgrade(engine)
            settings = Settings(database_url=url, data_dir=Path(args.data_dir))
            on = Services(settings, engine, sink)
            off = Services(settings.model_copy(update={"audit_enabled": False}), engine, NullSink())

            def creates() -> list[Request]:
                return [FhirRequest("POST", t, headers=JSON_HEADERS, body=b) for t, b in bodies]

            concurrently(off, creates()[:50], args.threads, 201)  # warm the validators
            made: list[str] = []

            def create(services: Services) -> float:
                got, locations = concurrently(services, creates(), args.threads, 201)
                made.extend(locations)
                return got

            created_on, created_off = best_of(args.rounds, lambda: create(off), lambda: create(on))
            rows.append(
                ratio_row("create  POST Type", created_on, "audit off", created_off, TARGET)
            )
            reads = [FhirRequest("GET", path) for path in made[: args.n]]

            def read(services: Services) -> float:
                return concurrently(services, reads, args.threads, 200)[0]

            read_on, read_off = best_of(args.read_rounds, lambda: read(off), lambda: read(on))
            rows.append(ratio_row("read    GET Type/id", read_on, "audit off", read_off, TARGET))
            patients = [p for p in made if p.startswith("Patient/")][: max(args.n // 10, 1)]
            searches = [
                FhirRequest.from_url("GET", f"Observation?subject={p}&_count=20") for p in patients
            ] * 3

            def search(services: Services) -> float:
                return concurrently(services, searches, args.threads, 200)[0]

            search_on, search_off = best_of(args.rounds, lambda: search(off), lambda: search(on))
            rows.append(
                ratio_row(
                    "search  GET Observation?subject", search_on, "audit off", search_off, TARGET
                )
            )
            if not args.no_http:
                rows += http_rows(url, args, bodies)
            print(f"{name}: {audit_rows(engine):,} audit events written", flush=True)
        finally:
            sink.close()
            engine.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--n", type=int, default=2000, help="resources to create and read")
    parser.add_argument("--threads", type=int, default=8, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=2, help="off/on rounds (best counts)")
    parser.add_argument(
        "--read-rounds", type=int, default=6, help="off/on rounds of the in-process reads"
    )
    parser.add_argument("--data-dir", default="/tmp/dhr-bench-audit")
    parser.add_argument("--http-n", type=int, default=1000, help="resources for the HTTP rows")
    parser.add_argument("--no-http", action="store_true", help="skip the server-process rows")
    args = parser.parse_args()
    pg = postgres_answers(PG_URL)
    choice = args.engine or ("both" if pg else "sqlite")
    engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in engines and not pg:
        print(f"PostgreSQL does not answer at {PG_URL}", file=sys.stderr)
        return 2
    for name in engines:
        started = time.perf_counter()
        rows = bench_engine(name, args)
        title = f"{name}: audit on ÷ audit off, {args.threads} client threads"
        print_table(f"{title} ({time.perf_counter() - started:.0f}s)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
