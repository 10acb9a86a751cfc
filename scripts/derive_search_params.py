#!/usr/bin/env python3
"""Derive dhr/data/search-parameters.json from the official FHIR R4 SearchParameter bundle.

Usage: python scripts/derive_search_params.py [../shared/fhir-r4/search-parameters.r4-official.json]

The official bundle (CC0, HL7) has 1,397 SearchParameters; we keep those with a base (the ten
extension parameters without one are dropped) and only the fields search needs, sorted for
stable diffs. The output is vendored in the package; this script is how it is remade.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "fhir-r4" / "search-parameters.r4-official.json"
TARGET = ROOT / "dhr" / "data" / "search-parameters.json"


def compact(resource: dict) -> dict:
    out = {
        "url": resource["url"],
        "code": resource["code"],
        "base": sorted(resource["base"]),
        "type": resource["type"],
        "expression": resource.get("expression"),
    }
    if resource.get("target"):
        out["target"] = sorted(resource["target"])
    if resource.get("component"):
        out["component"] = [
            {"definition": c["definition"], "expression": c["expression"]}
            for c in resource["component"]
        ]
    return out


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    bundle = json.loads(source.read_text(encoding="utf-8"))
    params = [
        compact(e["resource"])
        for e in bundle["entry"]
        if e["resource"].get("resourceType") == "SearchParameter" and e["resource"].get("base")
    ]
    params.sort(key=lambda p: p["url"])
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(p, separators=(",", ":"), ensure_ascii=False) for p in params)
    header = json.dumps({"fhirVersion": "4.0.1", "source": source.name})[:-1]
    TARGET.write_text(f'{header}, "parameters": [\n{lines}\n]}}\n', encoding="utf-8")
    print(f"wrote {len(params)} search parameters to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
