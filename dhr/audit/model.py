"""The audit record: one BALP-shaped AuditEvent plus the columns it is searched and chained by.

https://hl7.org/fhir/R4/auditevent.html, https://profiles.ihe.net/ITI/BALP/ (one event per
interaction and patient). ``data`` is the canonical JSON of the FHIR AuditEvent: the bytes that
are hashed into the chain and served back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal[
    "C", "R", "U", "D", "E"
]  # AuditEvent.action (create, read, update, delete, execute)
Outcome = Literal["0", "4", "8", "12"]  # success, minor failure, serious failure, major failure


@dataclass(frozen=True)
class AuditRecord:
    """One row of ``audit_event`` before it is chained."""

    event_id: str  # AuditEvent.id (a UUID)
    recorded: int  # AuditEvent.recorded, microseconds since the epoch (UTC)
    patient: str | None  # the Patient id this event is about (BALP: one event per patient)
    agent: str  # who: the user's or client's subject
    client_id: str | None
    action: Action
    subtype: str  # the FHIR interaction (read, vread, search-type, create, ... , login)
    outcome: Outcome
    purpose: str | None  # purpose of use code (TREAT, HRESCH, BTG...)
    break_glass: bool
    request_id: str
    data: bytes  # canonical JSON of the AuditEvent


GENESIS = "0" * 64  # the previous hash of the first chained event
