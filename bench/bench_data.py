"""Benchmark data for ``bench/rest.py``: Synthea resources when available, else generated ones.

Synthea (https://synthetichealth.github.io/synthea/) transaction Bundles are read from
``../shared/data/synthea-r4-bundles-100-smallest.tar.gz`` beside the repository; without it,
seeded Patients with heart-rate Observations and a Condition each are generated.
"""

from __future__ import annotations

import random
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = ROOT.parent / "shared" / "data" / "synthea-r4-bundles-100-smallest.tar.gz"
BUNDLE_SIZE = 100
Resource = dict[str, Any]


def synthea_bundles() -> Iterator[Resource]:
    with tarfile.open(SYNTHEA, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json"):
                stream = tar.extractfile(member)
                if stream is not None:
                    yield orjson.loads(stream.read())


def _cc(system: str, code: str, display: str = "") -> Resource:
    return {"coding": [{"system": system, "code": code, "display": display or code}]}


HEART_RATE = _cc("http://loinc.org", "8867-4", "Heart rate")
VITAL = _cc("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")
ACTIVE = _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")
HYPERTENSION = _cc("http://snomed.info/sct", "38341003", "Hypertensive disorder")


def generated_resources(n: int) -> list[Resource]:
    """Patients, each with six heart-rate Observations and a Condition (seeded, repeatable)."""
    rng = random.Random(42)
    out: list[Resource] = []
    while len(out) < n:
        pid = f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        nhs = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": str(rng.randrange(10**9))}
        born = f"{rng.randrange(1930, 2020)}-0{rng.randrange(1, 10)}-1{rng.randrange(10)}"
        name = {"family": rng.choice(["Smith", "Jones", "Patel"]), "given": ["Sam"]}
        out.append(
            {
                "resourceType": "Patient",
                "identifier": [nhs],
                "name": [name],
                "gender": rng.choice(["male", "female"]),
                "birthDate": born,
                "address": [{"line": ["1 High St"], "city": "Leeds", "postalCode": "LS1 1AA"}],
            }
        )
        for _ in range(6):
            value = {
                "value": rng.randrange(50, 110),
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            }
            out.append(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "category": [VITAL],
                    "code": HEART_RATE,
                    "subject": {"reference": pid},
                    "effectiveDateTime": "2024-01-02T10:00:00+00:00",
                    "valueQuantity": value,
                }
            )
        out.append(
            {
                "resourceType": "Condition",
                "clinicalStatus": ACTIVE,
                "code": HYPERTENSION,
                "subject": {"reference": pid},
                "onsetDateTime": "2020-05-01",
            }
        )
    return out[:n]  # fmt: skip


def dataset(n: int) -> tuple[str, list[Resource], list[Resource]]:
    """(source, ``n`` resources for create/read, transaction Bundles holding about ``n``)."""
    if SYNTHEA.is_file():
        singles: list[Resource] = []
        bundles: list[Resource] = []
        in_bundles = 0
        for bundle in synthea_bundles():
            if len(singles) < n:
                singles.extend(e["resource"] for e in bundle["entry"][: n - len(singles)])
            elif in_bundles < n:
                bundles.append(bundle)
                in_bundles += len(bundle["entry"])
            else:
                break
        return f"Synthea ({SYNTHEA.name})", singles, bundles
    singles = generated_resources(n)
    extra = generated_resources(2 * n)[n:]
    bundles = []
    for start in range(0, len(extra), BUNDLE_SIZE):
        chunk = extra[start : start + BUNDLE_SIZE]
        entries = [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in chunk
        ]
        bundles.append({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return "generated Patients/Observations/Conditions", singles, bundles
