"""Finding and reading the files ``dhr load`` accepts.

* ``.json`` (optionally ``.json.gz``): one FHIR resource or Bundle
  (https://hl7.org/fhir/R4/json.html, https://hl7.org/fhir/R4/bundle.html);
* ``.ndjson`` / ``.jsonl`` (optionally ``.gz``): one resource per line, as in FHIR Bulk Data
  (https://hl7.org/fhir/uv/bulkdata/export.html#file-format, https://github.com/ndjson/ndjson-spec).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import IO, cast

JSON_SUFFIXES = (".json", ".json.gz")
NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


class UsageError(Exception):
    """A path that does not exist or cannot be loaded (exit code 2)."""


def kind_of(path: Path) -> str | None:
    """``"json"``, ``"ndjson"`` or None for a file name we do not load."""
    name = path.name.lower()
    if name.endswith(NDJSON_SUFFIXES):
        return "ndjson"
    if name.endswith(JSON_SUFFIXES):
        return "json"
    return None


def discover(paths: list[str]) -> list[Path]:
    """The files named, and the loadable files under the directories named, in a stable order.

    A missing path, or a file named explicitly that is neither JSON nor NDJSON, is a usage error.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inner = sorted(p for p in path.rglob("*") if p.is_file() and kind_of(p) is not None)
            candidates = inner
        elif path.is_file():
            if kind_of(path) is None:
                raise UsageError(f"{raw}: not a .json, .ndjson or .jsonl file (optionally gzipped)")
            candidates = [path]
        else:
            raise UsageError(f"{raw}: no such file or directory")
        for candidate in candidates:
            resolved = candidate.resolve()
            if resolved not in seen:
                seen.add(resolved)
                found.append(candidate)
    return found


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when the name ends in ``.gz``."""
    if path.name.lower().endswith(".gz"):
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def read_all(path: Path) -> bytes:
    with open_binary(path) as stream:
        return stream.read()


def ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` for every non-blank line (numbered from 1)."""
    with open_binary(path) as stream:
        for number, line in enumerate(stream, start=1):
            stripped = line.strip()
            if stripped:
                yield number, stripped
