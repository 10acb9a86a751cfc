"""Joint controllers: data is shared for a purpose only where every controller permits it.

ARCHITECTURE.md "Controllers": the joint-controller arrangement (dhr.record.arrangement, read
into ``Facts.controller_purposes``) says which purposes each controller allows for its data. The
patient's explicit consent for the purpose (a permit provision that applied) overrides a
controller's default, e.g. a practice's data used by a private provider.
"""

from __future__ import annotations

from consent.model import DataItem, Effect, Facts, Requester, Vote


def controller_agreement(
    requester: Requester, item: DataItem, facts: Facts, consent_effect: Effect | None
) -> Vote:
    """Does every controller of the data permit the requester's purpose?"""
    refusing = [
        ods
        for ods in item.controllers
        if requester.purpose not in facts.controller_purposes.get(ods, frozenset())
    ]
    if not item.controllers:
        return Vote("controller-agreement", None, "the data names no controller")
    if not refusing:
        return Vote(
            "controller-agreement",
            "permit",
            f"every controller ({', '.join(item.controllers)}) permits {requester.purpose}",
        )
    if consent_effect == "permit":
        return Vote(
            "controller-agreement",
            "permit",
            f"the patient consented to {requester.purpose}, which controller "
            f"{', '.join(refusing)} does not permit by default",
        )
    return Vote(
        "controller-agreement",
        "deny",
        f"controller {', '.join(refusing)} does not permit {requester.purpose} for its data",
    )
