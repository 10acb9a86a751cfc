"""FHIR batch and transaction. https://hl7.org/fhir/R4/http.html#transaction"""

from __future__ import annotations

from dhr.api.dispatch import Services, set_bundle_processor
from dhr.api.message import FhirRequest, FhirResponse
from dhr.errors import not_supported


def process_bundle(services: Services, req: FhirRequest) -> FhirResponse:
    raise not_supported("batch and transaction are not implemented yet")


set_bundle_processor(process_bundle)
