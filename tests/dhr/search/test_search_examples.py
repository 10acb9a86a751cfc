"""Search conformance over the official R4 examples (https://hl7.org/fhir/R4/downloads.html).

The examples R4B validates (up to 64 KiB each: 4,986 of them, 126 types) are written with
``PUT [type]/[id]`` through the server's own dispatcher; then, for a broad deterministic sample
of (resource, parameter, value) triples taken from the index rows extraction makes of each
example, the value is written back as a search value of its parameter's type
(https://hl7.org/fhir/R4/search.html#ptypes) and
``GET [type]?[param]=[value]&_count=1000&_elements=id`` (strict handling, so an unknown parameter
is a 400 rather than ignored) must find the resource:

* token: ``system|code`` (``code`` alone when there is no system, ``system|`` without a code);
  reference ``:identifier`` rows likewise;
* string: the stored value, as a prefix (the default) and with ``:exact``;
* date: ``eq`` at the value's own precision when the range is a whole year, month, day or second,
  else ``ge``/``le`` on the range's bounds;
* reference: ``Type/id`` for local references, the URL otherwise;
* quantity: ``value|system|code`` (``value||unit`` or ``value`` when there is no coded unit);
* number: the value; uri: the URI exactly.

Composite parameters are not sampled (their components are the rows above). A union parameter
(:mod:`dhr.search.unions`, Observation's ``combo-code``...) has no rows of its own: each row of
one of its parts is also searched under the union's code. The figures per type
are printed (``-s``); every miss is listed in the failure message.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from dhr.access.system import cli_principal
from dhr.api.dispatch import Services, handle
from dhr.api.message import FhirRequest
from dhr.config import Settings
from dhr.fhir.types import model_class, resource_types
from dhr.search.extract import extract
from dhr.search.extraction.date import HIGHEST, LOWEST
from dhr.search.registry import registry
from dhr.search.rows import (
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from dhr.search.unions import unions
from tests.conftest import empty_tables

EXAMPLES = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "fhir-r4"
    / "hl7.fhir.r4.examples-4.0.1.tgz"
)
MAX_BYTES = 64 * 1024  # larger files (definition Bundles, big profiles) take most of the time
PER_PARAMETER = 2  # triples per (type, parameter), from different resources
JSON_HEADERS = {"content-type": "application/fhir+json", "prefer": "return=minimal"}
SEARCH_HEADERS = {"prefer": "handling=strict"}
SYSTEM = cli_principal("tests")  # a system principal (system/*.cruds), as the CLI loader runs
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not EXAMPLES.exists(), reason=f"{EXAMPLES} is not present"),
]


@cache
def examples() -> tuple[dict[str, Any], ...]:
    """The examples up to MAX_BYTES that R4B validates and that carry an id (sorted, one per
    ``type/id``)."""
    known = set(resource_types())
    found: dict[tuple[str, str], dict[str, Any]] = {}
    with tarfile.open(EXAMPLES) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.endswith(".json") or member.size > MAX_BYTES:
                continue
            stream = tar.extractfile(member)
            data = json.loads(stream.read()) if stream else None
            if not isinstance(data, dict) or data.get("resourceType") not in known:
                continue  # package metadata, or a type R4B dropped
            if not isinstance(data.get("id"), str):
                continue
            try:
                model_class(data["resourceType"]).model_validate(data)
            except Exception:  # invalid in R4B: never writable
                continue
            found[(data["resourceType"], data["id"])] = data
    return tuple(found[k] for k in sorted(found))


# -- search values --------------------------------------------------------------------------


def esc(value: str) -> str:
    """https://hl7.org/fhir/R4/search.html#escaping"""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def instant(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def date_values(row: DateRow) -> list[str] | None:
    """``eq`` at the range's own precision, else ``ge``/``le`` bounds (seconds, UTC)."""
    low, high = row.low, row.high
    if low != LOWEST and high != HIGHEST:
        start, end = instant(low), instant(high)
        if start.time() == datetime.min.time():
            if end == start + timedelta(days=1):
                return [f"eq{start:%Y-%m-%d}"]
            month = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
            if start.day == 1 and end == month:
                return [f"eq{start:%Y-%m}"]
            if start.day == 1 and start.month == 1 and end == start.replace(year=start.year + 1):
                return [f"eq{start:%Y}"]
        if end == start + timedelta(seconds=1):
            return [f"eq{start:%Y-%m-%dT%H:%M:%S}Z"]
    out: list[str] = []
    if low != LOWEST:
        out.append(f"ge{instant(low):%Y-%m-%dT%H:%M:%S}Z")
    if high != HIGHEST:
        last = instant(high - 1)
        out.append(f"le{last:%Y-%m-%dT%H:%M:%S}Z")
    return out or None


def search_pairs(res_type: str, row: IndexRow) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(kind, query pairs) for one index row; nothing when the row cannot be searched back."""
    code = row.param
    if isinstance(row, TokenRow):
        if row.code is None and row.system is None:
            return
        if row.system is None:
            value = esc(row.code or "")
        else:
            value = f"{esc(row.system)}|{esc(row.code or '')}"
        yield "reference:identifier" if code.endswith(":identifier") else "token", [(code, value)]
    elif isinstance(row, StringRow):
        if row.exact.strip():
            yield "string", [(code, esc(row.exact))]
            yield "string:exact", [(f"{code}:exact", esc(row.exact))]
    elif isinstance(row, DateRow):
        values = date_values(row)
        if values:
            yield "date", [(code, v) for v in values]
    elif isinstance(row, ReferenceRow):
        targets = registry().get(res_type, code.split(":")[0]).targets  # type: ignore[union-attr]
        if row.target_type and targets and row.target_type not in targets:
            value = f"{row.target_type}/{row.target_id}"
            yield "skipped (the parameter does not allow that type)", [(code, value)]
        elif row.url and ":" not in row.url and "/" not in row.url:
            yield "skipped (a bare relative canonical)", [(code, row.url)]
        elif row.target_type and row.target_id:
            yield "reference", [(code, f"{row.target_type}/{row.target_id}")]
        elif row.url:
            yield "reference", [(code, esc(row.url))]
    elif isinstance(row, QuantityRow):
        if row.system and row.code:
            value = f"{number(row.value)}|{esc(row.system)}|{esc(row.code)}"
        elif row.unit:
            value = f"{number(row.value)}||{esc(row.unit)}"
        else:
            value = number(row.value)
        yield "quantity", [(code, value)]
    elif isinstance(row, NumberRow):
        yield "number", [(code, number(row.value))]
    elif isinstance(row, UriRow):
        yield "uri", [(code, esc(row.uri))]


def triples(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, str, str, list[tuple[str, str]]]]:
    """(kind, type, id, query pairs): up to PER_PARAMETER resources per (type, parameter, kind)."""
    taken: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    out: list[tuple[str, str, str, list[tuple[str, str]]]] = []
    for doc in docs:
        rtype, rid = doc["resourceType"], doc["id"]
        within = {part: code for code, parts in unions(rtype).items() for part in parts}
        rows = extract(rtype, doc)
        rows += [row._replace(param=within[row.param]) for row in rows if row.param in within]
        for row in rows:
            param = registry().get(rtype, row.param.split(":")[0])
            if param is None or param.type == "composite" or row.comp:
                continue
            for kind, pairs in search_pairs(rtype, row):
                seen = taken[(rtype, row.param, kind)]
                if rid in seen or len(seen) >= PER_PARAMETER:
                    continue
                seen.add(rid)
                out.append((kind, rtype, rid, pairs))
    return out


# -- the test ---------------------------------------------------------------------------------


def found_ids(services: Services, rtype: str, pairs: list[tuple[str, str]]) -> tuple[int, set[str]]:
    """(status, ids) over every page of the search."""
    query = (*pairs, ("_count", "1000"), ("_elements", "id"))
    req = FhirRequest("GET", rtype, query=query, headers=SEARCH_HEADERS)
    ids: set[str] = set()
    while True:
        resp = handle(services, req, SYSTEM)
        body = resp.body_json() or {}
        if resp.status != 200:
            return resp.status, {str(body)[:300]}
        ids.update(
            e["resource"]["id"]
            for e in body.get("entry") or []
            if (e.get("search") or {}).get("mode") == "match"
        )
        following = [link["url"] for link in body.get("link", []) if link["relation"] == "next"]
        if not following:
            return 200, ids
        req = FhirRequest.from_url("GET", following[0].split("/fhir/", 1)[-1])
        req = FhirRequest("GET", req.path, req.query, SEARCH_HEADERS)


def test_examples_are_found_by_their_own_index_values(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=database_url, data_dir=tmp_path, consent_implicit="direct-care"
    )
    services = Services(settings, engine)
    empty_tables(engine)
    try:
        loaded: list[dict[str, Any]] = []
        refused: list[str] = []
        for doc in examples():
            path = f"{doc['resourceType']}/{doc['id']}"
            req = FhirRequest("PUT", path, headers=JSON_HEADERS, body=orjson.dumps(doc))
            resp = handle(services, req, SYSTEM)
            if resp.status < 300:
                loaded.append(doc)
            else:
                refused.append(f"{path}: {resp.status}")
        assert len(loaded) >= 0.95 * len(examples()), refused[:20]

        checked: Counter[str] = Counter()
        failures: list[str] = []
        skipped: list[str] = []
        for kind, rtype, rid, pairs in triples(tuple(loaded)):
            checked[kind] += 1
            query = "&".join(f"{k}={v}" for k, v in pairs)
            if kind.startswith("skipped"):
                skipped.append(f"{kind}: {rtype}/{rid} has {query}")
                continue
            status, ids = found_ids(services, rtype, pairs)
            if status != 200 or rid not in ids:
                got = f"{status} {sorted(ids)[:3]}" if status != 200 else f"{len(ids)} others"
                failures.append(f"{kind}: GET {rtype}?{query} misses {rtype}/{rid} ({got})")
        figures = ", ".join(f"{k} {n}" for k, n in sorted(checked.items()))
        print(
            f"\n{len(loaded)} examples loaded ({len(refused)} refused); "
            f"{sum(checked.values())} searches: {figures}; {len(failures)} failed"
        )
        for line in refused + skipped + failures:
            print("  " + line)
        assert not failures, "\n".join(failures[:50])
    finally:
        empty_tables(engine)
