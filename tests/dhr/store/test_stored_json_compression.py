"""Large resources are stored and read back whole (migration 0016): on PostgreSQL their JSON is
compressed with LZ4 (https://www.postgresql.org/docs/15/storage-toast.html), whether one
resource is created or many at once; SQLite stores the bytes as written.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Engine, text

from dhr.store.db import unit_of_work
from dhr.store.repository import ResourceRepository

# Well over the ~2 kB from which PostgreSQL compresses a value, and compressible.
NOTE = "Seen in clinic; blood pressure reviewed and repeat prescription issued. " * 120


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "Clinic note"},
        "note": [{"text": NOTE}],
    }


def compression(engine: Engine, res_ids: list[str]) -> set[str | None]:
    with unit_of_work(engine, write=False) as conn:
        rows = conn.execute(
            text(
                "SELECT pg_column_compression(data) FROM resource_version "
                "WHERE res_type = 'Observation' AND res_id = ANY(:ids)"
            ),
            {"ids": res_ids},
        )
        return {r[0] for r in rows}


def test_large_resources_read_back_whole_and_postgresql_compresses_them_with_lz4(
    engine: Engine,
) -> None:
    one = f"big-{uuid.uuid4().hex[:12]}"
    many = [f"big-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    with unit_of_work(engine, write=True) as conn:
        repo = ResourceRepository(conn)
        repo.create("Observation", one, observation())
        repo.create_many([("Observation", res_id, observation()) for res_id in many])
    with unit_of_work(engine, write=False) as conn:
        repo = ResourceRepository(conn)
        for res_id in [one, *many]:
            stored = repo.read_current("Observation", res_id)
            assert stored is not None
            assert stored.data is not None
            assert orjson.loads(stored.data)["note"] == [{"text": NOTE}]
    if engine.dialect.name == "postgresql":
        assert compression(engine, [one, *many]) == {"lz4"}
