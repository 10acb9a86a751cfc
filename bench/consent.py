"""What consent enforcement costs: search latency with the consent policy on ÷ off, same run.

Usage: ``.venv/bin/python bench/consent.py [--engine sqlite|postgresql] [--patients N]
[--queries K] [--repeat R] [--audit on|off] [--direct-care] [--profile] [--keep FILE]``.
Each run uses a throwaway database (a temporary SQLite file; ``CREATE DATABASE
dhr_bench_<random>`` on the PostgreSQL at 127.0.0.1:5432, dropped afterwards), never the shared
``test`` database.

Data: the 617 Synthea Bundles of ``../shared/data/synthea-r4-bundles-all617.tar.gz`` (191k
resources; ``--patients N``: N patient Bundles spread over the set, plus Synthea's organisation
and practitioner lists), made realistic for the policy by :mod:`consent_data` (ODS codes,
registered practices, NHS numbers, MH labels, Consents denying the requester's practice or
permitting research, national data opt-outs) and POSTed as transactions
(https://hl7.org/fhir/R4/http.html#transaction) through :func:`dhr.api.dispatch.handle` as the
command line's principal acting for organisation ``R0BEN`` (the originating controller of all
the data, not the requester).

Measured in process through :func:`dhr.api.dispatch.handle` (no HTTP: less noise; the bearer
token check is the same either way), for one clinician (role R8000, ``user/*.rs``, organisation
= the practice with most registered patients, purpose TREAT), three :class:`Services` on the
same engine and database, differing only in their settings: consent off
(``consent_enabled=False``, the baseline), consent on with the default implicit policy (a care
relationship is needed) and, with ``--direct-care``, consent on with
``consent_implicit=direct-care`` (for information).
Audit is the same in all three (on by default, one shared database sink). Every request is run
once per variant to warm up and check, then ``--repeat`` times, the variants taking turns
request by request (their order rotating), so machine noise hits them alike. Target: p50 on ÷
p50 off <= 1.5 per search (ARCHITECTURE.md "The policy layer").

Decision time (for information): :func:`dhr.access.policy.request_policy` per request (kept
compiled: one query to learn nothing changed; cold: after a Consent write, compiled again) and
:func:`consent.pdp.decide` for one data item. ``--profile`` prints the top cumulative entries of
cProfile over the consent-on requests.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# This script is called consent.py: bench/ must come after the project root on sys.path, or
# ``import consent`` (the decision package) would find this file. The package is imported first.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != BENCH]

import orjson  # noqa: E402

import consent.pdp  # noqa: E402, F401
from dhr.access.system import cli_principal  # noqa: E402
from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest, FhirResponse  # noqa: E402
from dhr.audit.sink import AuditSink, DatabaseSink, NullSink  # noqa: E402
from dhr.auth.model import Principal  # noqa: E402
from dhr.auth.scopes import parse_scopes  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.fhir.instant import now_micros  # noqa: E402
from dhr.store import db, policy_store  # noqa: E402

sys.path.append(str(BENCH))

from consent_data import (  # noqa: E402
    SYNTHEA_ID,
    Prepared,
    add_consents,
    common_loinc,
    prepare,
    read_bundles,
)
from consent_timing import decision_rows  # noqa: E402
from rest import PG_URL, postgres_answers, throwaway_database  # noqa: E402
from search import print_table  # noqa: E402
from search_data import ALL  # noqa: E402

TARGET = 1.5
LOADER_ODS = "R0BEN"  # the organisation sending the Synthea feed (originating controller)
LOADER = cli_principal("bench", organisation=LOADER_ODS)
JSON = {"content-type": "application/fhir+json"}
PROGRESS = 100  # Bundles per progress line


def clinician(practice: str, practitioner: str | None) -> Principal:
    """A GP at ``practice``: national RBAC role R8000, ``user/*.rs``, direct care (TREAT)."""
    return Principal(
        subject="bench-gp",
        client_id="bench-ehr",
        scopes=parse_scopes("user/*.rs"),
        scope_text="user/*.rs",
        roles=("R8000",),
        organisation=practice,
        fhir_user=practitioner,
    )


# -- loading ------------------------------------------------------------------------------------


def load(services: Services, prepared: Prepared) -> tuple[int, float]:
    """POST every Bundle as a transaction as :data:`LOADER`; (resources, seconds)."""
    started = time.perf_counter()
    count = 0
    for i, bundle in enumerate(prepared.bundles, 1):
        body = orjson.dumps(bundle)
        resp = handle(services, FhirRequest("POST", "", headers=JSON, body=body), LOADER)
        if resp.status != 200:
            raise RuntimeError(f"transaction: {resp.status} {str(resp.body_json())[:500]}")
        count += len(bundle["entry"])
        if i % PROGRESS == 0:
            seconds = time.perf_counter() - started
            print(
                f"  {i}/{len(prepared.bundles)} Bundles, {count:,} resources, {seconds:.0f}s",
                flush=True,
            )
    return count, time.perf_counter() - started


def record_opt_outs(services: Services, prepared: Prepared) -> int:
    chosen = [p.nhs for p in prepared.patients if p.opted_out]
    with services.engine.begin() as conn:
        for nhs in chosen:
            policy_store.record_opt_out(conn, nhs, "bench", now_micros())
    return len(chosen)


# -- the query mix ------------------------------------------------------------------------------


def get(services: Services, url: str, who: Principal) -> FhirResponse:
    return handle(services, FhirRequest.from_url("GET", url), who)


def first_id(services: Services, url: str, who: Principal) -> str:
    resp = get(services, url, who)
    found = (resp.body_json() or {}).get("entry") or []
    if resp.status != 200 or not found:
        raise RuntimeError(f"GET {url}: {resp.status}, {len(found)} entries")
    return str(found[0]["resource"]["id"])


@dataclass(frozen=True)
class Row:
    name: str
    urls: list[str]


def query_mix(
    off: Services, who: Principal, prepared: Prepared, practice: str, k: int
) -> list[Row]:
    """The clinician's searches: its own practice's patients (``k`` of them, spread; not those
    whose Consent denies the practice, which it may not see at all), the most frequent LOINC
    codes and its patients' family names."""
    mine = [p for p in prepared.patients if p.practice == practice and p.denies != practice]
    mine = mine[:: max(len(mine) // k, 1)][:k]
    pids = [
        first_id(off, f"Patient?identifier={SYNTHEA_ID}|{p.synthea_id}&_elements=id", who)
        for p in mine
    ]
    obs = [first_id(off, f"Observation?patient={pid}&_count=1&_elements=id", who) for pid in pids]
    loinc = common_loinc(prepared.bundles, len(pids))
    loinc = (loinc * len(pids))[: len(pids)]
    return [
        Row(
            "Observation?patient=X&_count=50", [f"Observation?patient={p}&_count=50" for p in pids]
        ),
        Row(
            "Observation?code=<LOINC>&_count=50", [f"Observation?code={c}&_count=50" for c in loinc]
        ),
        Row("Condition?patient=X", [f"Condition?patient={p}" for p in pids]),
        Row("Patient?name=<family>", [f"Patient?name={p.family}" for p in mine]),
        Row(
            "Observation?code=<LOINC>&_total=accurate",
            [f"Observation?code={c}&_total=accurate&_count=50" for c in loinc],
        ),
        Row(
            "Condition?_total=accurate&_count=50",
            ["Condition?_total=accurate&_count=50"] * len(pids),
        ),
        Row(
            "Patient/X/$everything?_count=50", [f"Patient/{p}/$everything?_count=50" for p in pids]
        ),
        Row("read Observation/id", [f"Observation/{o}" for o in obs]),
    ]


@dataclass
class Timing:
    seconds: list[float] = field(default_factory=list)
    hits: list[int] = field(default_factory=list)

    def p(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def hits(resp: FhirResponse, url: str, variant: str) -> int:
    body = resp.body_json() or {}
    if resp.status == 404 and variant != "off" and "?" not in url:
        return 0  # a read the policy denies answers 404
    if resp.status != 200:
        raise RuntimeError(f"{variant}: GET {url}: {resp.status} {str(body)[:300]}")
    if body.get("resourceType") != "Bundle":
        return 1
    return int(body["total"]) if "total" in body else len(body.get("entry") or [])


def measure(
    variants: dict[str, Services], who: Principal, rows: list[Row], repeat: int
) -> dict[str, dict[str, Timing]]:
    out: dict[str, dict[str, Timing]] = {}
    names = list(variants)
    for row in rows:
        timing = out[row.name] = {v: Timing() for v in names}
        for url in row.urls:
            for v in names:
                timing[v].hits.append(hits(get(variants[v], url, who), url, v))
        turn = 0
        for _ in range(repeat):
            for url in row.urls:
                turn += 1
                for v in names[turn % len(names) :] + names[: turn % len(names)]:
                    started = time.perf_counter()
                    resp = get(variants[v], url, who)
                    timing[v].seconds.append(time.perf_counter() - started)
                    if resp.status >= 500:
                        raise RuntimeError(f"{v}: GET {url}: {resp.status}")
    return out


def profile(services: Services, who: Principal, rows: list[Row], top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for row in rows:
        for url in row.urls:
            get(services, url, who)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    print("\ncProfile, consent on, every request once (top cumulative):\n" + text.getvalue())


# -- one engine ---------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def result_rows(
    results: dict[str, dict[str, Timing]], variants: list[str]
) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for name, timing in results.items():
        off, on = timing["off"], timing["on"]
        ratio = on.p(0.5) / off.p(0.5)
        cells = [
            name,
            f"{sum(off.hits) / len(off.hits):.0f}",
            f"{sum(on.hits) / len(on.hits):.0f}",
            ms(off.p(0.5)),
            ms(off.p(0.95)),
            ms(on.p(0.5)),
            ms(on.p(0.95)),
            f"{ratio:.2f}",
            f"{on.p(0.95) / off.p(0.95):.2f}",
            "PASS" if ratio <= TARGET else "ABOVE",
        ]
        if "direct-care" in variants:
            dc = timing["direct-care"]
            cells += [ms(dc.p(0.5)), f"{dc.p(0.5) / off.p(0.5):.2f}"]
        rows.append(tuple(cells))
    return rows


@contextmanager
def kept_or_throwaway(name: str, keep: Path | None) -> Iterator[tuple[str, bool]]:
    """(database URL, already loaded): a throwaway database, or with ``--keep`` (SQLite only)
    the file ``keep``, loaded by an earlier run with the same ``--patients`` if it exists and
    kept afterwards (for profiling and EXPLAIN between runs; the figures of a closing note come
    from fresh loads)."""
    if keep is None:
        with throwaway_database(name) as url:
            yield url, False
        return
    if name != "sqlite":
        raise SystemExit("--keep is for SQLite")
    yield f"sqlite:///{keep.resolve()}", keep.is_file()


def bench_engine(name: str, prepared: Prepared, practice: str, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="dhr-bench-consent-") as tmp,
        kept_or_throwaway(name, args.keep) as (url, loaded),
    ):
        engine = db.make_engine(url)
        sink: AuditSink = DatabaseSink(engine) if args.audit == "on" else NullSink()
        try:
            db.upgrade(engine)
            settings = Settings(
                database_url=url, data_dir=Path(tmp), audit_enabled=args.audit == "on"
            )
            variants = {
                "off": Services(
                    settings.model_copy(update={"consent_enabled": False}), engine, sink
                ),
                "on": Services(settings, engine, sink),
            }
            if args.direct_care:
                dc = settings.model_copy(update={"consent_implicit": "direct-care"})
                variants["direct-care"] = Services(dc, engine, sink)
            if loaded:
                print(f"[{name}] reusing the loaded database {args.keep}", flush=True)
                db.analyze(engine)  # for indexes a migration has just added
            else:
                print(f"[{name}] loading {len(prepared.bundles)} Bundles ...", flush=True)
                count, seconds = load(variants["on"], prepared)
                opted = record_opt_outs(variants["on"], prepared)
                db.analyze(engine)
                print(
                    f"[{name}] loaded {count:,} resources in {seconds:.0f}s "
                    f"({count / seconds:,.0f}/s); {opted} opt-outs",
                    flush=True,
                )
            probe = clinician(practice, None)
            practitioner = first_id(variants["off"], "Practitioner?_count=1&_elements=id", probe)
            who = clinician(practice, f"Practitioner/{practitioner}")
            rows = query_mix(variants["off"], who, prepared, practice, args.queries)
            print(f"[{name}] timing {len(rows)} searches x {len(rows[0].urls)} x {args.repeat}")
            results = measure(variants, who, rows, args.repeat)
            decisions = decision_rows(variants["on"], who, rows[0].urls[0])
            if args.profile:
                profile(variants["on"], who, rows, args.top)
        finally:
            sink.close()
            engine.dispose()
    title = (
        f"\n{name}: consent on ÷ off, clinician of {practice}, audit {args.audit}, in process "
        f"through dispatch.handle ({time.perf_counter() - started:.0f}s)"
    )
    print(title)
    header = ["search (ms)", "hits off", "hits on", "off p50", "off p95", "on p50", "on p95",
              f"p50 on/off (<= {TARGET})", "p95 on/off", "verdict"]  # fmt: skip
    if args.direct_care:
        header += ["direct-care p50", "dc/off"]
    print_table(tuple(header), result_rows(results, list(variants)), {0, 9})
    print_table(("decision time", "median", "per"), decisions, {0, 2})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--patients", type=int, default=None, help="patient Bundles (all: 615)")
    parser.add_argument("--queries", type=int, default=8, help="requests per search row")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each request")
    parser.add_argument("--audit", choices=["on", "off"], default="on", help="in every variant")
    parser.add_argument(
        "--direct-care", action="store_true", help="add consent on, consent_implicit=direct-care"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the consent-on requests")
    parser.add_argument(
        "--keep", type=Path, default=None, help="SQLite file to load once and reuse (see code)"
    )
    parser.add_argument("--top", type=int, default=40, help="profile entries to print")
    args = parser.parse_args()
    if not ALL.is_file():
        print(f"{ALL} is not present", file=sys.stderr)
        return 2
    if args.engine == "postgresql" and not postgres_answers(PG_URL):
        print(f"PostgreSQL does not answer at {PG_URL}", file=sys.stderr)
        return 2
    prepared = prepare(read_bundles(ALL, args.patients))
    practice, registered = prepared.practices().most_common(1)[0]
    add_consents(prepared, practice)
    print(
        f"data: {len(prepared.bundles)} Bundles, {len(prepared.patients)} patients, "
        f"{sum(len(b['entry']) for b in prepared.bundles):,} resources; "
        f"{len(prepared.practices())} practices; requester's practice {practice} "
        f"({registered} patients); {prepared.labelled} MH-labelled; Consents: "
        + ", ".join(f"{n} {what}" for what, n in sorted(prepared.consents.items()))
    )
    bench_engine(args.engine, prepared, practice, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
