"""What a policy decision takes and gives: the request, the facts, the votes and the decision.

ARCHITECTURE.md "The policy layer": a decision takes the requester (role, organisation, client,
SMART scopes, purpose of use, care relationship, break-glass reason), the data (type, patient,
security labels, controllers, dates, source) and the facts (the patient's Consents, the
joint-controller arrangement, the national data opt-out) and returns permit or deny with its
reasons and obligations. Frozen dataclasses only: consent never imports the web layer, and every
rule (``consent.rules``) is a pure function of these values.

Purposes of use are HL7 v3 ActReason codes (http://terminology.hl7.org/CodeSystem/v3-ActReason):
TREAT (direct care), ETREAT (emergency treatment), BTG (break the glass), HRESCH (research),
POPHLTH (planning / population health), PATRQT (patient requested), HOPERAT (operations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Effect = Literal["permit", "deny"]
Action = Literal["access", "use", "collect", "disclose", "correct"]  # Consent actions

DIRECT_CARE = frozenset({"TREAT", "ETREAT", "BTG"})
SECONDARY_USE = frozenset({"HRESCH", "POPHLTH", "HOPERAT"})
PURPOSES = DIRECT_CARE | SECONDARY_USE | {"PATRQT"}


@dataclass(frozen=True)
class Label:
    """A security label (``meta.security``): a v3 Confidentiality code (R, V...) or an
    ActCode sensitivity (MH mental health, SEX sexual health, HIV, ETH substance use...)."""

    system: str
    code: str


@dataclass(frozen=True)
class Requester:
    """Who asks, and why."""

    subject: str  # the principal's subject (user name, client id)
    roles: tuple[str, ...] = ()  # national RBAC codes (R8000...), patient, researcher, system
    organisation: str | None = None  # ODS code
    client_id: str | None = None
    practitioner: str | None = None  # fhirUser, e.g. Practitioner/123
    patient: str | None = None  # a patient acting for themselves: their Patient id
    purpose: str = "TREAT"
    break_glass_reason: str | None = None  # set with purpose BTG or ETREAT

    @property
    def breaking_glass(self) -> bool:
        return self.purpose in ("BTG", "ETREAT") and bool(self.break_glass_reason)


@dataclass(frozen=True)
class DataItem:
    """The data asked for: one resource, or (for a search) what every row shares."""

    res_type: str
    patient: str | None  # the compartment the data belongs to (None: not patient data)
    labels: frozenset[Label] = frozenset()
    controllers: tuple[str, ...] = ()  # ODS codes of the joint controllers
    date: str | None = None  # the clinical date of the data (YYYY-MM-DD...), for dataPeriod
    source: str | None = None  # meta.source
    res_id: str | None = None
    codes: frozenset[str] = frozenset()  # "system|code" of the data's code element


@dataclass(frozen=True)
class Period:
    start: str | None = None  # FHIR date/dateTime; None: open
    end: str | None = None


@dataclass(frozen=True)
class Provision:
    """One ``Consent.provision`` (https://hl7.org/fhir/R4/consent-definitions.html#Consent.provision),
    its conditions as parsed; an empty tuple means "any"."""

    effect: Effect
    actors: tuple[str, ...] = ()  # actor keys: "org:A81001", "Practitioner/1", "role:R8000"
    actions: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()  # resource types
    codes: tuple[str, ...] = ()  # "system|code" of the data's code
    labels: tuple[Label, ...] = ()
    period: Period | None = None  # when the provision applies
    data_period: Period | None = None  # which data it covers (by the data's date)
    data: tuple[str, ...] = ()  # "Type/id" of specific resources
    provisions: tuple[Provision, ...] = ()  # nested exceptions


@dataclass(frozen=True)
class PatientConsent:
    """An active FHIR Consent of the patient (scope patient-privacy or research)."""

    consent_id: str
    scope: str  # patient-privacy | research
    provision: Provision
    period: Period | None = None


@dataclass(frozen=True)
class Facts:
    """What the decision knows beyond the request."""

    consents: tuple[PatientConsent, ...] = ()
    relationship: str | None = None  # registered | encounter | episode | self-claimed | None
    opted_out: bool = False  # national data opt-out recorded for the patient's NHS number
    controller_purposes: dict[str, frozenset[str]] = field(default_factory=dict)  # ODS -> purposes
    today: str = "1970-01-01"  # the decision's date (YYYY-MM-DD), for periods
    national: str | None = None  # ODS code of the national controller (never an originator)
    glass_broken: bool = False  # the requester declared break-glass for this patient (in force)


@dataclass(frozen=True)
class Arrangement:
    """The joint-controller arrangement as the decision reads it: the purposes each listed
    controller permits for its data, and those of an originating organisation it does not list."""

    national: str
    listed: dict[str, frozenset[str]] = field(default_factory=dict)  # ODS -> purposes
    default: frozenset[str] = frozenset()

    def purposes_of(self, ods: str) -> frozenset[str]:
        return self.listed.get(ods, self.default)


@dataclass(frozen=True)
class Vote:
    """One rule family's say: a permit or deny with its reason, or abstain (effect None)."""

    rule: str
    effect: Effect | None
    reason: str
    obligations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The combined answer, with every vote that produced it (the explanation)."""

    effect: Effect
    reasons: tuple[str, ...]
    obligations: tuple[str, ...] = ()
    votes: tuple[Vote, ...] = ()

    @property
    def permitted(self) -> bool:
        return self.effect == "permit"
