"""Sensitive data: security labels hide data from everyone not permitted.

https://hl7.org/fhir/R4/security-labels.html. Data labelled restricted or very restricted
(v3 Confidentiality R, V) or with a sensitivity (v3 ActCode: ETH substance use, HIV, MH mental
health, PSY psychiatry, SEX sexual health, SDV domestic violence, STD) is hidden unless the
patient's Consent permits it for this requester (a permit provision that applied) or the
requester's organisation originated it (a controller of the data, for direct care).
"""

from __future__ import annotations

from consent.model import DataItem, Effect, Label, Vote

CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SENSITIVE = frozenset(
    {Label(CONFIDENTIALITY, c) for c in ("R", "V")}
    | {Label(ACT_CODE, c) for c in ("ETH", "HIV", "MH", "PSY", "SEX", "SDV", "STD")}
)


def sensitive_labels(item: DataItem) -> list[Label]:
    return sorted(item.labels & SENSITIVE, key=lambda label: (label.system, label.code))


def sensitivity(item: DataItem, consent_effect: Effect | None, originator: bool = False) -> Vote:
    """Is the data free of sensitive labels, or does the patient's consent (or the requester
    being its originating controller) permit it?"""
    labels = sensitive_labels(item)
    if not labels:
        return Vote("sensitivity", None, "no sensitive security label")
    names = ", ".join(label.code for label in labels)
    if originator:
        return Vote(
            "sensitivity", "permit", f"data labelled {names}, seen by its originating controller"
        )
    if consent_effect == "permit":
        return Vote("sensitivity", "permit", f"the patient's consent permits data labelled {names}")
    return Vote(
        "sensitivity", "deny", f"the data is labelled {names} and the patient has not permitted it"
    )
