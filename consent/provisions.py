"""The patient's Consents: parsing FHIR R4 Consent and evaluating its provisions.

https://hl7.org/fhir/R4/consent.html and
https://hl7.org/fhir/R4/consent-definitions.html#Consent.provision.

Parsing (:func:`parse_consent`) keeps a Consent whose ``status`` is ``active`` and whose
``scope`` (http://terminology.hl7.org/CodeSystem/consentscope) is ``patient-privacy`` or
``research``; anything else gives ``None``. The Consent's period is its root provision's
``period``. Each provision's effect is its ``type`` (``deny`` | ``permit``); ``type`` is 0..1, so
a root without a (valid) type is ``permit`` and a nested provision without one is the opposite of
its parent (a nested provision is an exception). Parsing is defensive and never raises: a part of
the wrong shape is ignored. Ignoring must not widen what a patient allowed, so parsing fails
closed: a condition a *permit* provision states (a non-empty list) of which no entry is usable
makes that provision apply to nothing, while on a *deny* provision it is dropped (the deny then
covers more, never less).

Actor keys: an actor reference whose ``identifier`` has the system
https://fhir.nhs.uk/Id/ods-organization-code is ``org:<ODS>``; a literal reference
``Organization/x`` or ``Practitioner/x`` is itself; an actor ``role`` coding with the system
https://fhir.nhs.uk/Id/sds-role-code, or any role code of the national RBAC form ``R<digits>``
(R8000...), is ``role:<code>`` (v3 ParticipationType roles such as PRCP are not actors). A
requester's keys (:func:`actor_keys`) are ``org:<organisation>``, its practitioner reference and
``role:<role>`` for each role.

Evaluation (:func:`evaluate`) is deterministic. A provision APPLIES when every condition it states
matches; an empty condition means "any":

- actors: one of the provision's actor keys is one of the requester's;
- actions: the action asked for is one of them;
- purposes: the requester's purpose of use is one of them;
- classes: the data's resource type is one of them;
- codes: one of the data's codes (``system|code`` of its ``code`` element) is one of them;
- labels: one of the data's security labels is one of them;
- period: today lies within it (first 10 characters compared as dates, ends inclusive, open ends);
- dataPeriod: the data's date lies within it (data without a date does not match);
- data: ``<res_type>/<res_id>`` of the data is one of the references.

A provision that does not apply gives ``(None, reason)``. One that applies gives its nested
provisions' results, each evaluated the same way: if any applicable child says deny, deny; else
if any says permit, permit; else its own effect. So the deepest applicable provision on a path
decides and, among siblings, deny wins. Provisions are numbered by path (the root is ``1``, its
children ``1.1``, ``1.2``...), and the reason names the provision that decided, e.g.
``Consent provision 1.2 (deny: class Observation, label MH)``.

Combining Consents (:func:`evaluate_consents`): only Consents in force (their period covers
today) count; ``patient-privacy`` Consents always, ``research`` Consents only when the requester's
purpose is the research purpose (HRESCH). Any deny denies, else any permit permits, else no
Consent has a say (``None``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from consent.model import DataItem, Effect, Label, PatientConsent, Period, Provision, Requester

CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
SCOPES = frozenset({"patient-privacy", "research"})
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_ROLE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-code"
RESEARCH_PURPOSE = "HRESCH"
LITERAL_ACTOR = re.compile(r"(Organization|Practitioner)/[A-Za-z0-9\-.]{1,64}")
RBAC_ROLE = re.compile(r"R\d+")
DATA_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")

#: Stands for a stated condition of which nothing was usable: it matches nothing.
UNUSABLE = ""
UNUSABLE_LABEL = Label("", "")

T = TypeVar("T")


# --- parsing -----------------------------------------------------------------------------------


def _dicts(value: object) -> list[dict[str, Any]]:
    """The dict entries of a JSON list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _codings(concept: object) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept."""
    return _dicts(concept.get("coding")) if isinstance(concept, dict) else []


def _stated(value: object) -> bool:
    """Does the provision state this condition (a non-empty value)?"""
    return value is not None and value not in ([], {}, "")


def _condition(raw: object, values: Iterable[T], effect: Effect, unusable: T) -> tuple[T, ...]:
    """The parsed values of a condition, failing closed when it was stated but unusable."""
    parsed = tuple(dict.fromkeys(values))
    if parsed or not _stated(raw):
        return parsed
    return (unusable,) if effect == "permit" else ()


def _period(value: object) -> Period | None:
    if not isinstance(value, dict):
        return None
    start, end = _str(value.get("start")), _str(value.get("end"))
    if start is None and end is None:
        return None
    return Period(start, end)


def _actor_keys(actors: object) -> list[str]:
    keys: list[str] = []
    for actor in _dicts(actors):
        reference = actor.get("reference")
        if isinstance(reference, dict):
            identifier = reference.get("identifier")
            if isinstance(identifier, dict) and identifier.get("system") == ODS_SYSTEM:
                ods = _str(identifier.get("value"))
                if ods is not None:
                    keys.append(f"org:{ods}")
            literal = _str(reference.get("reference"))
            if literal is not None and LITERAL_ACTOR.fullmatch(literal):
                keys.append(literal)
        for coding in _codings(actor.get("role")):
            code = _str(coding.get("code"))
            if code is not None and (
                coding.get("system") == SDS_ROLE_SYSTEM or RBAC_ROLE.fullmatch(code)
            ):
                keys.append(f"role:{code}")
    return keys


def _coding_codes(codings: object) -> list[str]:
    return [code for c in _dicts(codings) if (code := _str(c.get("code"))) is not None]


def _concept_codes(concepts: object) -> list[str]:
    return [
        f"{system}|{code}"
        for concept in _dicts(concepts)
        for coding in _codings(concept)
        if (system := _str(coding.get("system"))) is not None
        and (code := _str(coding.get("code"))) is not None
    ]


def _labels(codings: object) -> list[Label]:
    return [
        Label(system, code)
        for coding in _dicts(codings)
        if (system := _str(coding.get("system"))) is not None
        and (code := _str(coding.get("code"))) is not None
    ]


def _data(entries: object) -> list[str]:
    refs: list[str] = []
    for entry in _dicts(entries):
        reference = entry.get("reference")
        literal = _str(reference.get("reference")) if isinstance(reference, dict) else None
        if literal is not None and DATA_REFERENCE.fullmatch(literal):
            refs.append(literal)
    return refs


def parse_provision(raw: dict[str, Any], parent: Effect | None = None) -> Provision:
    """One ``Consent.provision`` and its nested provisions (``parent``: the parent's effect)."""
    kind = raw.get("type")
    effect: Effect
    if kind in ("permit", "deny"):
        effect = "permit" if kind == "permit" else "deny"
    elif parent is None:
        effect = "permit"
    else:
        effect = "deny" if parent == "permit" else "permit"
    get = raw.get
    return Provision(
        effect=effect,
        actors=_condition(get("actor"), _actor_keys(get("actor")), effect, UNUSABLE),
        actions=_condition(
            get("action"),
            (
                code
                for concept in _dicts(get("action"))
                for code in _coding_codes(concept.get("coding"))
            ),
            effect,
            UNUSABLE,
        ),
        purposes=_condition(get("purpose"), _coding_codes(get("purpose")), effect, UNUSABLE),
        classes=_condition(get("class"), _coding_codes(get("class")), effect, UNUSABLE),
        codes=_condition(get("code"), _concept_codes(get("code")), effect, UNUSABLE),
        labels=_condition(
            get("securityLabel"), _labels(get("securityLabel")), effect, UNUSABLE_LABEL
        ),
        period=_period(get("period")),
        data_period=_period(get("dataPeriod")),
        data=_condition(get("data"), _data(get("data")), effect, UNUSABLE),
        provisions=tuple(parse_provision(child, effect) for child in _dicts(get("provision"))),
    )


def parse_consent(resource: dict[str, Any]) -> PatientConsent | None:
    """An active patient-privacy or research Consent, parsed; anything else: ``None``."""
    if not isinstance(resource, dict) or resource.get("resourceType", "Consent") != "Consent":
        return None
    if resource.get("status") != "active":
        return None
    scopes = [
        code
        for coding in _codings(resource.get("scope"))
        if coding.get("system") in (CONSENT_SCOPE, None)
        and (code := _str(coding.get("code"))) in SCOPES
    ]
    if not scopes:
        return None
    raw = resource.get("provision")
    provision = parse_provision(raw if isinstance(raw, dict) else {})
    consent_id = _str(resource.get("id")) or ""
    return PatientConsent(consent_id, scopes[0], provision, provision.period)


# --- evaluation --------------------------------------------------------------------------------


def actor_keys(requester: Requester) -> frozenset[str]:
    """The actor keys a requester answers to: organisation, practitioner and roles."""
    keys = {f"role:{role}" for role in requester.roles}
    if requester.organisation:
        keys.add(f"org:{requester.organisation}")
    if requester.practitioner:
        keys.add(requester.practitioner)
    return frozenset(keys)


def within(period: Period | None, date: str | None) -> bool:
    """Does ``date`` lie within ``period`` (dates compared by day, ends inclusive, open ends)?"""
    if period is None:
        return True
    if not date:
        return False
    day = date[:10]
    if period.start is not None and day < period.start[:10]:
        return False
    return period.end is None or day <= period.end[:10]


def _span(period: Period) -> str:
    return f"{period.start or '...'} to {period.end or '...'}"


def describe(provision: Provision) -> str:
    """The provision in words: its effect and the conditions it states."""
    parts = [
        *(f"actor {a or '(unusable)'}" for a in provision.actors),
        *(f"action {a or '(unusable)'}" for a in provision.actions),
        *(f"purpose {p or '(unusable)'}" for p in provision.purposes),
        *(f"class {c or '(unusable)'}" for c in provision.classes),
        *(f"code {c or '(unusable)'}" for c in provision.codes),
        *(f"label {label.code or '(unusable)'}" for label in provision.labels),
        *([f"period {_span(provision.period)}"] if provision.period else []),
        *([f"dataPeriod {_span(provision.data_period)}"] if provision.data_period else []),
        *(f"data {d or '(unusable)'}" for d in provision.data),
    ]
    return f"{provision.effect}: {', '.join(parts) or 'any'}"


def _mismatch(
    provision: Provision, requester: Requester, item: DataItem, action: str, today: str
) -> str | None:
    """Which stated condition does not match (``None``: the provision applies)."""
    if provision.actors and not actor_keys(requester) & set(provision.actors):
        return "the requester is not one of its actors"
    if provision.actions and action not in provision.actions:
        return f"the action {action!r} is not one of its actions"
    if provision.purposes and requester.purpose not in provision.purposes:
        return f"the purpose {requester.purpose} is not one of its purposes"
    if provision.classes and item.res_type not in provision.classes:
        return f"{item.res_type} is not one of its classes"
    if provision.codes and item.codes.isdisjoint(provision.codes):
        return "the data carries none of its codes"
    if provision.labels and not item.labels & set(provision.labels):
        return "the data carries none of its security labels"
    if not within(provision.period, today):
        return f"{today} is outside its period"
    if provision.data_period is not None and not within(provision.data_period, item.date):
        return "the data's date is outside its dataPeriod"
    if provision.data and f"{item.res_type}/{item.res_id}" not in provision.data:
        return "the data is not one of its data references"
    return None


def evaluate(
    provision: Provision,
    requester: Requester,
    item: DataItem,
    action: str,
    today: str,
    path: str = "1",
) -> tuple[Effect | None, str]:
    """The provision's say: the deepest applicable provision decides, deny wins among siblings."""
    name = f"Consent provision {path} ({describe(provision)})"
    mismatch = _mismatch(provision, requester, item, action, today)
    if mismatch is not None:
        return None, f"{name} does not apply: {mismatch}"
    results = [
        evaluate(child, requester, item, action, today, f"{path}.{n}")
        for n, child in enumerate(provision.provisions, start=1)
    ]
    for wanted in ("deny", "permit"):
        for effect, reason in results:
            if effect == wanted:
                return effect, reason
    return provision.effect, name


def _reasons(results: Sequence[tuple[str, Effect | None, str]], effect: Effect) -> list[str]:
    return [f"Consent/{cid}: {reason}" for cid, e, reason in results if e == effect]


def in_force(
    consents: Iterable[PatientConsent],
    requester: Requester,
    today: str,
    purpose_scope: str = RESEARCH_PURPOSE,
) -> list[PatientConsent]:
    """The Consents that have a say for ``requester`` today: ``patient-privacy`` always,
    ``research`` only for the research purpose, each only within its period."""
    return [
        c
        for c in consents
        if c.scope in SCOPES
        and (c.scope != "research" or requester.purpose == purpose_scope)
        and within(c.period, today)
    ]


def evaluate_consents(
    consents: Iterable[PatientConsent],
    requester: Requester,
    item: DataItem,
    action: str,
    today: str,
    purpose_scope: str = RESEARCH_PURPOSE,
) -> tuple[Effect | None, str]:
    """The patient's Consents combined: any deny denies, else any permit permits, else ``None``.

    ``purpose_scope`` is the purpose of use under which ``research`` Consents count.
    """
    results: list[tuple[str, Effect | None, str]] = []
    for consent in in_force(consents, requester, today, purpose_scope):
        effect, reason = evaluate(consent.provision, requester, item, action, today)
        results.append((consent.consent_id, effect, reason))
    if denies := _reasons(results, "deny"):
        return "deny", "; ".join(denies)
    if permits := _reasons(results, "permit"):
        return "permit", "; ".join(permits)
    if not results:
        return None, "no Consent of the patient is in force for this purpose"
    return None, "no provision of the patient's Consents applies"
