"""``dhr load``: Bundle JSON and NDJSON files through the API's write path (in progress)."""

from __future__ import annotations

from dhr.config import Settings


def run_load(settings: Settings, paths: list[str]) -> int:
    del settings, paths
    print("dhr load is not implemented yet")
    return 2
