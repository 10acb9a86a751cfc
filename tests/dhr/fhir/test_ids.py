"""Server-assigned ids (https://hl7.org/fhir/R4/datatypes.html#id): time-ordered version 7
UUIDs (RFC 9562 section 5.7, ADR 0012), so every index on an id grows at its end."""

from __future__ import annotations

import threading
import time
import uuid

from dhr.fhir import ids
from dhr.fhir.ids import is_valid_id, new_id


def test_a_new_id_is_a_version_7_uuid_carrying_the_time_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made  # canonical, lower-case form
    assert is_valid_id(made)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    # The pool may hand out an id made a little earlier, never one from the future.
    assert before - 60_000 <= parsed.int >> 80 <= after


def test_ids_rise_and_never_repeat_even_across_threads() -> None:
    ids._POOL.clear()  # start from a fresh batch made now
    mine = [new_id() for _ in range(5 * ids._POOL_SIZE)]
    assert mine == sorted(mine)
    assert len(set(mine)) == len(mine)
    seen: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out += [new_id() for _ in range(2_000)]

    threads = [threading.Thread(target=make, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [i for out in seen for i in out]
    assert len(set(every)) == len(every)


def test_more_ids_in_a_millisecond_than_the_counter_holds_stay_in_order() -> None:
    made = ids._uuids(3 * 4096)[::-1]  # a batch comes smallest last
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    stamps = {uuid.UUID(m).int >> 80 for m in made}
    assert len(stamps) >= 3  # the counter ran over into the next milliseconds
