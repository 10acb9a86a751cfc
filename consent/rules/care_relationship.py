"""Direct care needs a care relationship (ARCHITECTURE.md "The policy layer").

The relationship is a fact the server establishes: the patient's registered practice, an
organisation with an active encounter or episode of care, or a relationship the clinician claimed
with a reason (allowed, and flagged for review). Secondary uses do not rest on a relationship.
"""

from __future__ import annotations

from consent.model import DIRECT_CARE, Facts, Requester, Vote

KINDS = {
    "registered": "the patient is registered with the requester's organisation",
    "encounter": "the requester's organisation has an active encounter with the patient",
    "episode": "the requester's organisation has an active episode of care for the patient",
    "self-claimed": "the requester claimed a care relationship (flagged for review)",
}


def care_relationship(requester: Requester, facts: Facts, originator: bool = False) -> Vote:
    """For direct care: does the requester's organisation care for the patient? (Data the
    organisation originated is itself evidence of care: the originator rule decides it.)"""
    if requester.purpose not in DIRECT_CARE:
        return Vote("care-relationship", None, "not direct care: no relationship needed")
    kind = facts.relationship
    if kind is None and originator:
        return Vote(
            "care-relationship",
            None,
            "no registration or encounter, but the organisation originated this data",
        )
    if kind is None:
        return Vote(
            "care-relationship",
            "deny",
            "direct care needs a care relationship, and the requester's organisation has none "
            "with this patient",
        )
    obligations = ("flag-for-review",) if kind == "self-claimed" else ()
    return Vote("care-relationship", "permit", KINDS.get(kind, kind), obligations)
