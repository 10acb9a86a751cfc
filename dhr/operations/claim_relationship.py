"""``POST Patient/[id]/$claim-relationship``: a clinician says they are caring for a patient
whose care relationship the record does not show yet (issue 6 "Care relationship").

A DHR operation (https://hl7.org/fhir/R4/operations.html) taking a ``Parameters`` resource
(https://hl7.org/fhir/R4/parameters.html): ``reason`` (valueString, required) and ``minutes``
(valueInteger, 1 to 1440, default 480: a working shift). It records an ``access_claim`` of kind
``relationship`` (:mod:`dhr.store.policy_store`) for the token's subject and answers like
``$break-glass`` (:mod:`dhr.operations.break_glass`: same callers, same 403/400/404 rules). While
it is in force the subject has a care relationship with the patient for direct care, so the
other rules still apply (the patient's Consent, sensitive data, controllers); it is not
break-glass.

A self-claimed relationship is allowed and flagged for review: its AuditEvent has the subtype
``claim-relationship`` (https://dhr.nhs.example/fhir/CodeSystem/audit-event-subtype), which
a privacy officer searches for (``AuditEvent?subtype=claim-relationship``), the decision's
care-relationship vote says "claimed ... (flagged for review)" with the obligation
``flag-for-review`` (``$access-check``), and the patient sees the claim in ``$access-log``.
"""

from __future__ import annotations

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.operations.break_glass import ClaimTerms, answer, record
from dhr.store.policy_store import RELATIONSHIP

CLAIM_RELATIONSHIP_TERMS = ClaimTerms("claim-relationship", RELATIONSHIP, ("TREAT",), 480, 1440)


def claim_relationship(ctx: RequestContext, req: FhirRequest, patient_id: str) -> FhirResponse:
    """``POST Patient/[id]/$claim-relationship``."""
    claim = record(ctx, req, patient_id, CLAIM_RELATIONSHIP_TERMS)
    ctx.audit.purpose = claim.purpose
    return answer(claim)
