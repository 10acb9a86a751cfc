"""The decision of :func:`consent.pdp.decide` for one requester, as a formula over the data.

ARCHITECTURE.md "The policy layer": the decision compiles into the SQL. :func:`policy` fixes what
is known before the data is seen (the requester, the purpose, today, the joint-controller
arrangement and, for a patient with Consents, those Consents) and leaves as atoms what depends on
the data and on the patient's facts. The rule families are restated here as conditions on the
data, in the order and with the combining rule of ``consent.pdp`` (ADR 0009):

* patient consent: ``deny(c)`` / ``permit(c)`` of each in-force Consent's provision tree, where
  an applicable provision's result is its applicable children's (deny wins among siblings) or its
  own type when none applies; several Consents: any deny denies, else any permit permits;
* care relationship (direct care): :class:`~consent.formula.Related` permits, its absence denies;
* originator (direct care): the requester's organisation is a controller of the data;
* sensitivity: a sensitive label denies unless the consent or the originator rule permits;
* controller agreement: a controller refusing the purpose denies unless the consent permits;
  data with controllers, none refusing (or consented), permits;
* national data opt-out (secondary uses): :class:`~consent.formula.OptedOut` denies unless the
  consent permits;
* break-glass (direct care, declared in the request or :class:`~consent.formula.GlassBroken` for
  the patient) overrides every deny that can occur in direct care, so it permits.

The result is permit exactly when no rule denies and some rule permits. The property tests check
that :func:`consent.formula.permits` of the compiled formula agrees with ``decide`` for any data.
"""

from __future__ import annotations

from collections.abc import Sequence

from consent.formula import (
    FALSE,
    TRUE,
    CodeIn,
    ControllerIn,
    ControllerOutside,
    DateIn,
    Formula,
    GlassBroken,
    IdIn,
    LabelIn,
    OptedOut,
    PatientFacts,
    PatientIs,
    Related,
    TypeIn,
    all_of,
    any_of,
    holds,
    negate,
)
from consent.model import (
    DIRECT_CARE,
    PURPOSES,
    SECONDARY_USE,
    Arrangement,
    DataItem,
    PatientConsent,
    Provision,
    Requester,
)
from consent.provisions import RESEARCH_PURPOSE, actor_keys, in_force, within
from consent.rules.sensitivity import SENSITIVE
from consent.simplify import simplify


def _requester_applies(provision: Provision, requester: Requester, action: str, today: str) -> bool:
    """The conditions on who asks, how and when (the same for every item of one request)."""
    if provision.actors and actor_keys(requester).isdisjoint(provision.actors):
        return False
    if provision.actions and action not in provision.actions:
        return False
    if provision.purposes and requester.purpose not in provision.purposes:
        return False
    return within(provision.period, today)


def _data_applies(provision: Provision) -> Formula:
    """The conditions on the data, as atoms."""
    parts: list[Formula] = []
    if provision.classes:
        parts.append(TypeIn(frozenset(provision.classes)))
    if provision.codes:
        parts.append(CodeIn(frozenset(provision.codes)))
    if provision.labels:
        parts.append(LabelIn(frozenset(provision.labels)))
    if provision.data_period is not None:
        parts.append(DateIn(provision.data_period))
    if provision.data:
        parts.append(IdIn(frozenset(provision.data)))
    return all_of(parts)


def provision_result(
    provision: Provision, requester: Requester, action: str, today: str
) -> tuple[Formula, Formula]:
    """``(deny, permit)``: when the provision's result is deny, and when it is permit."""
    if not _requester_applies(provision, requester, action, today):
        return FALSE, FALSE
    applies = _data_applies(provision)
    children = [provision_result(c, requester, action, today) for c in provision.provisions]
    child_deny = any_of(d for d, _ in children)
    child_permit = any_of(p for _, p in children)
    if provision.effect == "deny":
        deny = all_of([applies, any_of([child_deny, negate(child_permit)])])
        permit = all_of([applies, negate(child_deny), child_permit])
    else:
        deny = all_of([applies, child_deny])
        permit = all_of([applies, negate(child_deny)])
    return deny, permit


def consent_result(
    consents: Sequence[PatientConsent],
    requester: Requester,
    action: str,
    today: str,
    purpose_scope: str = RESEARCH_PURPOSE,
) -> tuple[Formula, Formula]:
    """``(deny, permit)`` of a patient's Consents combined (any deny denies)."""
    denies: list[Formula] = []
    permits: list[Formula] = []
    for consent in in_force(consents, requester, today, purpose_scope):
        deny, permit = provision_result(consent.provision, requester, action, today)
        denies.append(deny)
        permits.append(permit)
    deny = any_of(denies)
    return deny, all_of([negate(deny), any_of(permits)])


def refusing(arrangement: Arrangement, purpose: str) -> Formula:
    """Some controller of the data does not permit ``purpose`` under the arrangement."""
    listed = {**arrangement.listed}
    if purpose in arrangement.default:
        return ControllerIn(frozenset(o for o, p in listed.items() if purpose not in p))
    return ControllerOutside(frozenset(o for o, p in listed.items() if purpose in p))


def _empty_to_false(formula: Formula) -> Formula:
    if isinstance(formula, ControllerIn) and not formula.codes:
        return FALSE
    return formula


def policy(
    requester: Requester,
    arrangement: Arrangement,
    today: str,
    consents: Sequence[PatientConsent] = (),
    action: str = "access",
) -> Formula:
    """When ``decide`` permits ``requester`` a patient's data, for a patient with ``consents``."""
    if requester.patient is not None:
        return PatientIs(requester.patient)
    purpose = requester.purpose
    if purpose not in PURPOSES:
        return FALSE
    direct = purpose in DIRECT_CARE
    secondary = purpose in SECONDARY_USE
    c_deny, c_permit = consent_result(consents, requester, action, today)
    org = requester.organisation
    origin = (
        ControllerIn(frozenset({org})) if direct and org and org != arrangement.national else FALSE
    )
    sensitive = LabelIn(SENSITIVE)
    refuse = _empty_to_false(refusing(arrangement, purpose))
    has_controller = ControllerOutside(frozenset())
    denies = [
        c_deny,
        all_of([negate(Related()), negate(origin)]) if direct else FALSE,
        all_of([sensitive, negate(any_of([c_permit, origin]))]),
        all_of([refuse, negate(c_permit)]),
        all_of([OptedOut(), negate(c_permit)]) if secondary else FALSE,
    ]
    permits = [
        c_permit,
        Related() if direct else FALSE,
        origin,
        all_of([sensitive, any_of([c_permit, origin])]),
        all_of([has_controller, any_of([negate(refuse), c_permit])]),
        all_of([OptedOut(), c_permit]) if secondary else FALSE,
    ]
    normal = all_of([negate(any_of(denies)), any_of(permits)])
    if not direct:
        return simplify(normal)
    if requester.breaking_glass:
        return TRUE
    return simplify(any_of([GlassBroken(), normal]))


def permits(formula: Formula, item: DataItem, facts: PatientFacts) -> bool:
    """Whether the compiled decision permits ``item``: data of no patient always (SMART scopes
    alone govern it), patient data when ``formula`` holds."""
    return item.patient is None or holds(formula, item, facts)
