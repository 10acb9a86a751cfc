"""The national data opt-out (https://digital.nhs.uk/services/national-data-opt-out): applies to
secondary uses (research, planning), never to direct care. A patient's explicit consent to the
purpose (a permit provision that applied) is not overridden by it."""

from __future__ import annotations

from consent.model import SECONDARY_USE, Effect, Facts, Requester, Vote


def opt_out(requester: Requester, facts: Facts, consent_effect: Effect | None) -> Vote:
    """For a secondary use: has the patient not opted out (or consented explicitly)?"""
    if requester.purpose not in SECONDARY_USE:
        return Vote("opt-out", None, "direct care: the national data opt-out does not apply")
    if not facts.opted_out:
        return Vote("opt-out", None, "no national data opt-out recorded")
    if consent_effect == "permit":
        return Vote("opt-out", "permit", "opted out, but consented explicitly to this purpose")
    return Vote(
        "opt-out",
        "deny",
        f"the patient has a national data opt-out, which applies to {requester.purpose}",
    )
