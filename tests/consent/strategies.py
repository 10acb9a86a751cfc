"""Hypothesis strategies for the decision point's inputs (consent.model).

The pools are small on purpose: a provision's conditions are drawn from the same few resource
types, codes, labels, organisations and dates as the data and the requester, so that provisions
apply (and do not) often, and nested exceptions are actually reached.
"""

from __future__ import annotations

from hypothesis import strategies as st

from consent.model import (
    PURPOSES,
    Arrangement,
    DataItem,
    Label,
    PatientConsent,
    Period,
    Provision,
    Requester,
)
from consent.provisions import UNUSABLE, UNUSABLE_LABEL
from consent.rules.sensitivity import CONFIDENTIALITY, SENSITIVE

NATIONAL = "X24"
ODS = ("A81001", "B82005", "RRK", "P99999", NATIONAL)
ROLES = ("R8000", "R8001", "researcher", "system", "patient")
PRACTITIONERS = ("Practitioner/1", "Practitioner/2")
PATIENTS = ("p1", "p2")
UNKNOWN_PURPOSE = "MARKETING"
PURPOSE_CODES = (*sorted(PURPOSES), UNKNOWN_PURPOSE)
RES_TYPES = ("Observation", "Condition", "MedicationStatement", "Organization")
RES_IDS = ("1", "2")
CODES = ("http://snomed.info/sct|1", "http://snomed.info/sct|2", "http://loinc.org|3")
HARMLESS = (Label(CONFIDENTIALITY, "N"), Label("http://example.org/tags", "demo"))
LABELS = (*sorted(SENSITIVE, key=lambda label: (label.system, label.code)), *HARMLESS)
#: Data dates and days: some FHIR dateTimes, compared by their first 10 characters.
DATES = ("2015-06-01", "2020-01-01", "2024-01-01", "2024-01-01T09:30:00Z", "2026-11-25")
ACTIONS = ("access", "use", "collect", "disclose", "correct")
SCOPES = ("patient-privacy", "research")

today = st.sampled_from(DATES)
dates = st.none() | st.sampled_from(DATES)


def _subset(pool: tuple[str, ...] | tuple[Label, ...], max_size: int = 3) -> st.SearchStrategy:
    return st.lists(st.sampled_from(pool), max_size=max_size, unique=True)


@st.composite
def requesters(draw: st.DrawFn) -> Requester:
    """Clinicians, researchers and systems with any purpose (one of them unknown), with or
    without a break-glass reason; now and then a patient acting for themselves."""
    if draw(st.integers(0, 9)) == 0:
        return Requester("patient", ("patient",), patient=draw(st.sampled_from(PATIENTS)))
    return Requester(
        subject="someone",
        roles=tuple(draw(_subset(ROLES, 2))),
        organisation=draw(st.sampled_from((None, ODS[0], *ODS))),  # the practice twice
        practitioner=draw(st.none() | st.sampled_from(PRACTITIONERS)),
        purpose=draw(st.sampled_from(PURPOSE_CODES)),
        break_glass_reason=draw(st.sampled_from((None, None, None, "", "unconscious in A&E"))),
    )


@st.composite
def items(draw: st.DrawFn) -> DataItem:
    """A resource (or what every row of a search shares): mostly patient data."""
    return DataItem(
        res_type=draw(st.sampled_from(RES_TYPES)),
        patient=draw(st.sampled_from((*PATIENTS, *PATIENTS, None))),
        labels=frozenset(draw(_subset(LABELS, 2))),
        controllers=tuple(draw(_subset(ODS, 3))),
        date=draw(dates),
        res_id=draw(st.none() | st.sampled_from(RES_IDS)),
        codes=frozenset(draw(_subset(CODES, 2))),
    )


periods = st.builds(Period, st.none() | st.sampled_from(DATES), st.none() | st.sampled_from(DATES))


ACTORS = (
    *(f"org:{ods}" for ods in ODS),
    *PRACTITIONERS,
    "role:R8000",
    "role:R8001",
    UNUSABLE,
)
DATA_REFS = (*(f"{t}/{i}" for t in RES_TYPES[:2] for i in RES_IDS), UNUSABLE)
#: What each kind of condition a provision can state is drawn from ("" and Label("", ""):
#: stated in the Consent, but nothing in it was usable).
CONDITIONS: dict[str, st.SearchStrategy[object]] = {
    "actors": _subset(ACTORS, 2).map(tuple),
    "actions": _subset((*ACTIONS[:2], UNUSABLE), 2).map(tuple),
    "purposes": _subset((*PURPOSE_CODES, UNUSABLE), 2).map(tuple),
    "classes": _subset((*RES_TYPES, UNUSABLE), 2).map(tuple),
    "codes": _subset((*CODES, UNUSABLE), 2).map(tuple),
    "labels": _subset((*LABELS, UNUSABLE_LABEL), 2).map(tuple),
    "period": periods,
    "data_period": periods,
    "data": _subset(DATA_REFS, 2).map(tuple),
}


@st.composite
def provisions(draw: st.DrawFn, depth: int = 3) -> Provision:
    """Provision trees of at most ``depth`` levels, each provision stating a few conditions of
    any kind (unstated ones mean "any") and having up to two nested exceptions."""
    stated = draw(st.lists(st.sampled_from(sorted(CONDITIONS)), max_size=2, unique=True))
    conditions = {kind: draw(CONDITIONS[kind]) for kind in stated}
    children = draw(st.lists(provisions(depth - 1), max_size=2)) if depth > 1 else []
    effect = draw(st.sampled_from(("permit", "deny")))
    return Provision(effect, provisions=tuple(children), **conditions)  # type: ignore[arg-type]


consents = st.builds(
    PatientConsent,
    consent_id=st.sampled_from(("c1", "c2", "c3")),
    scope=st.sampled_from(SCOPES),
    provision=provisions(),
    period=st.none() | periods,
)

purpose_sets = st.frozensets(st.sampled_from(sorted(PURPOSES)))

arrangements = st.builds(
    Arrangement,
    national=st.just(NATIONAL),
    listed=st.dictionaries(st.sampled_from(ODS), purpose_sets, max_size=4),
    default=purpose_sets,
)

#: The care relationship the server established (None: none); every kind counts as related.
relationships = st.sampled_from((None, "registered", "encounter", "episode", "self-claimed"))

#: A break-glass declaration in force for the patient: now and then (it permits all direct care,
#: hiding the other rules).
glass_broken = st.sampled_from((False, False, False, True))

MH = Label("http://terminology.hl7.org/CodeSystem/v3-ActCode", "MH")
RESTRICTED = Label(CONFIDENTIALITY, "R")
#: A few Consents a patient might write, to combine cheaply and often (several of one patient:
#: deny overrides).
CATALOGUE = (
    PatientConsent("deny-all", "patient-privacy", Provision("deny")),
    PatientConsent("permit-all", "patient-privacy", Provision("permit")),
    PatientConsent(
        "no-mental-health",
        "patient-privacy",
        Provision("permit", provisions=(Provision("deny", labels=(MH,)),)),
    ),
    PatientConsent(
        "only-my-practice",
        "patient-privacy",
        Provision("deny", provisions=(Provision("permit", actors=("org:A81001",)),)),
    ),
    PatientConsent(
        "restricted-to-my-gp",
        "patient-privacy",
        Provision("permit", actors=("Practitioner/1",), labels=(RESTRICTED,)),
    ),
    PatientConsent(
        "old-observations-hidden",
        "patient-privacy",
        Provision("deny", classes=("Observation",), data_period=Period(None, "2019-12-31")),
    ),
    PatientConsent("yes-to-research", "research", Provision("permit")),
    PatientConsent("no-to-research", "research", Provision("deny")),
    PatientConsent(
        "yes-to-planning", "patient-privacy", Provision("permit", purposes=("POPHLTH",))
    ),
    PatientConsent("expired", "patient-privacy", Provision("deny"), Period(None, "2020-01-01")),
)
catalogue_consents = st.lists(st.sampled_from(CATALOGUE), max_size=3)
