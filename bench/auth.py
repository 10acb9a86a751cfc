"""The cost of authentication and scope enforcement on reads, on SQLite and PostgreSQL.

Usage: ``.venv/bin/python bench/auth.py [--engine sqlite|postgresql|both] [--patients P]
[--per-patient K] [--rounds R] [--no-http]``. Each engine gets a throwaway database (a temporary
SQLite file; ``CREATE DATABASE dhr_bench_<random>`` on PostgreSQL, dropped afterwards).

The same reads (``GET Type/id``, https://hl7.org/fhir/R4/http.html#read) of P Patients and
their K Observations each are timed with authentication and with it disabled, in the same run,
with the same server code:

* in process: :func:`dhr.auth.principal.authenticate` on the bearer header, then
  :func:`dhr.api.dispatch.handle` as that principal, against ``handle`` as the open principal
  (what ``auth_enabled = false`` runs);
* over HTTP: two uvicorn servers on loopback over one database, one with ``auth_enabled`` (real
  RS256 tokens minted by its own authorisation server) and one without, read alternately over
  ``--rounds`` passes, one client, sequential requests.

Variants are timed block by block in turn (a few hundred reads each), so load from elsewhere on
the machine slows all of them alike and the ratios stay meaningful.

The target (ISSUE 4) is authenticated ÷ unauthenticated >= 0.8 with a ``system/*.rs`` token.
A ``patient/*.rs`` token reading its own record (one token per patient; each read also checks
the resource is in the patient's compartment) is shown for information.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from rest import (  # noqa: E402
    PG_URL,
    free_port,
    postgres_answers,
    print_table,
    ratio_row,
    throwaway_database,
)
from sqlalchemy import Engine  # noqa: E402

from dhr.access.system import cli_principal  # noqa: E402
from dhr.api.dispatch import Services, handle  # noqa: E402
from dhr.api.message import FhirRequest  # noqa: E402
from dhr.app import create_app  # noqa: E402
from dhr.auth.model import OPEN_ACCESS  # noqa: E402
from dhr.auth.principal import authenticate  # noqa: E402
from dhr.auth.service import AuthServer  # noqa: E402
from dhr.config import Settings  # noqa: E402
from dhr.store import db  # noqa: E402

TARGET = 0.8
JSON = {"content-type": "application/fhir+json", "prefer": "return=minimal"}
BLOCK = 200  # reads per variant per turn in process (a tenth of that over HTTP)
Read = tuple[str, str, str]  # (path, owning patient id, bearer header for the patient token)


def _patient_bundle(index: int, per_patient: int) -> dict[str, Any]:
    full = f"urn:uuid:bench-patient-{index}"
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": full,
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": f"Bench{index}", "given": ["Ada"]}],
                "gender": "female",
                "birthDate": "1970-01-01",
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for k in range(per_patient):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": full},
                    "effectiveDateTime": f"2020-01-{1 + k % 28:02d}",
                    "valueQuantity": {"value": 60 + k % 40, "unit": "/min"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load(services: Services, patients: int, per_patient: int) -> list[tuple[str, str]]:
    """Create the data through the enforced API as the CLI; ``(path, patient id)`` per resource."""
    principal = cli_principal("bench")
    out: list[tuple[str, str]] = []
    for i in range(patients):
        req = FhirRequest("POST", "", headers=JSON, parsed_body=_patient_bundle(i, per_patient))
        resp = handle(services, req, principal)
        body = resp.body_json() or {}
        if resp.status != 200:
            raise RuntimeError(f"load: {resp.status} {str(body)[:300]}")
        paths = [
            e["response"]["location"].split("/fhir/")[1].split("/_history")[0]
            for e in body["entry"]
        ]
        owner = paths[0].split("/")[1]
        out.extend((path, owner) for path in paths)
    return out


def rate(count: int, func: Callable[[], None]) -> float:
    started = time.perf_counter()
    func()
    return count / (time.perf_counter() - started)


def _check(status: int, what: str) -> None:
    if status != 200:
        raise RuntimeError(f"{what}: HTTP {status}")


# -- in process ---------------------------------------------------------------------------


def interleaved(
    variants: dict[str, Callable[[list[Any]], None]], items: list[Any], rounds: int, block: int
) -> dict[str, float]:
    """Items per second of each variant, timed block by block in turn (open, system, patient,
    open...), so that load from elsewhere on the machine slows every variant alike."""
    spent = dict.fromkeys(variants, 0.0)
    for run in variants.values():  # warm caches and code paths
        run(items[:block])
    for _ in range(rounds):
        for start in range(0, len(items), block):
            chunk = items[start : start + block]
            for name, run in variants.items():
                began = time.perf_counter()
                run(chunk)
                spent[name] += time.perf_counter() - began
    return {name: rounds * len(items) / seconds for name, seconds in spent.items()}


def in_process(
    services: Services, auth: AuthServer, reads: list[Read], system_header: str, rounds: int
) -> dict[str, float]:
    """Reads per second through ``handle`` (open) and ``authenticate`` + ``handle``."""
    requests = [(FhirRequest("GET", path), header) for path, _, header in reads]

    def open_reads(chunk: list[tuple[FhirRequest, str]]) -> None:
        for req, _ in chunk:
            _check(handle(services, req, OPEN_ACCESS).status, req.path)

    def system_reads(chunk: list[tuple[FhirRequest, str]]) -> None:
        for req, _ in chunk:
            _check(handle(services, req, authenticate(auth, system_header)).status, req.path)

    def patient_reads(chunk: list[tuple[FhirRequest, str]]) -> None:
        for req, header in chunk:
            _check(handle(services, req, authenticate(auth, header)).status, req.path)

    variants = {"open": open_reads, "system": system_reads, "patient": patient_reads}
    return interleaved(variants, requests, rounds, BLOCK)


# -- over HTTP ----------------------------------------------------------------------------


@contextmanager
def serving(settings: Settings, engine: Engine, auth_enabled: bool) -> Iterator[FastAPI]:
    port = free_port()
    settings = settings.model_copy(
        update={
            "port": port,
            "base_url": f"http://127.0.0.1:{port}/fhir",
            "auth_enabled": auth_enabled,
        }
    )
    app = create_app(settings, engine, migrate=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def over_http(
    settings: Settings, engine: Engine, reads: list[tuple[str, str]], rounds: int
) -> dict[str, float]:
    """Reads per second over loopback HTTP, with and without authentication."""
    with (
        serving(settings, engine, auth_enabled=False) as open_app,
        serving(settings, engine, auth_enabled=True) as auth_app,
    ):
        auth: AuthServer = auth_app.state.auth
        system = mint(auth, "system/*.rs")
        tokens = {pid: mint(auth, "patient/*.rs", pid) for _, pid in reads}
        open_base = open_app.state.services.settings.fhir_base
        auth_base = auth_app.state.services.settings.fhir_base
        with httpx.Client() as client:

            def open_reads(chunk: list[tuple[str, str]]) -> None:
                for path, _ in chunk:
                    _check(client.get(f"{open_base}/{path}").status_code, path)

            def system_reads(chunk: list[tuple[str, str]]) -> None:
                headers = {"Authorization": system}
                for path, _ in chunk:
                    _check(client.get(f"{auth_base}/{path}", headers=headers).status_code, path)

            def patient_reads(chunk: list[tuple[str, str]]) -> None:
                for path, owner in chunk:
                    headers = {"Authorization": tokens[owner]}
                    _check(client.get(f"{auth_base}/{path}", headers=headers).status_code, path)

            variants = {"open": open_reads, "system": system_reads, "patient": patient_reads}
            return interleaved(variants, reads, rounds, BLOCK // 10)


def mint(auth: AuthServer, scope: str, patient: str | None = None) -> str:
    token, _ = auth.issue_access_token(
        subject="bench", client_id="bench", scope=scope, lifetime=3600, patient=patient
    )
    return f"Bearer {token}"


# -- one engine ---------------------------------------------------------------------------


def bench_engine(name: str, args: argparse.Namespace) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []

    def row(measure: str, got: float, base_name: str, base: float, target: float | None) -> None:
        rows.append(ratio_row(measure, got, base_name, base, target))

    with throwaway_database(name) as url:
        engine = db.make_engine(url)
        try:
            db.upgrade(engine)
            # Consent off: this measures authentication. Under the consent policy a backend
            # client acting for no organisation would see no patient's record (404); what the
            # policy adds is bench/consent.py's measure (issue 6).
            settings = Settings(
                database_url=url, data_dir=Path(tempfile.gettempdir()), consent_enabled=False
            )
            services = Services(settings, engine)
            owned = load(services, args.patients, args.per_patient)
            db.analyze(engine)
            random.Random(5).shuffle(owned)
            auth = AuthServer(settings, engine)
            system = mint(auth, "system/*.rs")
            headers = {pid: mint(auth, "patient/*.rs", pid) for _, pid in owned}
            reads = [(path, pid, headers[pid]) for path, pid in owned]
            got = in_process(services, auth, reads, system, args.rounds)
            row("read in process, system/*.rs", got["system"], "auth disabled", got["open"], TARGET)
            row("read in process, patient/*.rs", got["patient"], "auth disabled", got["open"], None)
            if not args.no_http:
                sample = owned[: args.http_n]
                web = over_http(settings, engine, sample, args.rounds)
                row("read HTTP, system/*.rs", web["system"], "auth disabled", web["open"], TARGET)
                row("read HTTP, patient/*.rs", web["patient"], "auth disabled", web["open"], None)
        finally:
            engine.dispose()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default=None)
    parser.add_argument("--patients", type=int, default=50)
    parser.add_argument("--per-patient", type=int, default=39, help="Observations per Patient")
    parser.add_argument("--http-n", type=int, default=2000, help="reads per HTTP round")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the reads")
    parser.add_argument("--no-http", action="store_true", help="skip the uvicorn figures")
    args = parser.parse_args()
    pg = postgres_answers(PG_URL)
    choice = args.engine or ("both" if pg else "sqlite")
    engines = ["sqlite", "postgresql"] if choice == "both" else [choice]
    if "postgresql" in engines and not pg:
        print(f"PostgreSQL does not answer at {PG_URL}", file=sys.stderr)
        return 2
    total = args.patients * (1 + args.per_patient)
    print(f"data: {args.patients} Patients with {args.per_patient} Observations each ({total})")
    for name in engines:
        started = time.perf_counter()
        rows = bench_engine(name, args)
        print_table(f"{name} ({time.perf_counter() - started:.0f}s)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
