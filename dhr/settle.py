"""What a serving process does once start-up is over (ADR 0011).

1. Start the validation workers (:mod:`dhr.fhir.validate_pool`) so that the first large write
   does not wait for them to import the models.
2. Take what start-up built (the ``fhir.resources`` models, SQLAlchemy's tables, the search
   parameter registry: several hundred thousand objects that live as long as the process) out of
   the cyclic garbage collector's reach with :func:`gc.freeze`, and collect the young generation
   less often (``gc.set_threshold``). A collection of the oldest generation otherwise walks them
   all, and an ingest, which allocates a great deal, triggers many
   (https://docs.python.org/3/library/gc.html#gc.freeze).

Freezing happens once per process: what a later call would freeze may include objects that become
garbage afterwards, which a frozen generation never frees.

A Bundle or an ``$import`` (:func:`collector_paused`, from the dispatcher) runs with the cyclic
collector off: what it allocates (the parsed Bundle, the plans, the index rows) lives until it
ends, so every collection during it walked all of it again; reference counting frees it when
the request ends, and one young-generation pass then collects the few cycles it left.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from dhr.config import Settings
from dhr.fhir.validate_pool import POOL

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)

_lock = threading.Lock()
_frozen: list[bool] = []  # holds True once this process has frozen


def settle(settings: Settings, wait_seconds: float = 0.0) -> None:
    """Start the validation workers and, the first time, freeze start-up's objects.

    ``wait_seconds`` > 0: also wait (up to then) until every worker is up, as a benchmark does
    before it times the server's steady state; a server goes on at once."""
    POOL.start(settings.validation_workers)
    if wait_seconds > 0 and settings.validation_workers > 0:
        POOL.ready(settings.validation_workers, wait_seconds)
    with _lock:
        if _frozen:
            return
        _frozen.append(True)
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


_pause_lock = threading.Lock()
_pauses = [0]  # paused blocks running now
_resume = [False]  # whether the collector was on when the first of them began


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the block runs (nor while another thread's paused
    block does); when the last one ends the collector is back as it was, and collects the young
    generation at once (end the block where the request's objects are gone: the pass is short
    then, and its cost falls on the request that caused it)."""
    with _pause_lock:
        _pauses[0] += 1
        if _pauses[0] == 1:
            _resume[0] = gc.isenabled()
            gc.disable()
    try:
        yield
    finally:
        with _pause_lock:
            _pauses[0] -= 1
            last = _pauses[0] == 0 and _resume[0]
            if last:
                gc.enable()
        if last:
            gc.collect(0)
