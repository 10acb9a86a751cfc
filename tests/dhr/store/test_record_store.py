"""Source identities read for several resource types at once (:mod:`dhr.store.record_store`):
what the ingest planner asks once per Bundle, and the master Patients and links it claims and
reads for many patients at once, on both engines."""

from __future__ import annotations

from sqlalchemy import Engine

from dhr.store import db, record_store
from tests.conftest import empty_tables


def identity(source: str, res_type: str, key: str, res_id: str) -> record_store.IdentityRow:
    return (source, res_type, key, res_id, res_id)


def test_keys_and_owned_ids_of_several_types_are_the_source_own_per_type(
    engine: Engine,
) -> None:
    empty_tables(engine)
    with db.unit_of_work(engine, write=True) as conn:
        record_store.insert_keys(
            conn,
            [
                identity("A", "Patient", "id:1", "p1"),
                identity("A", "Observation", "id:1", "o1"),
                identity("A", "Observation", "id:2", "o2"),
                identity("B", "Observation", "id:3", "o3"),
            ],
        )
    with db.unit_of_work(engine, write=True) as conn:  # a key already held stays as it was
        record_store.insert_keys(conn, [identity("A", "Patient", "id:1", "p9")])
    with db.unit_of_work(engine, write=True) as conn:  # so does one given twice in one batch
        record_store.insert_keys(
            conn,
            [
                identity("A", "Patient", "id:1", "p8"),
                identity("A", "Claim", "id:5", "c5"),
                identity("A", "Claim", "id:5", "c6"),
            ],
        )
    with db.unit_of_work(engine, write=True) as conn:
        wanted = {"Patient": ["id:1", "id:2"], "Observation": ["id:1", "id:3"], "Claim": ["id:5"]}
        keys = record_store.lookup_keys(conn, "A", wanted)
        owned = record_store.source_owns(
            conn, "A", {"Patient": ["p1", "o1"], "Observation": ["o1", "o2", "o3"]}
        )
    # The same local key under another type is another resource; B's key is not A's.
    assert keys == {
        "Patient": {"id:1": "p1"},
        "Observation": {"id:1": "o1"},
        "Claim": {"id:5": "c5"},
    }
    assert owned == {"Patient": {"p1"}, "Observation": {"o1", "o2"}}


def test_masters_are_claimed_once_per_nhs_number_and_read_together(engine: Engine) -> None:
    empty_tables(engine)
    with db.unit_of_work(engine, write=True) as conn:
        first = record_store.claim_masters(conn, {"9000000009": "m1"}, 1)
    with db.unit_of_work(engine, write=True) as conn:  # one known number, two new ones
        wanted = {"9000000009": "m9", "9000000017": "m2", "9000000025": "m3"}
        second = record_store.claim_masters(conn, wanted, 2)
        record_store.add_links(
            conn,
            [
                {
                    "record_id": rid,
                    "source_id": "A",
                    "nhs_number": nhs,
                    "master_id": master,
                    "registered_at": 2,
                    "updated": 2,
                }
                for rid, nhs, master in [
                    ("r2", "9000000009", "m1"),
                    ("r1", "9000000009", "m1"),
                    ("r3", "9000000017", "m2"),
                ]
            ],
        )
        numbers = record_store.master_nhs_numbers(conn, ["m1", "m2", "m3", "not-a-master"])
        linked = record_store.records_of_masters(conn, ["m1", "m2", "m3"])
    assert first == {"9000000009": ("m1", True)}
    # the number claimed before keeps its master; the new ones get the ids offered
    assert second == {
        "9000000009": ("m1", False),
        "9000000017": ("m2", True),
        "9000000025": ("m3", True),
    }
    assert numbers == {"m1": "9000000009", "m2": "9000000017", "m3": "9000000025"}
    assert {m: [r.record_id for r in rows] for m, rows in linked.items()} == {
        "m1": ["r1", "r2"],
        "m2": ["r3"],
        "m3": [],
    }
