"""A transaction survives the server being killed: all of it or none of it, never a part.

https://hl7.org/fhir/R4/http.html#transaction: "either all of the actions succeed or all fail".
The server runs as a separate process (``python -m dhr serve``) on the test database; a large
transaction is posted from a thread and the process is killed with SIGKILL while it works. After
a restart the store holds either every resource of that transaction or none, and a transaction
acknowledged before the kill is all there. Requests carry a ``system/*.cruds`` bearer token
signed with the database's key for the process's own base URL (its token audience).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from dhr.auth.service import AuthServer
from dhr.config import Settings
from tests.helpers import bearer

ROOT = Path(__file__).resolve().parents[3]
BIG = 5000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``python -m dhr serve`` on a port of its own, against the test database."""

    def __init__(self, database_url: str, data_dir: Path, engine: Engine) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        settings = Settings(database_url=database_url, base_url=self.base, data_dir=data_dir)
        token, _ = AuthServer(settings, engine).issue_access_token(
            subject="test-crash", client_id="test-crash", scope="system/*.cruds", lifetime=900
        )
        self.headers = bearer(token)
        env = dict(os.environ)
        env.update(
            {
                "DHR_DATABASE_URL": database_url,
                "DHR_BASE_URL": self.base,
                "DHR_DATA_DIR": str(data_dir),
                "DHR_MAX_BODY_BYTES": str(64 * 1024 * 1024),
                # crash-safety is under test here, not the consent policy
                "DHR_CONSENT_IMPLICIT": "direct-care",
            }
        )
        self.log = (data_dir / f"server-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dhr", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/metadata", timeout=1).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no rollback from the process itself."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def transaction(prefix: str, count: int) -> dict[str, Any]:
    """``count`` resources with ids starting ``prefix``: Patients and Observations about them.

    Client-chosen ids (PUT) let the test count what was stored without any search index.
    """
    entries: list[dict[str, Any]] = []
    for i in range(count // 2):
        full = f"urn:uuid:{uuid.uuid4()}"
        pid, oid = f"{prefix}-p{i}", f"{prefix}-o{i}"
        entries.append(
            {
                "fullUrl": full,
                "resource": {"resourceType": "Patient", "id": pid, "name": [{"family": "Crash"}]},
                "request": {"method": "PUT", "url": f"Patient/{pid}"},
            }
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": oid,
                    "status": "final",
                    "code": {"text": "heart rate"},
                    "subject": {"reference": full},
                },
                "request": {"method": "PUT", "url": f"Observation/{oid}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def stored_count(engine: Engine, prefix: str) -> int:
    """Live resources whose id starts with ``prefix`` (unique to this test run)."""
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT count(*) FROM resource WHERE res_id LIKE :p AND version_id > 0"),
            {"p": f"{prefix}-%"},
        ).scalar_one()
    return int(value)


def write_in_progress(engine: Engine) -> bool:
    """Whether another connection holds an open write transaction on the test database."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                    "AND state IN ('active', 'idle in transaction')"
                )
            ).scalar_one()
        return int(busy) > 0
    path = engine.url.database
    assert path
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True  # "database is locked": a writer is inside its transaction
    finally:
        probe.close()


def wait_for_write(engine: Engine, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if write_in_progress(engine):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_a_transaction_is_all_or_nothing_when_the_server_is_killed_mid_way(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:12]
    acked_prefix = f"ack{run}"
    big_prefix = f"big{run}"
    server = ServerProcess(database_url, tmp_path, engine)
    outcome: dict[str, Any] = {}
    try:
        acked = httpx.post(
            server.base, json=transaction(acked_prefix, 40), headers=server.headers, timeout=60
        )
        assert acked.status_code == 200, acked.text
        acked_ids = [e["resource"]["id"] for e in acked.json()["entry"]]

        def send() -> None:
            try:
                response = httpx.post(
                    server.base,
                    json=transaction(big_prefix, BIG),
                    headers=server.headers,
                    timeout=60,
                )
                outcome["status"] = response.status_code
            except httpx.TransportError as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        # Nothing commits before the end, so no row shows progress; the open write transaction
        # does. Kill a moment into it, far inside the time 5,000 entries take.
        mid_way = wait_for_write(engine, timeout=15)
        time.sleep(0.05)
        server.kill()
        sender.join(timeout=30)
    finally:
        server.stop()

    assert outcome, "the sender thread did not finish"
    big_count = stored_count(engine, big_prefix)
    # All or nothing, whichever side of the commit the kill fell on.
    assert big_count in (0, BIG), f"partial write: {big_count} of {BIG} after the kill"
    assert mid_way, "the large transaction was never seen at work"
    assert "error" in outcome, f"the server answered before the kill: {outcome}"
    assert big_count == 0, "the interrupted transaction left rows behind"
    assert stored_count(engine, acked_prefix) == 40

    restarted = ServerProcess(database_url, tmp_path, engine)
    try:
        for rid, entry in zip(acked_ids, acked.json()["entry"], strict=True):
            res_type = entry["resource"]["resourceType"]
            url = f"{restarted.base}/{res_type}/{rid}"
            assert httpx.get(url, headers=restarted.headers, timeout=10).status_code == 200
        # The restarted server writes: no lock of the killed process survives it.
        again = httpx.post(
            restarted.base,
            json=transaction(f"again{run}", 10),
            headers=restarted.headers,
            timeout=60,
        )
        assert again.status_code == 200, again.text
        assert stored_count(engine, f"again{run}") == 10
    finally:
        restarted.stop()
