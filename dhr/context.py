"""RequestContext: what one request carries through the interactions, built once per request."""

from __future__ import annotations

from dataclasses import dataclass

from dhr.audit.recorder import AuditRecorder
from dhr.config import Settings
from dhr.enforce import EnforcingRepository


@dataclass(frozen=True)
class RequestContext:
    """The request id, settings, the enforcing repository of one unit of work and the request's
    audit recorder (which the repository reports to; views that show data without the
    repository report to it themselves, :meth:`AuditRecorder.touched`)."""

    request_id: str
    settings: Settings
    repo: EnforcingRepository
    audit: AuditRecorder

    @property
    def base(self) -> str:
        return self.settings.fhir_base
