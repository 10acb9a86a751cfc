"""The validation pool (dhr.fhir.validate_pool, ADR 0011): a worker process answers exactly as
in-line validation (https://hl7.org/fhir/R4/validation.html) does, and a worker that dies costs
speed, never a verdict."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import process
from pathlib import Path
from typing import Any

import orjson
import pytest

from dhr.config import Settings
from dhr.errors import FhirError
from dhr.fhir import jsonio
from dhr.fhir.validate import validate_resource
from dhr.fhir.validate_pool import (
    CHUNK,
    POOL,
    QUEUED_CHUNKS,
    Pending,
    _new_executor,
    aside,
    check_chunk,
)


def patient(i: int, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": f"p{i}", "gender": "female", **extra}


def inline_error(resource: dict[str, Any], expected: str | None = None) -> FhirError:
    with pytest.raises(FhirError) as caught:
        validate_resource(resource, expected)
    return caught.value


BAD = {
    3: patient(3, gender="x"),  # not in the required value set
    40: patient(40, name=[{"family": 7}]),  # a number where a string belongs
    41: {"resourceType": "Observation", "status": "final"},  # sent where a Patient belongs
    70: patient(70, identifier=[{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "1"}]),
}


def resources() -> list[dict[str, Any]]:
    return [BAD.get(i, patient(i)) for i in range(max(2 * CHUNK, *BAD) + 10)]


def pending_for(items: list[dict[str, Any]]) -> Pending:
    pending = Pending(POOL, 1)
    for i, resource in enumerate(items):
        pending.add(i, orjson.dumps(resource), "Patient" if i == 41 else None)
    return pending


def same(a: FhirError, b: FhirError) -> bool:
    return a.outcome() == b.outcome() and a.status == b.status


def test_a_worker_finds_every_invalid_resource_with_the_in_line_answer() -> None:
    found = pending_for(resources()).failures()
    assert sorted(found) == sorted(BAD)
    for i, resource in BAD.items():
        assert same(found[i], inline_error(resource, "Patient" if i == 41 else None)), i
    assert found[70].status == 422  # an invalid NHS number stays a 422
    assert found[41].message_code == "wrong-resource-type"  # not the type its URL names


def test_valid_resources_have_no_failures_and_a_verdict_is_given_once() -> None:
    pending = pending_for([patient(i) for i in range(CHUNK + 1)])
    assert pending.failures() == {}
    assert pending.failures() == {}


def test_a_worker_that_dies_costs_speed_not_the_verdict() -> None:
    POOL.start(1)
    assert pending_for([patient(0)]).failures() == {}  # a worker is up
    executor = POOL._executor  # the test kills its processes
    assert executor is not None
    for pid in list(executor._processes):
        os.kill(pid, signal.SIGKILL)
    found = pending_for(resources()).failures()  # validated here instead
    assert sorted(found) == sorted(BAD)
    assert sorted(pending_for(resources()).failures()) == sorted(BAD)  # and by a new pool


def test_small_writes_and_a_pool_of_none_stay_in_line(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, validation_workers=1, validation_pool_min=10)
    assert aside(settings, 9) is None
    assert aside(settings, 10) is not None
    off = Settings(data_dir=tmp_path, validation_workers=0, validation_pool_min=1)
    assert aside(off, 1000) is None


def test_the_in_process_fallback_is_the_same_function() -> None:
    items = [(i, orjson.dumps(r), None) for i, r in enumerate(resources()) if i != 41]
    assert [f[0] for f in check_chunk(items)] == [3, 40, 70]


def test_a_pool_shut_down_under_a_request_still_gives_every_verdict() -> None:
    pending = pending_for(resources())  # chunks queued for the worker ...
    POOL.reset()  # ... and cancelled before it took them
    assert sorted(pending.failures()) == sorted(BAD)


def test_verdicts_not_in_by_the_deadline_are_reached_in_the_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dhr.fhir.validate_pool as pool_module

    monkeypatch.setattr(pool_module, "WAIT_SECONDS", 0.0)  # no time to wait for a worker
    found = pending_for(resources()).failures()
    assert sorted(found) == sorted(BAD)
    assert same(found[3], inline_error(BAD[3]))


SERVER = """
import os, sys, time
from dhr.fhir.validate_pool import POOL
POOL.start(1)
executor = POOL._executor
print(executor.submit(os.getpid).result(timeout=120), flush=True)
time.sleep(600)
"""


def test_workers_end_when_their_server_is_killed(tmp_path: Any) -> None:
    # A server killed outright (SIGKILL, the OOM killer) never tells its workers; they notice.
    root = str(Path(__file__).resolve().parents[3])
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True, cwd=root
    )
    try:
        assert server.stdout is not None
        worker = int(server.stdout.readline())
        assert alive(worker)
    finally:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(worker), f"worker {worker} outlived its server"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_ready_waits_until_the_workers_have_started() -> None:
    """A benchmark times the server's steady state: ``ready`` answers once a started worker has
    imported the models (and at once, False, when there is no pool)."""
    POOL.reset()
    assert POOL.ready(1, 120)
    assert pending_for([patient(i) for i in range(CHUNK)]).failures() == {}
    assert not POOL.ready(0, 1)


def test_a_large_write_queues_all_its_chunks_for_the_workers_at_once() -> None:
    """The workers take a large write's chunks from their queue without waiting for a thread
    of the server process to hand each over (ProcessPoolExecutor queues one more than it has
    workers); the standard library's own default is left as it was."""
    before = process.EXTRA_QUEUED_CALLS
    executor = _new_executor(1)
    try:
        assert executor._call_queue._maxsize == 1 + QUEUED_CHUNKS  # type: ignore[attr-defined]
        assert before == process.EXTRA_QUEUED_CALLS  # the library's default is untouched
        chunks = [[(i, orjson.dumps(patient(i)), None)] for i in range(24)]
        futures = [executor.submit(check_chunk, c) for c in chunks]
        assert [f.result(timeout=120) for f in futures] == [[] for _ in chunks]
    finally:
        executor.shutdown(wait=True)


DECIMALS = [
    b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueInteger":1.50}',
    b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
    b'"valueQuantity":{"value":1.500E2}}',
    b'{"resourceType":"Patient","multipleBirthInteger":2.0}',
    b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
    b'"valueQuantity":{"value":0.123456789012345678}}',
    b'{"resourceType":"Observation","status":"final","code":{"text":"x"},'
    b'"valueQuantity":{"value":"1.50"}}',
]


@pytest.mark.parametrize("raw", DECIMALS)
def test_a_worker_reads_numbers_a_float_would_change_to_the_same_verdict(raw: bytes) -> None:
    """The request keeps a decimal's digits (jsonio.parse_object); a worker validates what plain
    orjson reads from the same bytes, and must come to the same answer."""
    failures = check_chunk([(0, raw, None)])
    expected = inline_verdict(raw)
    if expected is None:
        assert failures == []
    else:
        assert len(failures) == 1
        assert same(FhirError(*failures[0][1:]), expected)


def inline_verdict(raw: bytes) -> FhirError | None:
    try:
        validate_resource(jsonio.parse_object(raw))
    except FhirError as exc:
        return exc
    return None
