"""The unified-record demo: two simulated GP systems send their patients as transaction Bundles.

ARCHITECTURE.md "The unified record" (issue 5, "Demo"): an EMIS-Web-like practice and a
SystmOne-like practice, each a registered source (:mod:`dhr.record.sources`), send
deterministic (seeded) FHIR R4 transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)
through :func:`dhr.api.dispatch.handle` as :func:`dhr.access.system.source_principal`, exactly the
write path a real source's token takes. Several people are registered in both systems (same NHS
number, https://www.datadictionary.nhs.uk/attributes/nhs_number.html, Modulus 11, in the 999
test range), one moved practice (older data in EMIS, registered now at the SystmOne practice),
one overlapping person's birth date differs between the systems (a demographics conflict to flag)
and one EMIS patient has no NHS number. The server links each person to one master Patient, so
``Patient/<master>/$everything`` shows both practices' items with their ``meta.source``.

Each resource carries its source's own ``id`` and an identifier in the source's own system, which
is what makes a re-send an idempotent no-op. Coding follows UK Core
(https://simplifier.net/hl7fhirukcorer4): SNOMED CT, LOINC, CVX vaccine codes, and dm+d
(https://dmd.nhs.uk) for medicines; the dm+d codes are illustrative, not checked against the
dm+d release. All people and practices are fictional.
"""

from __future__ import annotations

import json
import random
import shlex
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dhr.access.system import cli_principal, source_principal
from dhr.api.dispatch import Services, handle
from dhr.api.http import FHIR_JSON
from dhr.api.message import FhirRequest
from dhr.auth import clients
from dhr.auth.model import ClientKind
from dhr.auth.token_cli import new_key_pair
from dhr.record.nhs_number import check_digit
from dhr.record.sources import register_source
from dhr.record.vocab import NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM, RECORD_ROLE_SYSTEM, ROLE_MASTER
from dhr.store import auth_client_store, db, source_store

JSON = dict[str, Any]
SEED = "dhr-unified-record-demo-1"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DMD = "https://dmd.nhs.uk"
CVX = "http://hl7.org/fhir/sid/cvx"
GMC = "https://fhir.hl7.org.uk/Id/gmc-number"
HL7 = "http://terminology.hl7.org/CodeSystem/"
NHS_VERIFIED = {
    "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
    "valueCodeableConcept": {
        "coding": [
            {
                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                "code": "01",
                "display": "Number present and verified",
            }
        ]
    },
}
_NAMESPACE = uuid.UUID("6f1c2a4e-1d0b-4c7e-9a55-2f3d6b8e0c11")  # fullUrls: uuid5 of source/id


@dataclass(frozen=True)
class DemoSource:
    """One simulated GP system: its registered source, backend client and practice."""

    source_id: str
    client_id: str
    supplier: str
    system_name: str  # what the source is (printed)
    practice: str
    ods_code: str
    identifier_system: str  # the source's own identifiers (local record ids)
    numeric_ids: bool  # SystmOne-like row ids; otherwise EMIS-like GUIDs
    gp_family: str
    gp_given: str
    gmc: str
    city: str
    postcode: str


EMIS = DemoSource(
    "demo-emis", "demo-emis-system", "EMIS", "EMIS Web-like GP system",
    "Abbey Road Surgery (demo)", "A81001", "https://emis.example/Id/record-guid", False,
    "Patel", "Anjali", "7012345", "Middlesbrough", "TS1 2AB",
)  # fmt: skip
TPP = DemoSource(
    "demo-tpp", "demo-tpp-system", "TPP", "SystmOne-like GP system",
    "Brook Lane Medical Practice (demo)", "B82005", "https://tpp.example/Id/row-id", True,
    "Hughes", "Gareth", "7098765", "Stockton-on-Tees", "TS18 1HU",
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    """A fictional person; ``nhs`` None for the deliberately absent NHS number."""

    nhs: str | None
    given: str
    family: str
    gender: str
    born: str
    postcode: str
    problems: tuple[str, ...]  # keys of PROBLEMS
    sources: tuple[str, ...]  # source ids that hold a record of them
    allergy: str | None = None  # key of ALLERGIES
    tpp_born: str | None = None  # SystmOne's (conflicting) birth date
    moved: bool = False  # from the EMIS practice to the SystmOne practice


def nhs_test_numbers(count: int, start: int = 999_000_001) -> list[str]:
    """``count`` valid NHS numbers in the 999 test range, in order from ``start``."""
    out: list[str] = []
    stem = start
    while len(out) < count:
        digit = check_digit(str(stem))
        if digit is not None:
            out.append(f"{stem}{digit}")
        stem += 1
    return out


_NHS = nhs_test_numbers(12)
_BOTH = (EMIS.source_id, TPP.source_id)
PERSONS = (
    Person(_NHS[0], "Margaret", "Thompson", "female", "1948-06-02", "TS5 6PL",
           ("t2dm", "htn"), _BOTH, allergy="penicillin"),
    Person(_NHS[1], "David", "Okafor", "male", "1979-10-17", "TS1 3QX", ("asthma",), _BOTH),
    Person(_NHS[2], "Aisha", "Rahman", "female", "1990-01-25", "TS18 2QW",
           ("asthma", "depression"), _BOTH, moved=True),
    Person(_NHS[3], "George", "Williams", "male", "1962-03-14", "TS4 2BW",
           ("htn", "lipids"), _BOTH, tpp_born="1962-04-13"),
    Person(_NHS[4], "Eleanor", "Davies", "female", "1939-12-08", "TS7 0AD",
           ("af", "oa"), (EMIS.source_id,), allergy="penicillin"),
    Person(_NHS[5], "Harry", "Shaw", "male", "1985-07-30", "TS3 9EN", ("lipids",),
           (EMIS.source_id,)),
    Person(_NHS[6], "Chloe", "Evans", "female", "2001-04-11", "TS2 1RS", ("asthma",),
           (EMIS.source_id,), allergy="peanut"),
    Person(None, "Jan", "Kowalski", "male", "1994-09-05", "TS1 4HG", ("depression",),
           (EMIS.source_id,)),
    Person(_NHS[7], "Fatima", "Hussain", "female", "1971-02-19", "TS19 7AL",
           ("t2dm",), (TPP.source_id,)),
    Person(_NHS[8], "Oliver", "Brown", "male", "1956-08-23", "TS18 4DP", ("htn", "oa"),
           (TPP.source_id,)),
    Person(_NHS[9], "Ruby", "Clarke", "female", "2012-05-06", "TS20 1BE", ("asthma",),
           (TPP.source_id,), allergy="peanut"),
    Person(_NHS[10], "Mohammed", "Ali", "male", "1968-11-29", "TS19 0RG",
           ("t2dm", "lipids"), (TPP.source_id,)),
)  # fmt: skip
MOVED = next(p for p in PERSONS if p.moved)
CONFLICT = next(p for p in PERSONS if p.tpp_born)
NO_NHS = next(p for p in PERSONS if p.nhs is None)

# problem -> (SNOMED CT condition, display, dm+d medicine (illustrative code), medicine, dosage)
PROBLEMS = {
    "t2dm": ("44054006", "Type 2 diabetes mellitus", "325278007", "Metformin 500mg tablets",
             "One tablet twice a day with meals"),
    "htn": ("38341003", "Hypertensive disorder", "319283006", "Amlodipine 5mg tablets",
            "One tablet once a day"),
    "asthma": ("195967001", "Asthma", "320176004",
               "Salbutamol 100micrograms/dose inhaler CFC free", "Two puffs when required"),
    "lipids": ("55822004", "Hyperlipidaemia", "320000009", "Atorvastatin 20mg tablets",
               "One tablet at night"),
    "depression": ("35489007", "Depressive disorder", "321949007", "Sertraline 50mg tablets",
                   "One tablet once a day"),
    "af": ("49436004", "Atrial fibrillation", "703907006", "Apixaban 5mg tablets",
           "One tablet twice a day"),
    "oa": ("396275006", "Osteoarthritis", "322236009", "Paracetamol 500mg tablets",
           "Two tablets up to four times a day when required"),
}  # fmt: skip
# allergy -> (SNOMED CT code, display, category, reaction code, reaction display)
ALLERGIES = {
    "penicillin": ("91936005", "Allergy to penicillin", "medication", "126485001", "Urticaria"),
    "peanut": ("91935009", "Allergy to peanut", "food", "39579001", "Anaphylaxis"),
}


def _cc(system: str, code: str, display: str) -> JSON:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _ref(full_url: str) -> JSON:
    return {"reference": full_url}


def demo_sources() -> list[DemoSource]:
    """The two simulated GP systems, in the order their Bundles are sent."""
    return [EMIS, TPP]


class _Builder:
    """Entries of one source's Bundle: local ids, identifiers and ``urn:uuid`` fullUrls."""

    def __init__(self, source: DemoSource) -> None:
        self.source = source
        self.rng = random.Random(f"{SEED}:{source.source_id}")  # noqa: S311 (fixed demo data)
        self.entries: list[JSON] = []

    def local_id(self) -> str:
        if self.source.numeric_ids:
            return str(self.rng.randrange(10**11, 10**12))
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).upper()

    def add(self, resource: JSON) -> str:
        """Give ``resource`` a local id and identifier, append its POST entry; its fullUrl."""
        rid = self.local_id()
        rtype = resource["resourceType"]
        own = {"system": self.source.identifier_system, "value": rid}
        body = {
            "resourceType": rtype,
            "id": rid,
            **{k: v for k, v in resource.items() if k != "resourceType"},
        }
        body["identifier"] = [*resource.get("identifier", []), own]
        full_url = f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{self.source.source_id}/{rtype}/{rid}')}"
        self.entries.append(
            {"fullUrl": full_url, "resource": body, "request": {"method": "POST", "url": rtype}}
        )
        return full_url

    def day(self, first: int, last: int) -> str:
        year = self.rng.randint(first, last)
        return f"{year}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}"


def _practice(b: _Builder) -> tuple[str, str]:
    s = b.source
    org = b.add(
        {
            "resourceType": "Organization",
            "identifier": [{"system": ODS_CODE_SYSTEM, "value": s.ods_code}],
            "active": True,
            "type": [_cc(SNOMED, "264358009", "General practice")],
            "name": s.practice,
            "address": [{"city": s.city, "postalCode": s.postcode, "country": "GB"}],
        }
    )
    gp = b.add(
        {
            "resourceType": "Practitioner",
            "identifier": [{"system": GMC, "value": s.gmc}],
            "active": True,
            "name": [{"family": s.gp_family, "given": [s.gp_given], "prefix": ["Dr"]}],
        }
    )
    return org, gp


def _patient(b: _Builder, p: Person, org: str, gp: str) -> str:
    in_tpp = b.source is TPP
    body: JSON = {
        "resourceType": "Patient",
        "identifier": [{"extension": [NHS_VERIFIED], "system": NHS_NUMBER_SYSTEM, "value": p.nhs}]
        if p.nhs
        else [],
        "active": True,
        "name": [{"use": "official", "family": p.family, "given": [p.given]}],
        "gender": p.gender,
        "birthDate": p.tpp_born if in_tpp and p.tpp_born else p.born,
        "address": [{"use": "home", "postalCode": p.postcode, "country": "GB"}],
        "managingOrganization": _ref(org),
    }
    if in_tpp or not p.moved:  # the old practice no longer names itself the registered GP
        body["generalPractitioner"] = [_ref(org), _ref(gp)]
    return b.add(body)


def _items(b: _Builder, p: Person, patient: str, org: str, gp: str, years: tuple[int, int]) -> None:
    """A consultation with a blood pressure, BMI and smoking status; problems, medicines,
    HbA1c for diabetes, an allergy and an immunisation."""
    subject = _ref(patient)
    seen = b.day(*years)
    enc = b.add(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": HL7 + "v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [_cc(SNOMED, "11429006", "Consultation")],
            "subject": subject,
            "participant": [{"individual": _ref(gp)}],
            "period": {"start": f"{seen}T09:10:00Z", "end": f"{seen}T09:25:00Z"},
            "serviceProvider": _ref(org),
        }
    )

    def obs(category: str, code: JSON, value: JSON, when: str = seen) -> None:
        cat = _cc(HL7 + "observation-category", category, category.replace("-", " ").title())
        b.add(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [cat],
                "code": code,
                "subject": subject,
                "encounter": _ref(enc),
                "effectiveDateTime": when,
                "performer": [_ref(gp)],
                **value,
            }
        )

    def mmhg(code: str, snomed: str, display: str, value: int) -> JSON:
        quantity = {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
        concept = {
            "coding": [
                {"system": LOINC, "code": code, "display": display},
                {"system": SNOMED, "code": snomed, "display": display},
            ]
        }
        return {"code": concept, "valueQuantity": quantity}

    high = "htn" in p.problems
    bp = {
        "coding": [
            {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
            {"system": SNOMED, "code": "75367002", "display": "Blood pressure"},
        ]
    }
    systolic, diastolic = (
        b.rng.randint(138 if high else 112, 162 if high else 134),
        b.rng.randint(84 if high else 68, 98 if high else 84),
    )
    obs(
        "vital-signs",
        bp,
        {
            "component": [
                mmhg("8480-6", "271649006", "Systolic blood pressure", systolic),
                mmhg("8462-4", "271650006", "Diastolic blood pressure", diastolic),
            ]
        },
    )
    bmi = {
        "coding": [
            {"system": LOINC, "code": "39156-5", "display": "Body mass index"},
            {"system": SNOMED, "code": "60621009", "display": "Body mass index"},
        ]
    }
    quantity = {"value": round(b.rng.uniform(19.5, 33.0), 1), "unit": "kg/m2", "system": UCUM}
    obs("vital-signs", bmi, {"valueQuantity": {**quantity, "code": "kg/m2"}})
    smoking = b.rng.choice(
        [("266919005", "Never smoked tobacco"), ("8517006", "Ex-smoker"), ("77176002", "Smoker")]
    )
    obs(
        "social-history",
        _cc(LOINC, "72166-2", "Tobacco smoking status"),
        {"valueCodeableConcept": _cc(SNOMED, *smoking)},
    )
    for key in p.problems:
        code, display, dmd, medicine, dosage = PROBLEMS[key]
        onset = b.day(years[0] - 8, years[0])
        condition = b.add(
            {
                "resourceType": "Condition",
                "clinicalStatus": _cc(HL7 + "condition-clinical", "active", "Active"),
                "verificationStatus": _cc(HL7 + "condition-ver-status", "confirmed", "Confirmed"),
                "category": [
                    _cc(HL7 + "condition-category", "problem-list-item", "Problem List Item")
                ],
                "code": _cc(SNOMED, code, display),
                "subject": subject,
                "onsetDateTime": onset,
                "recordedDate": onset,
                "recorder": _ref(gp),
            }
        )
        b.add(
            {
                "resourceType": "MedicationRequest",
                "status": "active",
                "intent": "order",
                "medicationCodeableConcept": _cc(DMD, dmd, medicine),
                "subject": subject,
                "encounter": _ref(enc),
                "authoredOn": seen,
                "requester": _ref(gp),
                "reasonReference": [_ref(condition)],
                "dosageInstruction": [{"text": dosage}],
            }
        )
        if key == "t2dm":
            value = {"value": b.rng.randint(48, 75), "unit": "mmol/mol", "system": UCUM}
            obs(
                "laboratory",
                _cc(LOINC, "59261-8", "Haemoglobin A1c (IFCC)"),
                {"valueQuantity": {**value, "code": "mmol/mol"}},
            )
    if p.allergy:
        code, display, category, reaction, reaction_display = ALLERGIES[p.allergy]
        b.add(
            {
                "resourceType": "AllergyIntolerance",
                "clinicalStatus": _cc(HL7 + "allergyintolerance-clinical", "active", "Active"),
                "verificationStatus": _cc(
                    HL7 + "allergyintolerance-verification", "confirmed", "Confirmed"
                ),
                "type": "allergy",
                "category": [category],
                "code": _cc(SNOMED, code, display),
                "patient": subject,
                "recordedDate": b.day(*years),
                "recorder": _ref(gp),
                "reaction": [{"manifestation": [_cc(SNOMED, reaction, reaction_display)]}],
            }
        )
    old = p.born < "1960" or "t2dm" in p.problems or "asthma" in p.problems
    vaccine = (
        ("140", "Influenza, seasonal, injectable, preservative free")
        if old
        else ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose")
    )
    b.add(
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": _cc(CVX, *vaccine),
            "patient": subject,
            "occurrenceDateTime": f"{b.day(*years)}T10:00:00Z",
            "primarySource": True,
            "lotNumber": f"LOT{b.rng.randint(1000, 9999)}",
            "performer": [{"actor": _ref(gp)}],
        }
    )


def demo_bundle(source: DemoSource) -> JSON:
    """One source's transaction Bundle (the same on every call)."""
    b = _Builder(source)
    org, gp = _practice(b)
    for person in PERSONS:
        if source.source_id not in person.sources:
            continue
        patient = _patient(b, person, org, gp)
        years = (2015, 2021) if person.moved and source is EMIS else (2022, 2025)
        _items(b, person, patient, org, gp, years)
    return {
        "resourceType": "Bundle",
        "id": f"{source.source_id}-extract-1",
        "identifier": {
            "system": source.identifier_system,
            "value": f"{source.source_id}-extract-1",
        },
        "type": "transaction",
        "timestamp": "2025-11-20T09:00:00Z",
        "entry": b.entries,
    }


def demo_bundles() -> dict[str, JSON]:
    """Source id -> its transaction Bundle."""
    return {s.source_id: demo_bundle(s) for s in demo_sources()}


# -- seeding ------------------------------------------------------------------------------------


class DemoSeedError(RuntimeError):
    """A demo source or Bundle was refused: a bug in the demo or in the server."""


def _write_key(path: Path, private: JSON) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(private, indent=2) + "\n", encoding="utf-8")
    path.chmod(0o600)


def _ensure_source(services: Services, source: DemoSource) -> None:
    """Register the source's backend client (its private key in the data dir) and the source."""
    engine = services.engine
    key_path = services.settings.data_dir.resolve() / f"{source.client_id}.key.json"
    known = clients.get_client(engine, source.client_id) is not None
    # The database outlived the data directory: the demo client gets a new key.
    if known and not key_path.is_file():
        private, public = new_key_pair("RS384")
        _write_key(key_path, private)
        with db.unit_of_work(engine, write=True) as conn:
            auth_client_store.set_client_jwks(conn, source.client_id, json.dumps(public))
    elif not known:
        private, public = new_key_pair("RS384")
        _write_key(key_path, private)
        clients.register_client(
            engine,
            client_id=source.client_id,
            name=f"{source.practice} {source.system_name}",
            kind=ClientKind.BACKEND,
            scopes="system/*.cruds",
            organisation=source.ods_code,
            jwks=public,
        )
    with db.unit_of_work(engine, write=True) as conn:
        if source_store.get_source(conn, source.source_id) is None:
            register_source(
                conn,
                source_id=source.source_id,
                name=f"{source.practice}, {source.system_name}",
                supplier=source.supplier,
                ods_code=source.ods_code,
                client_id=source.client_id,
                identifier_systems=(source.identifier_system,),
            )


def _send(services: Services, source: DemoSource, bundle: JSON) -> Counter[str]:
    """POST the Bundle as the source; count the entry outcomes (created / kept)."""
    headers = {"content-type": FHIR_JSON}
    request = FhirRequest("POST", "", headers=headers, parsed_body=bundle)
    response = handle(services, request, source_principal(source.client_id))
    reply = response.body_json() or {}
    if response.status != 200:
        raise DemoSeedError(f"{source.source_id}: {response.status} {str(reply)[:500]}")
    statuses = [str(e.get("response", {}).get("status", "")) for e in reply.get("entry", [])]
    return Counter("created" if s.startswith("201") else "kept" for s in statuses)


def master_of(services: Services, nhs: str) -> str | None:
    """The id of the master Patient of ``nhs`` (None when there is none yet)."""
    url = f"Patient?identifier={NHS_NUMBER_SYSTEM}|{nhs}&_tag={RECORD_ROLE_SYSTEM}|{ROLE_MASTER}"
    body = handle(services, FhirRequest.from_url("GET", url), cli_principal()).body_json() or {}
    found = [e["resource"]["id"] for e in body.get("entry", []) if "resource" in e]
    return found[0] if len(found) == 1 else None


def seed_unified_record(services: Services, out: list[str]) -> None:
    """Register the two demo sources and send their Bundles (idempotent: re-sends change
    nothing); append the start-up text that describes them to ``out``."""
    bundles = demo_bundles()
    base = services.settings.fhir_base
    out.append("Unified record: two simulated GP systems sent their patients (transactions):")
    for source in demo_sources():
        _ensure_source(services, source)
        outcome = _send(services, source, bundles[source.source_id])
        people = sum(1 for p in PERSONS if source.source_id in p.sources)
        done = ", ".join(f"{n} {k}" for k, n in sorted(outcome.items()))
        out.append(
            f"  {source.source_id}: {source.system_name} at {source.practice} "
            f"(ODS {source.ods_code}, client {source.client_id}): {people} patients, "
            f"{sum(outcome.values())} entries ({done})"
        )
    both = [p for p in PERSONS if len(p.sources) == 2]
    out.append(
        f"  In both: {', '.join(f'{p.given} {p.family} (NHS {p.nhs})' for p in both)}; "
        f"{MOVED.given} {MOVED.family} moved from {EMIS.ods_code} to {TPP.ods_code}; "
        f"{CONFLICT.given} {CONFLICT.family}'s birth date differs; "
        f"{NO_NHS.given} {NO_NHS.family} ({EMIS.source_id}) has no NHS number."
    )
    master = master_of(services, str(MOVED.nhs))
    key = services.settings.data_dir.resolve() / f"{TPP.client_id}.key.json"
    out += [
        f"  {MOVED.given} {MOVED.family}'s unified record (NHS {MOVED.nhs}, master "
        f"Patient/{master or '?'}), as the practice she is registered with now:",
        f"  TOKEN=$(.venv/bin/dhr token --client-id {TPP.client_id} --key "
        f"{shlex.quote(str(key))} --scope 'system/*.cruds')"
        + ("" if key.is_file() else "  (key MISSING: remove dhr-data to start afresh)"),
        f'  curl -H "Authorization: Bearer $TOKEN" \'{base}/Patient?identifier='
        f"{NHS_NUMBER_SYSTEM}|{MOVED.nhs}'",
    ]
    if master is not None:
        out += [
            f"  curl -H \"Authorization: Bearer $TOKEN\" '{base}/Patient/{master}/$everything'",
            f'  curl -H "Authorization: Bearer $TOKEN" '
            f"'{base}/Patient?_id={master}&_revinclude=Provenance:target'",
        ]
