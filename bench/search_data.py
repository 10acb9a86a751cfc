"""Data for ``bench/search.py``: Synthea Bundle files on disk and query parameters drawn from them.

The 100 smallest Synthea (https://synthetichealth.github.io/synthea/) transaction Bundles are a
subset of the 617 (same file names), so the 617 size is reached by loading the other 517 files on
top of the 100. Query parameters (patients, codes, date windows, family names) are taken from the
100-bundle files only, so both sizes run exactly the same queries.
"""

from __future__ import annotations

import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SMALL = DATA / "synthea-r4-bundles-100-smallest.tar.gz"
ALL = DATA / "synthea-r4-bundles-all617.tar.gz"
SYNTHEA_ID = "https://github.com/synthetichealth/synthea"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
Resource = dict[str, Any]


def extract(archive: Path, into: Path, skip: frozenset[str] = frozenset()) -> list[Path]:
    """The ``.json`` members of ``archive`` written flat into ``into`` (sorted), minus ``skip``."""
    into.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if not member.isfile() or not name.endswith(".json") or name in skip:
                continue
            stream = tar.extractfile(member)
            if stream is None:
                continue
            target = into / name
            target.write_bytes(stream.read())
            out.append(target)
    return sorted(out)


def resources(files: list[Path]) -> list[Resource]:
    """Every entry resource of the Bundles in ``files``."""
    out: list[Resource] = []
    for path in files:
        bundle = orjson.loads(path.read_bytes())
        out.extend(e["resource"] for e in bundle.get("entry", ()) if "resource" in e)
    return out


@dataclass(frozen=True)
class PatientQuery:
    synthea_id: str  # the Patient.identifier value Synthea gives (the server assigns its own id)
    family: str
    code: str  # a LOINC code the patient has several Observations of
    low: str  # date window (day precision) holding some of those Observations
    high: str


def _day(obs: Resource) -> str | None:
    value = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start")
    return value[:10] if isinstance(value, str) and len(value) >= 10 else None


def _ref_uuid(ref: Any) -> str | None:
    text = ref.get("reference") if isinstance(ref, dict) else None
    return text.removeprefix("urn:uuid:") if isinstance(text, str) else None


def patient_queries(items: list[Resource], n: int) -> list[PatientQuery]:
    """``n`` patients spread evenly over those with repeated LOINC Observations (deterministic)."""
    patients = {r["id"]: r for r in items if r["resourceType"] == "Patient"}
    by_patient: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in items:
        if r["resourceType"] != "Observation":
            continue
        pid, day = _ref_uuid(r.get("subject")), _day(r)
        for coding in (r.get("code") or {}).get("coding", ()):
            if pid and day and coding.get("system") == LOINC and coding.get("code"):
                by_patient[pid][coding["code"]].append(day)
    candidates: list[PatientQuery] = []
    for pid in sorted(by_patient):
        patient = patients.get(pid)
        if patient is None:
            continue
        synthea = next(
            (i["value"] for i in patient.get("identifier", ()) if i.get("system") == SYNTHEA_ID),
            None,
        )
        family = next(
            (nm.get("family") for nm in patient.get("name", ()) if nm.get("family")), None
        )
        codes = by_patient[pid]
        code = max(sorted(codes), key=lambda c: len(codes[c]))
        days = sorted(codes[code])
        if synthea is None or family is None or len(days) < 2:
            continue
        low, high = days[len(days) // 4], days[(3 * len(days)) // 4]
        candidates.append(PatientQuery(synthea, family, code, low, high))
    step = max(len(candidates) // n, 1)
    return candidates[::step][:n]


def condition_codes(items: list[Resource], n: int) -> list[str]:
    """The ``n`` most frequent SNOMED Condition codes (ties by code)."""
    counts: Counter[str] = Counter()
    for r in items:
        if r["resourceType"] == "Condition":
            for coding in (r.get("code") or {}).get("coding", ()):
                if coding.get("system") == SNOMED and coding.get("code"):
                    counts[coding["code"]] += 1
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
