#!/usr/bin/env python3
"""Derive dhr/data/compartment-patient.json from the official R4 Patient CompartmentDefinition.

Usage: python scripts/derive_compartment.py [../shared/fhir-r4/CompartmentDefinition-patient.json]

https://hl7.org/fhir/R4/compartmentdefinition-patient.html (CC0, HL7). Only what compartment
search needs is kept: for each resource type that can be in the compartment, the search
parameters whose references to the Patient put a resource in it. Types without parameters (never
in the compartment) are dropped. Every parameter is checked to be a reference parameter of its
type in dhr/data/search-parameters.json, so the vendored file never names what search cannot use.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "fhir-r4" / "CompartmentDefinition-patient.json"
TARGET = ROOT / "dhr" / "data" / "compartment-patient.json"
PARAMS = ROOT / "dhr" / "data" / "search-parameters.json"


def reference_params() -> set[tuple[str, str]]:
    """(base type, code) of every reference search parameter in the vendored registry."""
    data = json.loads(PARAMS.read_text(encoding="utf-8"))
    return {
        (base, p["code"])
        for p in data["parameters"]
        if p["type"] == "reference"
        for base in p["base"]
    }


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else DEFAULT_SOURCE
    definition = json.loads(source.read_text(encoding="utf-8"))
    known = reference_params()
    members: dict[str, list[str]] = {}
    for item in definition["resource"]:
        params = sorted(p for p in item.get("param") or () if p != "{def}")
        missing = [p for p in params if (item["code"], p) not in known]
        if missing:
            raise SystemExit(f"{item['code']}: {missing} are not reference parameters")
        if params:
            members[item["code"]] = params
    head = {k: definition[k] for k in ("url", "version", "code")}
    lines = ",\n".join(f"{json.dumps(t)}:{json.dumps(p)}" for t, p in sorted(members.items()))
    text = f'{json.dumps(head)[:-1]}, "resource": {{\n{lines}\n}}}}\n'
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {len(members)} compartment resource types to {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
