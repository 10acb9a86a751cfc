"""REST throughput of DHR against floors, on SQLite and PostgreSQL.

Usage: ``.venv/bin/python bench/rest.py [--engine sqlite|postgresql|both] [--n N] [--no-http]
[--profile create|read|transaction]``. Each engine gets a throwaway database (a temporary SQLite
file; ``CREATE DATABASE dhr_bench_<random>`` on PostgreSQL, dropped afterwards).

Measured through :func:`dhr.api.dispatch.handle` (the write path of the REST API and the loader):

* create (``POST Type``, https://hl7.org/fhir/R4/http.html#create) vs a floor of validating the
  same resources with ``fhir.resources`` R4B alone; target ratio >= 0.5;
* read (``GET Type/id``, https://hl7.org/fhir/R4/http.html#read) vs a floor of selecting the
  same stored bytes by primary key through a raw DBAPI connection; target ratio >= 0.5;
* transaction (100-entry Bundles, https://hl7.org/fhir/R4/http.html#transaction) vs a floor of
  inserting the same JSON bytes with plain SQL, one database transaction per Bundle (for
  information: the floor neither parses, validates nor indexes).

Resources come from ``../shared/data/synthea-r4-bundles-100-smallest.tar.gz`` beside the
repository when present (Synthea, https://synthetichealth.github.io/synthea/), else are generated.
HTTP figures (uvicorn on loopback, one client, sequential) are printed for information.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402
import uvicorn  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from dhr.access.system import cli_principal  # noqa: E402
from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest  # noqa: E402
from dhr.app import create_app  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.fhir.types import model_class  # noqa: E402
from dhr.store import db  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_data import Resource, dataset  # noqa: E402

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET = 0.5
JSON_HEADERS = {"content-type": "application/fhir+json"}
# Requests run as the command line's system principal (system/*.cruds), as ``dhr load`` does.
PRINCIPAL = cli_principal("bench", organisation="B0001")


# -- databases ----------------------------------------------------------------------------


def postgres_answers(url: str) -> bool:
    try:
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        psycopg.connect(libpq, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


@contextmanager
def throwaway_database(engine_name: str) -> Iterator[str]:
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dhr-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.sqlite"
        return
    name = f"dhr_bench_{uuid.uuid4().hex[:10]}"
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- measurements -------------------------------------------------------------------------


def rate(count: int, func: Callable[[], None], profile: bool = False) -> float:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    func()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        print(text.getvalue())
    return count / seconds


def validation_floor(resources: list[Resource]) -> float:
    def run() -> None:
        for r in resources:
            model_class(r["resourceType"]).model_validate(r)

    return rate(len(resources), run)


def create_via_handle(
    services: Services, bodies: list[tuple[str, bytes]], ids: list[tuple[str, str]], profile: bool
) -> float:
    def run() -> None:
        for rtype, body in bodies:
            resp = handle(
                services, FhirRequest("POST", rtype, headers=JSON_HEADERS, body=body), PRINCIPAL
            )
            if resp.status != 201:
                raise RuntimeError(f"create {rtype}: {resp.status} {resp.body_json()}")
            ids.append((rtype, resp.headers["Location"].split("/_history/")[0].rsplit("/", 1)[1]))

    return rate(len(bodies), run, profile)


def read_via_handle(services: Services, ids: list[tuple[str, str]], profile: bool) -> float:
    def run() -> None:
        for rtype, rid in ids:
            if handle(services, FhirRequest("GET", f"{rtype}/{rid}"), PRINCIPAL).status != 200:
                raise RuntimeError(f"read {rtype}/{rid} failed")

    return rate(len(ids), run, profile)


def read_floor(engine: Engine, count: int) -> float:
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("SELECT key FROM resource_version")
        keys = [row[0] for row in cur.fetchall()]
        random.Random(7).shuffle(keys)
        keys = (keys * (count // max(len(keys), 1) + 1))[:count]
        sql = "SELECT data FROM resource_version WHERE key = " + (
            "?" if engine.dialect.name == "sqlite" else "%s"
        )

        def run() -> None:
            for key in keys:
                cur.execute(sql, (key,))
                if cur.fetchone() is None:
                    raise RuntimeError("missing row")

        return rate(len(keys), run)
    finally:
        conn.close()


def read_floor_per_request(engine: Engine, ids: list[tuple[str, str]]) -> float:
    """What one read needs at least: pool checkout, BEGIN, select by type and id, COMMIT.

    BEGIN and COMMIT are sent explicitly (both drivers run in autocommit mode under DHR).
    """
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    sql = (
        "SELECT v.data FROM resource r JOIN resource_version v ON v.resource_key = r.key "
        f"AND v.version_id = r.version_id WHERE r.res_type = {mark} AND r.res_id = {mark}"
    )

    def run() -> None:
        for rtype, rid in ids:
            conn = engine.raw_connection()
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.execute(sql, (rtype, rid))
            if cur.fetchone() is None:
                raise RuntimeError("missing row")
            cur.execute("COMMIT")
            conn.close()

    return rate(len(ids), run)


def transaction_via_handle(
    services: Services, bundles: list[bytes], count: int, profile: bool
) -> float:
    def run() -> None:
        for body in bundles:
            resp = handle(
                services, FhirRequest("POST", "", headers=JSON_HEADERS, body=body), PRINCIPAL
            )
            reply = resp.body_json() or {}
            bad = [
                e["response"]["status"]
                for e in reply.get("entry", [])
                if not e["response"]["status"].startswith("2")
            ]
            if resp.status != 200 or bad:
                raise RuntimeError(f"transaction: {resp.status} {bad[:3]} {str(reply)[:300]}")

    return rate(count, run, profile)


def transaction_floor(
    engine: Engine, payloads: list[list[bytes]], table: str = "bench_floor"
) -> float:
    """Plain SQL: insert the same JSON bytes, one database transaction per group (BEGIN and
    COMMIT sent explicitly: both drivers run in autocommit mode under DHR)."""
    sqlite = engine.dialect.name == "sqlite"
    conn = engine.raw_connection()
    try:
        cur = conn.cursor()
        blob = "BLOB" if sqlite else "BYTEA"
        key = "INTEGER PRIMARY KEY" if sqlite else "BIGSERIAL PRIMARY KEY"
        cur.execute(f"CREATE TABLE {table} (k {key}, data {blob})")
        conn.commit()
        sql = f"INSERT INTO {table} (data) VALUES (" + ("?" if sqlite else "%s") + ")"

        def run() -> None:
            for bundle in payloads:
                cur.execute("BEGIN")
                cur.executemany(sql, [(p,) for p in bundle])
                cur.execute("COMMIT")

        return rate(sum(len(p) for p in payloads), run)
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_figures(
    settings: Settings, engine: Engine, bodies: list[tuple[str, bytes]]
) -> tuple[float, float]:
    port = free_port()
    # Served open (no bearer tokens): the figures compare transport cost with handle().
    settings = settings.model_copy(
        update={"port": port, "base_url": f"http://127.0.0.1:{port}/fhir", "auth_enabled": False}
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, engine, migrate=False),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"{settings.fhir_base}/", headers=JSON_HEADERS) as client:
            paths: list[str] = []

            def create() -> None:
                for rtype, body in bodies:
                    resp = client.post(rtype, content=body)
                    resp.raise_for_status()
                    paths.append(resp.headers["location"].split("/fhir/")[1].split("/_history")[0])

            def read() -> None:
                for path in paths:
                    client.get(path).raise_for_status()

            return rate(len(bodies), create), rate(len(bodies), read)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- one engine ---------------------------------------------------------------------------


def ratio_row(
    measure: str, got: float, base_name: str, base: float, target: float | None
) -> tuple[str, ...]:
    """One table row: a rate, the floor it is compared with, the ratio and the verdict."""
    ratio = got / base if base else 0.0
    verdict = "info" if target is None else ("PASS" if ratio >= target else "BELOW")
    goal = "-" if target is None else f">= {target:.2f}"
    return (measure, f"{got:,.0f}/s", base_name, f"{base:,.0f}/s", f"{ratio:.2f}", goal, verdict)


def bench_engine(
    name: str, singles: list[Resource], bundles: list[Resource], args: argparse.Namespace
) -> list[tuple[str, ...]]:
    bodies = [(r["resourceType"], orjson.dumps(r)) for r in singles]
    bundle_bytes = [orjson.dumps(b) for b in bundles]
    bundle_payloads = [[orjson.dumps(e["resource"]) for e in b["entry"]] for b in bundles]
    in_bundles = sum(len(p) for p in bundle_payloads)
    rows: list[tuple[str, ...]] = []

    def row(measure: str, dhr: float, floor_name: str, floor: float, target: float | None) -> None:
        rows.append(ratio_row(measure, dhr, floor_name, floor, target))

    with throwaway_database(name) as url:
        engine = db.make_engine(url)
        try:
            db.upgrade(engine)
            settings = Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))
            services = Services(settings, engine)
            warm = [(t, b) for t, b in bodies[:50]]
            validation_floor(singles)  # warm: fhir.resources builds validators lazily
            create_via_handle(services, warm, [], profile=False)
            floor = validation_floor(singles)
            ids: list[tuple[str, str]] = []
            created = create_via_handle(services, bodies, ids, args.profile == "create")
            row("create  POST Type", created, "R4B validation only", floor, TARGET)
            commit_floor = transaction_floor(
                engine, [[b] for _, b in bodies], table="bench_create_floor"
            )
            row("create  POST Type", created, "SQL insert, 1 txn each", commit_floor, None)
            random.Random(3).shuffle(ids)
            read = read_via_handle(services, ids, args.profile == "read")
            row(
                "read    GET Type/id",
                read,
                "SQL select by key",
                read_floor(engine, len(ids)),
                TARGET,
            )
            per_request = read_floor_per_request(engine, ids)
            row("read    GET Type/id", read, "pool+BEGIN+join+COMMIT", per_request, None)
            tx = transaction_via_handle(
                services, bundle_bytes, in_bundles, args.profile == "transaction"
            )
            row(
                f"transaction ({in_bundles // max(len(bundles), 1)}/Bundle)",
                tx,
                "SQL insert, 1 txn/Bundle",
                transaction_floor(engine, bundle_payloads),
                None,
            )
            row("transaction", tx, "R4B validation only", floor, None)
            if not args.no_http:
                sample = bodies[: min(len(bodies), args.http_n)]
                http_create, http_read = http_figures(settings, engine, sample)
                row("HTTP create (uvicorn)", http_create, "handle() create", created, None)
                row("HTTP read   (uvicorn)", http_read, "handle() read", read, None)
        finally:
            engine.dispose()
    return rows


def print_table(title: str, rows: list[tuple[str, ...]]) -> None:
    header = ("measure", "DHR", "floor", "floor rate", "ratio", "target", "verdict")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        print(
            "  ".join(
                c.ljust(w) if i in (0, 2, 6) else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--n", type=int, default=2000, help="resources to create and read")
    parser.add_argument("--http-n", type=int, default=500, help="resources for the HTTP figures")
    parser.add_argument("--no-http", action="store_true", help="skip the uvicorn figures")
    parser.add_argument("--profile", choices=["create", "read", "transaction"], default=None)
    args = parser.parse_args()
    pg = postgres_answers(PG_URL)
    choice = args.engine or ("both" if pg else "sqlite")
    engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in engines and not pg:
        print(f"PostgreSQL does not answer at {PG_URL}", file=sys.stderr)
        return 2
    source, singles, bundles = dataset(args.n)
    mix = Counter(r["resourceType"] for r in singles).most_common(6)
    print(
        f"data: {source}: {len(singles)} resources ({', '.join(f'{n} {t}' for t, n in mix)}, ...), "
        f"{len(bundles)} transaction Bundles with {sum(len(b['entry']) for b in bundles)} entries"
    )
    for name in engines:
        started = time.perf_counter()
        rows = bench_engine(name, singles, bundles, args)
        print_table(f"{name} ({time.perf_counter() - started:.0f}s)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
