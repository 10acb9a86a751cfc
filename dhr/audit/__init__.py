"""A tamper-evident audit of every access, for privacy officers and for patients.

IHE Basic Audit Log Patterns (BALP, https://profiles.ihe.net/ITI/BALP/) shapes each event as a
FHIR R4 AuditEvent (https://hl7.org/fhir/R4/auditevent.html). Events are chained (sequence
number, previous hash, hash) and the chain is signed at checkpoints with Ed25519, so that an
edited, deleted, inserted or reordered event, or a truncated tail, is found by
``dhr audit verify``.
"""
