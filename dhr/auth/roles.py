"""Roles of DHR's users, modelled on England's national RBAC, read from ``dhr/data/roles.json``.

Staff roles carry national RBAC codes (https://fhir.nhs.uk/Id/sds-role-code): R8000 Clinical
Practitioner, R8001 Nurse, R8003 Health Professional, R8008 Admin/Clinical Support, R0001
Privacy Officer; DHR adds ``patient``, ``researcher`` and ``system``. What a role may do is data:
its scope ceiling (SMART App Launch 2.2 scopes,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html), how it gets a patient
context, whether it may authorise apps or create EHR launches, and its purpose of use. Code asks
the :class:`Role` instead of testing role names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

PatientContext = Literal["self", "picker", "none"]
PURPOSE_OF_USE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
_PATIENT_CONTEXTS: tuple[PatientContext, ...] = ("self", "picker", "none")


class UnknownRoleError(ValueError):
    """No role has this code or alias."""


@dataclass(frozen=True)
class Role:
    """One role and everything it permits."""

    code: str  # the national RBAC code (R8000...) or DHR's own name (patient, researcher...)
    display: str
    system: str  # the code system of ``code``
    kind: str  # staff, patient or service
    ceiling: str  # the most a user of this role may be granted (space-separated scopes)
    patient_context: PatientContext  # self: own Patient; picker: chosen/launched; none
    interactive: bool  # may sign in and authorise a SMART app
    user_assignable: bool  # may be given to a local user
    fhir_user_types: tuple[str, ...]  # resource types a user's fhirUser may name
    fhir_user_required: bool
    organisation_required: bool  # staff work for an organisation (ODS code)
    may_create_launch: bool  # may obtain an EHR launch context (POST /auth/launch)
    purpose_of_use: str  # HL7 v3 PurposeOfUse code (TREAT, PATRQT...)
    purpose_of_use_display: str
    aliases: tuple[str, ...] = ()


def _role(item: dict[str, Any]) -> Role:
    context = item["patient_context"]
    if context not in _PATIENT_CONTEXTS:
        raise ValueError(f"role {item['code']}: patient_context must be one of {_PATIENT_CONTEXTS}")
    purpose = item["purpose_of_use"]
    return Role(
        code=str(item["code"]),
        display=str(item["display"]),
        system=str(item["system"]),
        kind=str(item["kind"]),
        ceiling=" ".join(str(item["ceiling"]).split()),
        patient_context=context,
        interactive=bool(item["interactive"]),
        user_assignable=bool(item["user_assignable"]),
        fhir_user_types=tuple(str(t) for t in item["fhir_user_types"]),
        fhir_user_required=bool(item["fhir_user_required"]),
        organisation_required=bool(item["organisation_required"]),
        may_create_launch=bool(item["may_create_launch"]),
        purpose_of_use=str(purpose["code"]),
        purpose_of_use_display=str(purpose["display"]),
        aliases=tuple(str(a) for a in item.get("aliases", ())),
    )


@cache
def _table() -> tuple[tuple[Role, ...], dict[str, Role]]:
    text = resources.files("dhr").joinpath("data/roles.json").read_text("utf-8")
    roles = tuple(_role(item) for item in json.loads(text)["roles"])
    index: dict[str, Role] = {}
    for r in roles:
        for name in (r.code, *r.aliases):
            key = name.lower()
            if key in index:
                raise ValueError(f"roles.json names {name!r} twice")
            index[key] = r
    return roles, index


def all_roles() -> tuple[Role, ...]:
    """Every role, in the order of ``roles.json``."""
    return _table()[0]


def role(code: str) -> Role:
    """The role with this code or alias (case-insensitive); :class:`UnknownRoleError` if none."""
    found = _table()[1].get(code.strip().lower())
    if found is None:
        known = ", ".join(r.code for r in all_roles())
        raise UnknownRoleError(f"unknown role {code!r}; known roles: {known}")
    return found


def ceiling(r: Role | str) -> str:
    """The most a user of role ``r`` (a Role, code or alias) may be granted."""
    return (r if isinstance(r, Role) else role(r)).ceiling
