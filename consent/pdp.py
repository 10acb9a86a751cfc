"""The decision point: ``decide(requester, item, facts) -> Decision``.

ARCHITECTURE.md "The policy layer". Each rule family (``consent.rules``) votes permit, deny or
abstain with its reason; this module combines the votes under one written rule:

1. Data of no patient (Organization, Practitioner...) is governed by SMART scopes alone: permit.
2. A patient acting for themselves sees their own record, and only theirs.
3. An unknown purpose of use is denied.
4. **Deny overrides**: any deny vote denies, with every deny's reason, except that
5. **break-glass** (purpose BTG or ETREAT with a reason, or a break-glass declaration in force
   for this patient, ``Facts.glass_broken``, for direct care) overrides the denies of the
   patient's consent, the care relationship, sensitivity labels and controller defaults, with
   the obligations ``security-alert``, ``notify-patient`` and ``privacy-officer-review``; it never
   opens a secondary use.
6. Otherwise any permit vote permits (with the obligations of the permits); no permit is a deny
   (default deny).

The patient's Consents are evaluated once (:mod:`consent.provisions`); their result is itself a
vote and is also what lets sensitive data, a controller's withheld purpose or an opted-out
patient's data through (an explicit permit). SMART scopes only narrow: dhr enforces them before
asking.
"""

from __future__ import annotations

from consent.model import DIRECT_CARE, PURPOSES, DataItem, Decision, Facts, Requester, Vote
from consent.provisions import evaluate_consents
from consent.rules.care_relationship import care_relationship
from consent.rules.controller_agreement import controller_agreement
from consent.rules.opt_out import opt_out
from consent.rules.originator import is_originator, originator
from consent.rules.sensitivity import sensitivity

BREAK_GLASS_OVERRIDES = frozenset(
    {"patient-consent", "care-relationship", "sensitivity", "controller-agreement"}
)
BREAK_GLASS_OBLIGATIONS = ("security-alert", "notify-patient", "privacy-officer-review")


def decide(requester: Requester, item: DataItem, facts: Facts, action: str = "access") -> Decision:
    """Permit or deny ``requester`` the ``item``, with the reasons and obligations."""
    if item.patient is None:
        vote = Vote("patient-data", "permit", f"{item.res_type} is not patient data")
        return Decision("permit", (vote.reason,), (), (vote,))
    if requester.patient is not None:
        own = requester.patient == item.patient
        vote = Vote(
            "own-record",
            "permit" if own else "deny",
            "the patient's own record" if own else "a patient sees only their own record",
        )
        return Decision(vote.effect or "deny", (vote.reason,), (), (vote,))
    if requester.purpose not in PURPOSES:
        vote = Vote("purpose", "deny", f"{requester.purpose!r} is not a purpose of use DHR knows")
        return Decision("deny", (vote.reason,), (), (vote,))
    effect, reason = evaluate_consents(facts.consents, requester, item, action, facts.today)
    origin = is_originator(requester, item, facts)
    votes = (
        Vote("patient-consent", effect, reason),
        care_relationship(requester, facts, origin),
        originator(requester, item, facts),
        sensitivity(item, effect, origin),
        controller_agreement(requester, item, facts, effect),
        opt_out(requester, facts, effect),
    )
    denies = [v for v in votes if v.effect == "deny"]
    glass = (requester.breaking_glass or facts.glass_broken) and requester.purpose in DIRECT_CARE
    if denies and glass and all(v.rule in BREAK_GLASS_OVERRIDES for v in denies):
        why = requester.break_glass_reason or "declared for this patient"
        reasons = (f"break-glass ({why}) overrides: " + "; ".join(v.reason for v in denies),)
        return Decision("permit", reasons, BREAK_GLASS_OBLIGATIONS, votes)
    if denies:
        return Decision("deny", tuple(v.reason for v in denies), (), votes)
    permits = [v for v in votes if v.effect == "permit"]
    if permits:
        obligations = tuple(dict.fromkeys(o for v in permits for o in v.obligations))
        return Decision("permit", tuple(v.reason for v in permits), obligations, votes)
    return Decision("deny", ("no rule permits this access (default deny)",), (), votes)
