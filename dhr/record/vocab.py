"""The code systems and identifiers the unified record writes into resources.

UK Core identifiers (https://simplifier.net/hl7fhirukcorer4): the NHS number and ODS codes.
DHR's own code systems live under ``https://dhr.nhs.example/fhir/CodeSystem/``.
"""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_CODE_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

# meta.source of everything a registered source sends: SOURCE_URI_PREFIX + source id.
SOURCE_URI_PREFIX = "urn:dhr:source:"

# meta.tag: the joint controllers of a resource, one coding per controller, code = ODS code.
CONTROLLER_SYSTEM = "https://dhr.nhs.example/fhir/CodeSystem/data-controller"

# meta.tag: the role a Patient plays in linkage.
RECORD_ROLE_SYSTEM = "https://dhr.nhs.example/fhir/CodeSystem/record-role"
ROLE_MASTER = "master"  # the one master Patient of an NHS number
ROLE_SOURCE_RECORD = "source-record"  # a source's own Patient, linked to its master
ROLE_UNLINKED = "unlinked"  # a source's Patient with no master (no NHS number, or unlinked)

# meta.tag: flags for a person to review.
REVIEW_SYSTEM = "https://dhr.nhs.example/fhir/CodeSystem/review-flag"
REVIEW_DEMOGRAPHICS = "demographics-conflict"  # linked records disagree (birth date, gender)
REVIEW_NO_NHS_NUMBER = "no-nhs-number"  # a Patient kept without an NHS number

# Provenance of an ingest (http://terminology.hl7.org/CodeSystem/v3-DataOperation etc.).
DATA_OPERATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PROVENANCE_AGENT_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
SOURCE_SYSTEM_ID = "https://dhr.nhs.example/Id/source-system"
INGEST_ID = "https://dhr.nhs.example/Id/ingest"

# Patient/$match grades (http://hl7.org/fhir/StructureDefinition/match-grade).
MATCH_GRADE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/match-grade"


def source_uri(source_id: str) -> str:
    """``meta.source`` of what source ``source_id`` sends."""
    return SOURCE_URI_PREFIX + source_id
