"""RequestContext: what one request carries through the interactions, built once per request."""

from __future__ import annotations

from dataclasses import dataclass

from dhr.config import Settings
from dhr.enforce import EnforcingRepository


@dataclass(frozen=True)
class RequestContext:
    """The request id, settings and the enforcing repository of one unit of work."""

    request_id: str
    settings: Settings
    repo: EnforcingRepository

    @property
    def base(self) -> str:
        return self.settings.fhir_base
