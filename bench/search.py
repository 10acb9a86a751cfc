"""FHIR search latency at two data sizes and ingest throughput, on SQLite and PostgreSQL.

Usage: ``.venv/bin/python bench/search.py [--engine sqlite|postgresql|both] [--sizes 100,617]
[--repeat N] [--patients N] [--explain]``. Each engine gets a throwaway database (a temporary
SQLite file; ``CREATE DATABASE dhr_bench_<random>`` on PostgreSQL, dropped afterwards).

Data: the Synthea (https://synthetichealth.github.io/synthea/) transaction Bundles in
``../shared/data/synthea-r4-bundles-100-smallest.tar.gz`` (100 Bundles, 11.5k resources) and
``../shared/data/synthea-r4-bundles-all617.tar.gz`` (617 Bundles, 191k resources; the 100 are
among them), extracted to a temporary directory and loaded with :func:`dhr.loader.load_files`,
the code behind ``dhr load`` (each Bundle is one ``POST`` of a transaction through
:func:`dhr.api.dispatch.handle`, ``urn:uuid`` references resolved by the server). Each size has
its own database (the 617 one is the 100 plus the other 517 files), and the timed requests
alternate between them, so load from other processes on a shared machine hits both sizes alike.

Queries (https://hl7.org/fhir/R4/search.html) go through ``handle`` as ``GET`` requests. The
same requests run at both sizes: patients (found by their Synthea identifier), LOINC codes, date
windows, SNOMED codes and family names are drawn from the 100-Bundle files. Every request is run
once to warm up, then ``--repeat`` times; p50/p95 are over all timed runs of a row.

Targets: growth (p50 at 617 / p50 at 100) <= 1.3 for the patient-scoped rows and ``$everything``;
ingest with indexing (resources/s loading the 100 Bundles) >= 0.4 x validating the same resources
with ``fhir.resources`` R4B alone (the floor is measured just before and just after that load).
A row the server answers with 4xx prints "n/a".

Expected runtime on a 2-core machine: ``--sizes 100`` about 1 minute per engine; the 617 load
(180k more resources) adds several minutes on SQLite and more on PostgreSQL (progress is printed).
``--explain`` prints the query plan of each search row at the largest size.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rest import PG_URL, postgres_answers, throwaway_database  # noqa: E402
from search_data import (  # noqa: E402
    ALL,
    LOINC,
    SMALL,
    SNOMED,
    SYNTHEA_ID,
    PatientQuery,
    Resource,
    condition_codes,
    extract,
    patient_queries,
    resources,
)
from sqlalchemy import Engine, text  # noqa: E402

from dhr.access.system import cli_principal  # noqa: E402
from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest, FhirResponse  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.fhir.types import model_class  # noqa: E402
from dhr.loader import load_files  # noqa: E402
from dhr.search.compile import page_query  # noqa: E402
from dhr.search.params import parse_search  # noqa: E402
from dhr.settle import settle  # noqa: E402
from dhr.store import db  # noqa: E402

BENCH = cli_principal("bench")  # system/*.cruds, as ``dhr load`` runs
GROWTH_TARGET = 1.3
INGEST_TARGET = 0.4
CHUNK = 25  # files per progress line while loading


# -- the query mix --------------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    patients: list[tuple[str, PatientQuery]]  # (server id, what the query uses)
    conditions: list[str]


@dataclass(frozen=True)
class Shape:
    name: str
    targeted: bool  # growth target applies
    urls: Callable[[Params], list[str]]
    optional: bool = False  # a 4xx means "not implemented yet"


SHAPES = [
    Shape(
        "Observation?subject&code&date ge/le",
        True,
        lambda p: [
            f"Observation?subject=Patient/{pid}&code={LOINC}|{q.code}"
            f"&date=ge{q.low}&date=le{q.high}"
            for pid, q in p.patients
        ],
    ),
    Shape(
        "Observation?subject&_sort=-date&_count=20",
        True,
        lambda p: [
            f"Observation?subject=Patient/{pid}&_sort=-date&_count=20" for pid, _ in p.patients
        ],
    ),
    Shape(
        "Patient?_id&_revinclude=Provenance:target",
        True,
        lambda p: [f"Patient?_id={pid}&_revinclude=Provenance:target" for pid, _ in p.patients],
        optional=True,
    ),
    Shape(
        "Patient?_id&_revinclude=Encounter:patient",
        True,
        lambda p: [f"Patient?_id={pid}&_revinclude=Encounter:patient" for pid, _ in p.patients],
        optional=True,
    ),
    Shape(
        "Patient/id/$everything?_count=100",
        True,
        lambda p: [f"Patient/{pid}/$everything?_count=100" for pid, _ in p.patients],
        optional=True,
    ),
    Shape(
        "Condition?code&_count=50 (all patients)",
        False,
        lambda p: [f"Condition?code={SNOMED}|{c}&_count=50" for c in p.conditions],
    ),
    Shape(
        "Observation?subject.name=family&_count=50",
        False,
        lambda p: [f"Observation?subject.name={q.family}&_count=50" for _, q in p.patients],
    ),
]


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)  # entries per answer
    status: int | None = None  # a 4xx that made the row n/a

    def p(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def get(services: Services, url: str) -> FhirResponse:
    return handle(services, FhirRequest.from_url("GET", url), BENCH)


def entries(resp: FhirResponse) -> int:
    body = resp.body_json() or {}
    return len(body.get("entry") or [])


def run_shape(
    svc: dict[int, Services], shape: Shape, params: dict[int, Params], repeat: int
) -> dict[int, Timing]:
    """Warm up and check every request at every size, then time them alternating sizes."""
    timing = {size: Timing() for size in svc}
    urls = {size: shape.urls(params[size]) for size in svc}
    for size, services in svc.items():
        for url in urls[size]:
            resp = get(services, url)
            if resp.status >= 400:
                if shape.optional and resp.status < 500:
                    timing[size].status = resp.status
                    return timing
                raise RuntimeError(f"GET {url}: {resp.status} {str(resp.body_json())[:300]}")
            timing[size].hits.append(entries(resp))
    for _ in range(repeat):
        for i in range(len(urls[min(svc)])):
            for size, services in svc.items():
                url = urls[size][i]
                started = time.perf_counter()
                resp = get(services, url)
                timing[size].seconds.append(time.perf_counter() - started)
                if resp.status != 200:
                    raise RuntimeError(f"GET {url}: {resp.status}")
    return timing


def resolve_patients(
    services: Services, wanted: list[PatientQuery]
) -> list[tuple[str, PatientQuery]]:
    out: list[tuple[str, PatientQuery]] = []
    for q in wanted:
        resp = get(services, f"Patient?identifier={SYNTHEA_ID}|{q.synthea_id}&_elements=id")
        found = (resp.body_json() or {}).get("entry") or []
        if resp.status != 200 or len(found) != 1:
            raise RuntimeError(
                f"Patient with Synthea id {q.synthea_id}: {resp.status} {len(found)}"
            )
        out.append((found[0]["resource"]["id"], q))
    return out


# -- loading ----------------------------------------------------------------------------------


def load(services: Services, files: list[Path], label: str) -> tuple[int, float]:
    """Load ``files`` in chunks through the loader, printing progress; (resources, seconds)."""
    loaded = 0
    seconds = 0.0
    for start in range(0, len(files), CHUNK):
        chunk = files[start : start + CHUNK]
        result = load_files(services, chunk, len(chunk), io.StringIO())
        if result.failed or result.errors:
            raise RuntimeError(f"load failed: {result.summary()[:2000]}")
        loaded += result.loaded
        seconds += result.seconds
        if len(files) > CHUNK:
            print(
                f"  {label}: {start + len(chunk)}/{len(files)} files, {loaded:,} resources, "
                f"{seconds:.0f}s, {loaded / seconds:,.0f}/s",
                flush=True,
            )
    return loaded, seconds


def validation_rate(items: list[Resource]) -> float:
    for r in items[:1000]:  # fhir.resources builds its validators lazily
        model_class(r["resourceType"]).model_validate(r)
    started = time.perf_counter()
    for r in items:
        model_class(r["resourceType"]).model_validate(r)
    return len(items) / (time.perf_counter() - started)


# -- query plans ------------------------------------------------------------------------------


def explain(engine: Engine, settings: Settings, params: Params) -> None:
    """The plan of the first request of each search row (not ``$everything``)."""
    sqlite = engine.dialect.name == "sqlite"
    for shape in SHAPES:
        url = shape.urls(params)[0]
        if "$" in url:
            continue
        req = FhirRequest.from_url("GET", url)
        sreq = parse_search(req.path, req.query, settings.fhir_base, settings.max_page_size)
        count = settings.default_page_size if sreq.count is None else sreq.count
        stmt = page_query(req.path, sreq.criteria, sreq.sort, count + 1, None)
        compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) "
        with engine.connect() as conn:
            rows = conn.execute(text(prefix + str(compiled))).all()
        print(f"\n-- {url}")
        for row in rows:
            print(f"   {row[-1]}")


# -- one engine -------------------------------------------------------------------------------


def fmt_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def services_for(url: str) -> Services:
    engine = db.make_engine(url)
    db.upgrade(engine)
    # Consent off: this measures search itself. Under the consent policy the command line's
    # principal, acting for no organisation, would see nobody's record; what the policy adds
    # to these searches is bench/consent.py's measure (issue 6).
    settings = Settings(
        database_url=url, data_dir=Path(tempfile.gettempdir()), consent_enabled=False
    )
    # What the server does once started (validation workers, gc.freeze); timing starts once
    # its workers are up, as a started server's would be.
    settle(settings, wait_seconds=120)
    return Services(settings, engine)


def ingest_row(
    label: str, count: int, seconds: float, floor: float, target: bool
) -> tuple[str, ...]:
    rate = count / seconds
    ratio = rate / floor
    goal, verdict = (
        (f">= {INGEST_TARGET}", "PASS" if ratio >= INGEST_TARGET else "BELOW")
        if target
        else ("-", "info")
    )
    return (label, f"{rate:,.0f}/s", f"{floor:,.0f}/s", f"{ratio:.2f}", goal, verdict)


def bench_engine(
    name: str, small: list[Path], rest: list[Path], items: list[Resource], args: Any
) -> None:
    """Two databases side by side (100 Bundles; 617 Bundles), queried in turn.

    The timed runs alternate between the two sizes request by request, so a noisy neighbour on a
    shared machine slows both sides alike and the growth ratio stays meaningful.
    """
    started = time.perf_counter()
    sizes = args.sizes
    ingest: list[tuple[str, ...]] = []
    with contextlib.ExitStack() as stack:
        svc: dict[int, Services] = {}
        for size in sizes:
            svc[size] = services_for(stack.enter_context(throwaway_database(name)))
            stack.callback(svc[size].engine.dispose)
        first = True
        for size in sizes:
            print(
                f"\n[{name}] loading {len(small)} Bundles into the {size}-Bundle database ...",
                flush=True,
            )
            floor = validation_rate(items)
            count, seconds = load(svc[size], small, f"{size}")
            floor = (floor + validation_rate(items)) / 2  # the same moment's machine
            label = f"ingest {count:,} resources (100 Bundles)"
            ingest.append(
                ingest_row(label if first else label + ", again", count, seconds, floor, first)
            )
            first = False
            if size == 617:
                print(f"[{name}] loading {len(rest)} more Bundles ...", flush=True)
                more, seconds = load(svc[size], rest, "617")
                ingest.append(
                    ingest_row(
                        f"ingest {more:,} more (to 617 Bundles)", more, seconds, floor, False
                    )
                )
        wanted = patient_queries(items, args.patients)
        conditions = condition_codes(items, 5)
        params = {size: Params(resolve_patients(svc[size], wanted), conditions) for size in sizes}
        print(
            f"[{name}] queries at {' and '.join(map(str, sizes))} Bundles, interleaved ...",
            flush=True,
        )
        results = measure(svc, params, args.repeat)
        if args.explain:
            size = max(sizes)
            explain(svc[size].engine, svc[size].settings, params[size])
    print_results(f"{name} ({time.perf_counter() - started:.0f}s)", results, ingest)


def measure(
    svc: dict[int, Services], params: dict[int, Params], repeat: int
) -> dict[int, dict[str, Timing]]:
    results: dict[int, dict[str, Timing]] = {size: {} for size in svc}
    for shape in SHAPES:
        for size, timing in run_shape(svc, shape, params, repeat).items():
            results[size][shape.name] = timing
    return results


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]], left: set[int]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        cells = zip(r, widths, strict=True)
        print("  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(cells)))
    print(line, flush=True)


def print_results(
    title: str, results: dict[int, dict[str, Timing]], ingest: list[tuple[str, ...]]
) -> None:
    print(f"\n{title}")
    rows: list[tuple[str, ...]] = []
    for shape in SHAPES:
        small, large = results.get(100, {}).get(shape.name), results.get(617, {}).get(shape.name)
        if any(t is not None and t.status is not None for t in (small, large)):
            status = next(t.status for t in (small, large) if t is not None and t.status)
            na = f"n/a (not implemented: {status})"
            rows.append((shape.name, na, "", "", "", "", "", "", "", ""))
            continue
        cells = [shape.name]
        for t in (small, large):
            cells += [fmt_ms(t.p(0.5)), fmt_ms(t.p(0.95))] if t else ["-", "-"]
        for t in (small, large):
            cells.append(f"{statistics.mean(t.hits):.0f}" if t else "-")
        if small and large:
            growth = large.p(0.5) / small.p(0.5)
            goal = f"<= {GROWTH_TARGET}" if shape.targeted else "-"
            verdict = ("PASS" if growth <= GROWTH_TARGET else "BELOW") if shape.targeted else "info"
            cells += [f"{growth:.2f}", goal, verdict]
        else:
            cells += ["-", "-", "-"]
        rows.append(tuple(cells))
    header = ("query (ms)", "p50@100", "p95@100", "p50@617", "p95@617", "hits@100", "hits@617",
              "growth", "target", "verdict")  # fmt: skip
    print_table(header, rows, {0, 9})
    print_table(("ingest", "DHR", "R4B validation", "ratio", "target", "verdict"), ingest, {0, 5})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--sizes", default="100,617", help="comma-separated: 100, 617 or both")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each request")
    parser.add_argument("--patients", type=int, default=20, help="patients sampled per row")
    parser.add_argument("--explain", action="store_true", help="print query plans at the end")
    args = parser.parse_args()
    args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not set(args.sizes) <= {100, 617} or not args.sizes:
        parser.error("--sizes takes 100, 617 or 100,617")
    for archive in (SMALL, ALL) if 617 in args.sizes else (SMALL,):
        if not archive.is_file():
            print(f"{archive} is not present", file=sys.stderr)
            return 2
    pg = postgres_answers(PG_URL)
    choice = args.engine or ("both" if pg else "sqlite")
    engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in engines and not pg:
        print(f"PostgreSQL does not answer at {PG_URL}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dhr-search-bench-") as tmp:
        small = extract(SMALL, Path(tmp) / "100")
        rest: list[Path] = []
        if 617 in args.sizes:
            rest = extract(ALL, Path(tmp) / "617", frozenset(p.name for p in small))
        items = resources(small)
        floor = validation_rate(items)
        print(
            f"data: {len(small)} Bundles / {len(items):,} resources"
            + (f"; +{len(rest)} Bundles for 617" if rest else "")
            + f"; R4B validation {floor:,.0f} resources/s; repeat {args.repeat}"
        )
        for name in engines:
            bench_engine(name, small, rest, items, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
