"""The demo data set ``dhr serve --demo`` (``make run``) loads: small, coherent and UK-flavoured.

Two GP practices (ODS codes, https://digital.nhs.uk/services/organisation-data-service), a GP,
three patients with NHS numbers that pass the Modulus 11 check
(https://www.datadictionary.nhs.uk/attributes/nhs_number.html; these are NHS test-data numbers),
and their observations, conditions, prescriptions and allergies, coded in SNOMED CT and LOINC
as UK Core (https://simplifier.net/hl7fhirukcorer4) suggests. Every resource has a fixed id so
that loading is an update and never duplicates. All people and practices are fictional.
"""

from __future__ import annotations

from typing import Any

from dhr.record.vocab import NHS_NUMBER_SYSTEM as NHS_NUMBER
from dhr.record.vocab import ODS_CODE_SYSTEM as ODS_CODE

GMC_NUMBER = "https://fhir.hl7.org.uk/Id/gmc-number"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_STATUS = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"

JSON = dict[str, Any]


def _concept(system: str, code: str, display: str) -> JSON:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _practice(rid: str, ods: str, name: str, line: str, city: str, postcode: str) -> JSON:
    return {
        "resourceType": "Organization",
        "id": rid,
        "identifier": [{"system": ODS_CODE, "value": ods}],
        "active": True,
        "type": [_concept(SNOMED, "264358009", "General practice")],
        "name": name,
        "telecom": [{"system": "phone", "value": "0300 000 0000", "use": "work"}],
        "address": [{"line": [line], "city": city, "postalCode": postcode, "country": "GB"}],
    }


def _patient(
    rid: str,
    nhs: str,
    family: str,
    given: str,
    gender: str,
    born: str,
    postcode: str,
    practice: str,
) -> JSON:
    return {
        "resourceType": "Patient",
        "id": rid,
        "identifier": [{"system": NHS_NUMBER, "value": nhs}],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": born,
        "address": [{"use": "home", "postalCode": postcode, "country": "GB"}],
        "generalPractitioner": [
            {"reference": f"Organization/{practice}"},
            {"reference": f"Practitioner/{GP_ID}"},
        ],
        "managingOrganization": {"reference": f"Organization/{practice}"},
    }


def _observation(
    rid: str, patient: str, code: JSON, when: str, value: float, unit: str, ucum: str, cat: str
) -> JSON:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [_concept(OBS_CATEGORY, cat, cat.replace("-", " ").title())],
        "code": code,
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "performer": [{"reference": f"Practitioner/{GP_ID}"}],
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": ucum},
    }


def _blood_pressure(rid: str, patient: str, when: str, systolic: int, diastolic: int) -> JSON:
    def part(code: str, display: str, value: int) -> JSON:
        quantity = {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
        return {"code": _concept(LOINC, code, display), "valueQuantity": quantity}

    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [_concept(OBS_CATEGORY, "vital-signs", "Vital Signs")],
        "code": _concept(LOINC, "85354-9", "Blood pressure panel"),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "performer": [{"reference": f"Practitioner/{GP_ID}"}],
        "component": [
            part("8480-6", "Systolic blood pressure", systolic),
            part("8462-4", "Diastolic blood pressure", diastolic),
        ],
    }


def _condition(rid: str, patient: str, code: str, display: str, onset: str) -> JSON:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": _concept(CLINICAL_STATUS, "active", "Active"),
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "problem-list-item",
                "Problem List Item",
            )
        ],
        "code": _concept(SNOMED, code, display),
        "subject": {"reference": f"Patient/{patient}"},
        "onsetDateTime": onset,
        "recorder": {"reference": f"Practitioner/{GP_ID}"},
    }


def _prescription(
    rid: str, patient: str, code: str, display: str, dosage: str, condition: str
) -> JSON:
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": _concept(SNOMED, code, display),
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": "2024-03-04",
        "requester": {"reference": f"Practitioner/{GP_ID}"},
        "reasonReference": [{"reference": f"Condition/{condition}"}],
        "dosageInstruction": [{"text": dosage}],
    }


def _allergy(rid: str, patient: str, code: str, display: str, reaction: JSON) -> JSON:
    return {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "clinicalStatus": _concept(ALLERGY_STATUS, "active", "Active"),
        "type": "allergy",
        "category": ["medication" if "penicillin" in display.lower() else "food"],
        "criticality": "high",
        "code": _concept(SNOMED, code, display),
        "patient": {"reference": f"Patient/{patient}"},
        "recorder": {"reference": f"Practitioner/{GP_ID}"},
        "reaction": [{"manifestation": [reaction]}],
    }


GP_ID = "demo-gp-priya-shah"
NURSE_ID = "demo-nurse-tom-baker"
PRIVACY_ID = "demo-privacy-officer-sam-lee"
ORCHARD = "demo-practice-orchard"
RIVERSIDE = "demo-practice-riverside"
OLIVIA = "demo-patient-olivia-jones"
HARRY = "demo-patient-harry-evans"
AMARA = "demo-patient-amara-okafor"

PRACTITIONER: JSON = {
    "resourceType": "Practitioner",
    "id": GP_ID,
    "identifier": [{"system": GMC_NUMBER, "value": "7654321"}],
    "active": True,
    "name": [{"use": "official", "family": "Shah", "given": ["Priya"], "prefix": ["Dr"]}],
    "gender": "female",
    "qualification": [{"code": {"text": "MBBS MRCGP"}}],
}

NURSE: JSON = {
    "resourceType": "Practitioner",
    "id": NURSE_ID,
    "active": True,
    "name": [{"use": "official", "family": "Baker", "given": ["Tom"]}],
    "gender": "male",
    "qualification": [{"code": {"text": "RN (Adult)"}}],
}

PRIVACY_OFFICER: JSON = {
    "resourceType": "Practitioner",
    "id": PRIVACY_ID,
    "active": True,
    "name": [{"use": "official", "family": "Lee", "given": ["Sam"]}],
}

HBA1C = _concept(LOINC, "59261-8", "Haemoglobin A1c (IFCC)")
BMI = _concept(LOINC, "39156-5", "Body mass index")
PEAK_FLOW = _concept(LOINC, "19935-6", "Peak expiratory flow")


def demo_resources() -> list[JSON]:
    """The demo set, referenced resources before those that refer to them."""
    return [
        _practice(
            ORCHARD, "Y90001", "Orchard Surgery (demo)", "1 Orchard Lane", "Leeds", "LS1 4AP"
        ),
        _practice(
            RIVERSIDE,
            "Y90002",
            "Riverside Medical Centre (demo)",
            "8 Quay Street",
            "Bristol",
            "BS1 4DJ",
        ),
        PRACTITIONER,
        NURSE,
        PRIVACY_OFFICER,
        _patient(
            OLIVIA, "9434765919", "Jones", "Olivia", "female", "1968-02-14", "LS6 2QT", ORCHARD
        ),
        _patient(HARRY, "9449306168", "Evans", "Harry", "male", "1991-11-03", "LS8 1AB", ORCHARD),
        _patient(
            AMARA, "9449310602", "Okafor", "Amara", "female", "2004-07-22", "BS3 4QP", RIVERSIDE
        ),
        _condition(
            "demo-condition-olivia-t2dm",
            OLIVIA,
            "44054006",
            "Type 2 diabetes mellitus",
            "2019-05-20",
        ),
        _condition(
            "demo-condition-olivia-htn", OLIVIA, "38341003", "Hypertensive disorder", "2021-09-01"
        ),
        _condition("demo-condition-amara-asthma", AMARA, "195967001", "Asthma", "2012-01-10"),
        _observation(
            "demo-obs-olivia-hba1c",
            OLIVIA,
            HBA1C,
            "2024-02-26",
            58,
            "mmol/mol",
            "mmol/mol",
            "laboratory",
        ),
        _blood_pressure("demo-obs-olivia-bp", OLIVIA, "2024-02-26", 148, 92),
        _observation(
            "demo-obs-harry-bmi", HARRY, BMI, "2024-01-15", 24.1, "kg/m2", "kg/m2", "vital-signs"
        ),
        _observation(
            "demo-obs-amara-peak-flow",
            AMARA,
            PEAK_FLOW,
            "2024-03-02",
            390,
            "L/min",
            "L/min",
            "vital-signs",
        ),
        _prescription(
            "demo-medreq-olivia-metformin",
            OLIVIA,
            "372567009",
            "Metformin",
            "500 mg twice a day with meals",
            "demo-condition-olivia-t2dm",
        ),
        _prescription(
            "demo-medreq-olivia-ramipril",
            OLIVIA,
            "386872004",
            "Ramipril",
            "2.5 mg once a day",
            "demo-condition-olivia-htn",
        ),
        _prescription(
            "demo-medreq-amara-salbutamol",
            AMARA,
            "372897005",
            "Salbutamol",
            "100 micrograms, 2 puffs when required",
            "demo-condition-amara-asthma",
        ),
        _allergy(
            "demo-allergy-olivia-penicillin",
            OLIVIA,
            "91936005",
            "Allergy to penicillin",
            _concept(SNOMED, "126485001", "Urticaria"),
        ),
        _allergy(
            "demo-allergy-harry-peanut",
            HARRY,
            "91935009",
            "Allergy to peanut",
            _concept(SNOMED, "39579001", "Anaphylaxis"),
        ),
    ]
