"""dhr.settle: a Bundle or an $import runs with the cyclic garbage collector paused
(https://docs.python.org/3/library/gc.html), and the collector always comes back as it was."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from dhr.settle import collector_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_is_off_inside_and_back_after_with_the_young_generation_collected() -> None:
    with collector_paused():
        assert not gc.isenabled()
        garbage = [[] for _ in range(5_000)]
        for item in garbage:
            item.append(item)  # cycles only the collector can free
        del garbage, item
        assert gc.get_count()[0] >= 5_000
    assert gc.isenabled()
    assert gc.get_count()[0] < 5_000


def test_overlapping_blocks_in_two_threads_keep_it_off_until_the_last_ends() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(10)
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread's block still runs
    leave.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_switched_off_elsewhere_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    gc.enable()


def test_a_failing_block_still_gives_the_collector_back() -> None:
    with pytest.raises(ValueError, match="boom"), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()
