"""Fail closed, and survive a crash: the audit is never behind what the clients were told.

ARCHITECTURE.md "Audit": writes are audited in the same database transaction as the write,
reads before the response leaves, and "if it cannot be written, the request fails". So:

* with the audit table gone, every request answers 503 with an OperationOutcome and nothing
  else, and a write leaves nothing behind;
* a server killed with SIGKILL in the middle of concurrent writes and reads, then restarted,
  has an AuditEvent for every request it acknowledged, and ``dhr audit chain`` followed by
  ``dhr audit verify`` finds the chain intact.

Both run on a throwaway database of the engine under test (the crash test against a real
``python -m dhr serve`` process, like :mod:`tests.dhr.interactions.test_transaction_crash`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, text

from dhr.store import db
from tests.conftest import LiveServer, make_settings
from tests.dhr.audit.test_sink import throwaway_database
from tests.dhr.interactions.test_transaction_crash import ROOT, ServerProcess
from tests.helpers import TokenIssuer, assert_outcome, bearer, created_id, observation, patient


@pytest.fixture
def own_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture
def own_engine(own_url: str) -> Iterator[Engine]:
    engine = db.make_engine(own_url)
    yield engine
    engine.dispose()


def scalar(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())


def test_without_an_audit_table_every_request_fails_closed(
    own_url: str, own_engine: Engine, tmp_path: Path
) -> None:
    server = LiveServer(make_settings(own_url, tmp_path), own_engine)
    server.start()
    try:
        token = TokenIssuer(server.app.state.auth)("system/*.cruds")
        http = httpx.Client(base_url=server.base + "/", headers=bearer(token), timeout=30)
        pid = created_id(http.post("Patient", json=patient()))
        resources = scalar(own_engine, "SELECT count(*) FROM resource")
        with own_engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event RENAME TO audit_event_gone"))
        try:
            refused = [
                http.get(f"Patient/{pid}"),
                http.get("Patient", params={"_id": pid}),
                http.get(f"Patient/{pid}/$everything"),
                http.post("Observation", json=observation(f"Patient/{pid}")),
                http.put(f"Patient/{pid}", json=patient(id=pid, gender="male")),
                http.delete(f"Patient/{pid}"),
                http.get("Patient", headers=bearer("not-a-token")),
            ]
            for response in refused:
                body = assert_outcome(response, 503)
                assert body["issue"][0]["code"] == "transient"
                assert "audit" in body["issue"][0]["diagnostics"]
                assert pid not in response.text
            # Nothing was written: no Observation, no new version, no deletion.
            assert scalar(own_engine, "SELECT count(*) FROM resource") == resources
            assert (
                scalar(own_engine, "SELECT version_id FROM resource WHERE res_id = :i", i=pid) == 1
            )
        finally:
            with own_engine.begin() as conn:
                conn.execute(text("ALTER TABLE audit_event_gone RENAME TO audit_event"))
        assert http.get(f"Patient/{pid}").status_code == 200
        http.close()
    finally:
        server.stop()


def run_cli(url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DHR_DATABASE_URL=url, DHR_DATA_DIR=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "dhr", "audit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Load:
    """Clients that create and read until stopped, noting what the server acknowledged."""

    def __init__(self, server: ServerProcess, clients: int) -> None:
        self.server = server
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.created: list[str] = []  # "Type/id" of every acknowledged create
        self.read: list[str] = []  # "Type/id" of every acknowledged read
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(
            base_url=self.server.base + "/", headers=self.server.headers, timeout=30
        ) as http:
            while not self.stop.is_set():
                try:
                    made = http.post("Patient", json=patient())
                    if made.status_code != 201:
                        continue
                    pid = created_id(made)
                    with self.lock:
                        self.created.append(f"Patient/{pid}")
                    obs = http.post("Observation", json=observation(f"Patient/{pid}"))
                    if obs.status_code == 201:
                        with self.lock:
                            self.created.append(f"Observation/{created_id(obs)}")
                    if http.get(f"Patient/{pid}").status_code == 200:
                        with self.lock:
                            self.read.append(f"Patient/{pid}")
                except httpx.TransportError:
                    return  # the server is gone


def audited(engine: Engine) -> dict[str, set[str]]:
    """Subtype -> every entity reference named by an AuditEvent of that subtype."""
    out: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for subtype, data in conn.execute(text("SELECT subtype, data FROM audit_event")):
            event = orjson.loads(bytes(data))
            refs = out.setdefault(subtype, set())
            for entity in event["entity"]:
                ref = entity.get("what", {}).get("reference")
                if ref:
                    refs.add(ref)
    return out


@pytest.mark.slow
def test_every_acknowledged_request_is_audited_after_a_kill_and_the_chain_holds(
    own_url: str, own_engine: Engine, tmp_path: Path
) -> None:
    server = ServerProcess(own_url, tmp_path, own_engine)
    load = Load(server, clients=6)
    try:
        load.start()
        deadline = time.monotonic() + 20
        while len(load.created) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()  # SIGKILL while the clients write and read
        load.join()
    finally:
        server.stop()
    assert len(load.created) >= 60, "the load never got going"
    assert load.read

    events = audited(own_engine)
    created = [r for r in load.created if r not in events.get("create", set())]
    read = [r for r in load.read if r not in events.get("read", set())]
    assert created == [], f"{len(created)} acknowledged creates have no AuditEvent"
    assert read == [], f"{len(read)} acknowledged reads have no AuditEvent"

    restarted = ServerProcess(own_url, tmp_path, own_engine)
    try:
        again = httpx.get(f"{restarted.base}/Patient", headers=restarted.headers, timeout=30)
        assert again.status_code == 200
    finally:
        restarted.stop()
    chained = run_cli(own_url, tmp_path, "chain")
    assert chained.returncode == 0, chained.stdout + chained.stderr
    verified = run_cli(own_url, tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "first break" not in verified.stdout
    total = scalar(own_engine, "SELECT count(*) FROM audit_event")
    assert scalar(own_engine, "SELECT count(*) FROM audit_event WHERE seq IS NULL") == 0
    assert scalar(own_engine, "SELECT max(seq) FROM audit_event") == total
