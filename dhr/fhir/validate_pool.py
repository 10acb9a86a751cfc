"""Validation of a large write in worker processes, while the request goes on without waiting.

https://hl7.org/fhir/R4/validation.html; ADR 0011. Validating a resource against the
``fhir.resources`` models (:func:`dhr.fhir.validate.validate_resource`) is the largest single cost
of an ingest, and it depends on nothing but the resource. A transaction Bundle or ``$import`` with
at least ``validation_pool_min`` resources therefore hands them, serialised, to a pool of
``validation_workers`` processes (``spawn``ed, so they share no lock or connection with the
server) and plans and writes them in its own unit of work meanwhile. When that unit of work has
written everything and is about to commit (:func:`dhr.store.db.before_commit`),
:meth:`Pending.failures` waits for the verdicts: any invalid resource fails the request
with exactly the OperationOutcome in-process validation gives, and it is the answer even when the
speculative write failed first (an invalid resource explains whatever followed from it). Nothing
commits unvalidated.

A worker that dies, or a pool that cannot start, costs speed, never an answer: the chunks it held
are validated in the request's own process. ``validation_workers = 0`` turns the pool off.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, process
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import orjson

from dhr.errors import FhirError, Issue
from dhr.fhir import jsonio
from dhr.fhir.validate import validate_resource

if TYPE_CHECKING:
    from dhr.config import Settings

log = logging.getLogger(__name__)

CHUNK = 16  # resources a worker validates per task
PARENT_POLL_SECONDS = 1.0  # how soon a worker notices that its server has gone
WAIT_SECONDS = 600.0  # a request's verdicts not in by then are reached here (a stuck worker)

# One resource to validate: (the caller's index, its JSON, the type its URL names or None).
Item = tuple[int, bytes, str | None]
# One failure, picklable: (index, status, code, diagnostics, message code, expression, issues).
Failure = tuple[int, int, str, str, str, tuple[str, ...], tuple[Issue, ...]]


def check_chunk(items: list[Item]) -> list[Failure]:
    """Validate ``items``; the failures (what runs in a worker, and here when none can)."""
    out: list[Failure] = []
    for index, raw, expected in items:
        try:
            validate_resource(_parsed(raw), expected)
        except FhirError as exc:
            where = (exc.diagnostics, exc.message_code, exc.expression, exc.extra_issues)
            out.append((index, exc.status, exc.code, *where))
    return out


def _parsed(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed for validation. The request parsed the same bytes already, keeping its
    decimals' digits (:func:`dhr.fhir.jsonio.parse_object`); a verdict does not depend on them
    (a number is valid or not whether read as float or Decimal), so plain orjson will do here,
    without the search for numbers a float would change. Anything orjson refuses is left to
    ``parse_object`` and its error."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return jsonio.parse_object(raw)
    return data if isinstance(data, dict) else jsonio.parse_object(raw)


def _as_error(failure: Failure) -> FhirError:
    _, status, code, diagnostics, message_code, expression, extra = failure
    return FhirError(status, code, diagnostics, message_code, expression, extra)


def _start_worker(parent: int) -> None:
    """Import every model before the first task, keep them out of the collector's way, and
    leave when the server does."""
    from dhr.fhir.types import model_class, resource_types

    threading.Thread(target=_follow, args=(parent,), name="dhr-parent-watch", daemon=True).start()
    for name in resource_types():
        model_class(name)
    gc.collect()
    gc.freeze()


def _follow(parent: int) -> None:
    """End this worker once its server process is gone, however that ended (a killed server
    never tells its workers; they would otherwise wait on the task queue forever)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(0)


def _ready() -> int:
    """Answered once the worker's initializer has run: which worker answered."""
    return os.getpid()


class Pending:
    """The validations one request started; :meth:`failures` waits for their verdicts."""

    def __init__(self, pool: ValidationPool, workers: int) -> None:
        self._pool = pool
        self._workers = workers
        self._chunk: list[Item] = []
        self._chunks: list[tuple[list[Item], Future[list[Failure]] | None]] = []

    def add(self, index: int, raw: bytes, expected: str | None) -> None:
        """Queue one resource; every :data:`CHUNK` of them go to a worker at once."""
        self._chunk.append((index, raw, expected))
        if len(self._chunk) >= CHUNK:
            self._send()

    def failures(self) -> dict[int, FhirError]:
        """Every invalid resource's error by index (lowest first); empty when all are valid."""
        self._send()
        deadline = time.monotonic() + WAIT_SECONDS
        found: list[Failure] = []
        for items, future in self._chunks:
            found += self._verdict(items, future, deadline)
        self._chunks = []
        return {f[0]: _as_error(f) for f in sorted(found, key=lambda f: f[0])}

    def _send(self) -> None:
        if self._chunk:
            chunk, self._chunk = self._chunk, []
            self._chunks.append((chunk, self._pool.submit(chunk, self._workers)))

    def _verdict(
        self, items: list[Item], future: Future[list[Failure]] | None, deadline: float
    ) -> list[Failure]:
        if future is not None:
            try:
                return future.result(timeout=max(0.0, deadline - time.monotonic()))
            except (BrokenProcessPool, FutureTimeout, CancelledError, OSError) as exc:
                log.warning("validation worker failed (%r); validating here instead", exc)
                if not isinstance(exc, CancelledError):
                    self._pool.reset()
        return check_chunk(items)


def aside(settings: Settings, count: int) -> Pending | None:
    """Validation in the pool for a write of ``count`` resources, or None: validate in-line."""
    workers = settings.validation_workers
    if workers <= 0 or count < settings.validation_pool_min:
        return None
    return Pending(POOL, workers)


class ValidationPool:
    """The process's one pool of validation workers, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._workers = 0

    def start(self, workers: int) -> None:
        """Spawn ``workers`` processes now (they take a few seconds to import the models)."""
        executor = self._get(workers)
        try:
            for _ in range(workers if executor is not None else 0):
                executor.submit(_ready)  # type: ignore[union-attr]
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.warning("validation pool cannot start (%s)", exc)
            self.reset()

    def ready(self, workers: int, timeout: float) -> bool:
        """Wait until ``workers`` distinct workers have started (imported every model), or
        ``timeout`` seconds; whether they all did. What a benchmark waits for before timing the
        server's steady state (a started server's workers take a few seconds to come up)."""
        executor = self._get(workers)
        if executor is None:
            return False
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while len(seen) < workers and time.monotonic() < deadline:
            try:
                asked = [executor.submit(_ready) for _ in range(workers)]
                for future in asked:
                    seen.add(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except (BrokenProcessPool, FutureTimeout, RuntimeError, OSError):
                return False
            if len(seen) < workers:
                time.sleep(0.05)
        return len(seen) >= workers

    def submit(self, chunk: list[Item], workers: int) -> Future[list[Failure]] | None:
        """Start validating ``chunk`` in a worker; None when no worker can take it."""
        executor = self._get(workers)
        if executor is None:
            return None
        try:
            return executor.submit(check_chunk, chunk)
        except (BrokenProcessPool, RuntimeError, OSError) as exc:
            log.warning("validation pool unavailable (%s); validating in the request", exc)
            self.reset()
            return None

    def stop(self) -> None:
        """Shut the workers down (server shutdown); a later submit starts new ones."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def reset(self) -> None:
        """Drop a broken pool; the next submit starts a new one."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _get(self, workers: int) -> ProcessPoolExecutor | None:
        if workers <= 0:
            return None
        with self._lock:
            if self._executor is None:
                try:
                    self._executor = _new_executor(workers)
                except OSError as exc:
                    log.warning("validation pool cannot start (%s)", exc)
                    return None
            return self._executor


# Chunks the workers' queue holds at once. ProcessPoolExecutor queues only one more call than it
# has workers and hands over the next one from a thread of the server process when a result comes
# back; that thread must win the GIL from the request it works for (up to the 5 ms switch
# interval each time), so the workers sat idle between chunks. A large write's chunks all go
# into the queue at once instead, and the workers take them without the server's help.
QUEUED_CHUNKS = 4096
_executor_lock = threading.Lock()


def _new_executor(workers: int) -> ProcessPoolExecutor:
    """A spawn-context pool of ``workers`` whose call queue holds :data:`QUEUED_CHUNKS`."""
    with _executor_lock:  # the queue's size is read from the module when the pool is made
        extra = process.EXTRA_QUEUED_CALLS
        setattr(process, "EXTRA_QUEUED_CALLS", QUEUED_CHUNKS)  # noqa: B010 (Final in typeshed)
        try:
            return ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        finally:
            setattr(process, "EXTRA_QUEUED_CALLS", extra)  # noqa: B010


POOL = ValidationPool()
