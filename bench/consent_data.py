"""Synthea data made realistic for the consent policy, for ``bench/consent.py``.

The Synthea (https://synthetichealth.github.io/synthea/) transaction Bundles are US-flavoured; the
policy (ARCHITECTURE.md "The policy layer") needs UK facts, added here before loading:

* every Organization gets an ODS code (identifier system
  https://fhir.nhs.uk/Id/ods-organization-code), deterministic per Synthea organisation, and is
  created conditionally (``ifNoneExist``, https://hl7.org/fhir/R4/http.html#ccreate) so one
  organisation is one resource;
* every Patient gets a valid NHS number (Modulus 11, 999 test range) and is registered with a
  practice: ``generalPractitioner`` names the organisation that provided most of its Encounters;
* about 3% of Conditions and Observations carry the sensitivity label MH (v3-ActCode);
* Consents (https://hl7.org/fhir/R4/consent.html), added to the patient's own Bundle: about 5% of
  patients deny one organisation (the benchmark's requester's practice), about 2% permit research;
* about 2% of patients are chosen for a national data opt-out (recorded after loading).

Patients are chosen by a hash of their Synthea id, so every run makes the same choices.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dhr.demo_record import nhs_test_numbers
from dhr.record.vocab import NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM

Resource = dict[str, Any]
SYNTHEA_ID = "https://github.com/synthetichealth/synthea"
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
MH_PERCENT, DENY_PERCENT, RESEARCH_PERCENT, OPT_OUT_PERCENT = 3, 5, 2, 2
PRACTICE_LETTERS = "ABCDEFGHJKLMNP"


def _hash(text: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha1(f"{salt}:{text}".encode()).digest()[:8], "big")


def chosen(text: str, salt: str, percent: int) -> bool:
    """Whether ``text`` falls in the ``percent`` chosen for ``salt`` (deterministic)."""
    return _hash(text, salt) % 100 < percent


def read_bundles(archive: Path, patients: int | None) -> list[Resource]:
    """The archive's Bundles (sorted by file name): every Bundle without a Patient (Synthea's
    organisation and practitioner lists) and ``patients`` patient Bundles spread evenly over
    the set (None: all)."""
    shared: list[Resource] = []
    people: list[Resource] = []
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted(
            (m for m in tar if m.isfile() and m.name.endswith(".json")), key=lambda m: m.name
        )
        wanted = _spread([m.name for m in members], patients)
        for member in members:
            if member.name not in wanted:
                continue
            stream = tar.extractfile(member)
            if stream is None:
                continue
            bundle = orjson.loads(stream.read())
            (people if _patient_of(bundle) else shared).append(bundle)
    return shared + people


def _spread(names: list[str], patients: int | None) -> set[str]:
    if patients is None:
        return set(names)
    info = {n for n in names if "Information" in Path(n).name}
    people = [n for n in names if n not in info]
    step = max(len(people) // max(patients, 1), 1)
    return info | set(people[::step][:patients])


def _patient_of(bundle: Resource) -> Resource | None:
    return next(
        (e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"),
        None,
    )


def ods_codes(bundles: list[Resource]) -> dict[str, str]:
    """A practice-like ODS code (letter and five digits) per Synthea Organization id, from a
    hash of the id; a clash takes the next free code, so codes are unique and deterministic."""
    ids = sorted(
        {
            e["resource"]["id"]
            for b in bundles
            for e in b["entry"]
            if e["resource"]["resourceType"] == "Organization"
        }
    )
    taken: set[str] = set()
    out: dict[str, str] = {}
    space = len(PRACTICE_LETTERS) * 100_000
    for org_id in ids:
        n = _hash(org_id, "ods") % space
        while (code := f"{PRACTICE_LETTERS[n // 100_000]}{n % 100_000:05d}") in taken:
            n = (n + 1) % space
        taken.add(code)
        out[org_id] = code
    return out


@dataclass
class PatientFacts:
    """What the benchmark knows about one prepared patient."""

    synthea_id: str
    family: str
    nhs: str
    practice: str | None  # ODS code of the practice it is registered with
    opted_out: bool
    denies: str | None = None  # the organisation its Consent denies, if any


@dataclass
class Prepared:
    bundles: list[Resource]
    patients: list[PatientFacts]
    labelled: int = 0  # resources given the MH label
    consents: Counter[str] = field(default_factory=Counter)  # "deny"/"research" -> count

    def practices(self) -> Counter[str]:
        return Counter(p.practice for p in self.patients if p.practice)


def _uuid(ref: Any) -> str | None:
    text = ref.get("reference") if isinstance(ref, dict) else None
    return text.removeprefix("urn:uuid:") if isinstance(text, str) else None


def prepare(bundles: list[Resource]) -> Prepared:
    """Add ODS codes, NHS numbers, registrations and MH labels (in place)."""
    codes = ods_codes(bundles)
    numbers = iter(nhs_test_numbers(sum(1 for b in bundles if _patient_of(b)), 999_200_001))
    out = Prepared(bundles, [])
    for bundle in bundles:
        orgs: dict[str, str] = {}
        for entry in bundle["entry"]:
            r = entry["resource"]
            if r["resourceType"] == "Organization":
                ods = codes[r["id"]]
                orgs[r["id"]] = ods
                r["identifier"] = [{"system": ODS_CODE_SYSTEM, "value": ods}]
                r.pop("extension", None)  # Synthea's utilisation counts
                entry["request"]["ifNoneExist"] = f"identifier={ODS_CODE_SYSTEM}|{ods}"
            elif r["resourceType"] in ("Condition", "Observation") and chosen(
                r["id"], "mh", MH_PERCENT
            ):
                r.setdefault("meta", {}).setdefault("security", []).append(
                    {"system": ACT_CODE, "code": "MH"}
                )
                out.labelled += 1
        patient = _patient_of(bundle)
        if patient is not None:
            out.patients.append(_register(bundle, patient, orgs, next(numbers)))
    return out


def _register(bundle: Resource, patient: Resource, orgs: dict[str, str], nhs: str) -> PatientFacts:
    providers = Counter(
        uid
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Encounter"
        and (uid := _uuid(e["resource"].get("serviceProvider"))) in orgs
    )
    practice = None
    if providers:
        org_id = max(sorted(providers), key=lambda u: providers[u])
        patient["generalPractitioner"] = [{"reference": f"urn:uuid:{org_id}"}]
        practice = orgs[org_id]
    patient["identifier"] = [{"system": NHS_NUMBER_SYSTEM, "value": nhs}, *patient["identifier"]]
    synthea = next(i["value"] for i in patient["identifier"] if i.get("system") == SYNTHEA_ID)
    family = next((n["family"] for n in patient.get("name", ()) if n.get("family")), "")
    return PatientFacts(synthea, family, nhs, practice, chosen(synthea, "opt-out", OPT_OUT_PERCENT))


def consent_entry(patient_uuid: str, scope: str, provision: Resource) -> Resource:
    """A transaction entry creating an active Consent of the Bundle's patient."""
    return {
        "fullUrl": f"urn:uuid:{hashlib.sha1(f'{scope}{patient_uuid}'.encode()).hexdigest()}",
        "resource": {
            "resourceType": "Consent",
            "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE, "code": scope}]},
            "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
            "patient": {"reference": f"urn:uuid:{patient_uuid}"},
            "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
            "provision": provision,
        },
        "request": {"method": "POST", "url": "Consent"},
    }


def deny_org(ods: str) -> Resource:
    """A provision denying every access by organisation ``ods``."""
    return {
        "type": "deny",
        "actor": [
            {
                "role": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                            "code": "PRCP",
                        }
                    ]
                },
                "reference": {"identifier": {"system": ODS_CODE_SYSTEM, "value": ods}},
            }
        ],
    }


RESEARCH_PERMIT: Resource = {
    "type": "permit",
    "purpose": [{"system": ACT_REASON, "code": "HRESCH"}],
}


def add_consents(prepared: Prepared, denied_org: str) -> None:
    """About 5% of patients deny ``denied_org``; about 2% permit research (in place)."""
    by_synthea = {p.synthea_id: p for p in prepared.patients}
    for bundle in prepared.bundles:
        patient = _patient_of(bundle)
        if patient is None:
            continue
        facts = by_synthea[
            next(i["value"] for i in patient["identifier"] if i.get("system") == SYNTHEA_ID)
        ]
        if chosen(facts.synthea_id, "deny", DENY_PERCENT):
            bundle["entry"].append(
                consent_entry(patient["id"], "patient-privacy", deny_org(denied_org))
            )
            prepared.consents["deny " + denied_org] += 1
            facts.denies = denied_org
        if chosen(facts.synthea_id, "research", RESEARCH_PERCENT):
            bundle["entry"].append(consent_entry(patient["id"], "research", RESEARCH_PERMIT))
            prepared.consents["permit research"] += 1


def common_loinc(bundles: list[Resource], n: int) -> list[str]:
    """The ``n`` most frequent LOINC codes of the Observations (ties by code)."""
    counts: Counter[str] = Counter()
    for b in bundles:
        for e in b["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Observation":
                for c in (r.get("code") or {}).get("coding", ()):
                    if c.get("system") == LOINC and c.get("code"):
                        counts[c["code"]] += 1
    return [c for c, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]
