"""The originating organisation sees, for direct care, the data it recorded.

ARCHITECTURE.md "Controllers": every item has two joint controllers, the originating organisation
and the national controller. An organisation that originated an item has a care relationship
evidenced by the item itself and is its controller, so for direct care it may see it (labelled
data included) without a registration or encounter. The patient's deny still overrides
(deny overrides, ``consent.pdp``). The national controller is never an originator.
"""

from __future__ import annotations

from consent.model import DIRECT_CARE, DataItem, Facts, Requester, Vote


def is_originator(requester: Requester, item: DataItem, facts: Facts) -> bool:
    """Whether the requester's organisation is an originating controller of ``item``."""
    org = requester.organisation
    return (
        requester.purpose in DIRECT_CARE
        and bool(org)
        and org != facts.national
        and org in item.controllers
    )


def originator(requester: Requester, item: DataItem, facts: Facts) -> Vote:
    """For direct care: did the requester's organisation originate this data?"""
    if not is_originator(requester, item, facts):
        return Vote("originator", None, "the requester's organisation did not originate the data")
    return Vote(
        "originator",
        "permit",
        f"the requester's organisation ({requester.organisation}) originated this data",
    )
