"""The joint-controller arrangement: which controller permits which purpose for its data, who
answers which data-subject right, and each controller's contact point.

ARCHITECTURE.md "The unified record", Controllers: every resource has two joint controllers, the
originating organisation and the national controller (UK GDPR Article 26: joint controllers set
out their respective responsibilities, in particular for the data subject's rights, and may
designate a contact point). The arrangement is a versioned JSON document
(:mod:`dhr.store.arrangement_store`, ``dhr controllers show|set|history``) that the policy layer
reads. Purposes are HL7 v3 PurposeOfUse codes
(http://terminology.hl7.org/CodeSystem/v3-ActReason); rights are those of UK GDPR Articles 15-21.

The packaged default (``dhr/data/controller_arrangement.json``) lets the national controller
permit direct care, emergency care, break-glass, patient requests, planning and research, and
lets each originating organisation (a GP practice) permit only the direct-care purposes: research
and planning over a practice's data need more (the patient's consent, read by the policy layer).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
# The PurposeOfUse codes the arrangement may name, with what each means here.
PURPOSES: dict[str, str] = {
    "TREAT": "treatment (direct care)",
    "ETREAT": "emergency treatment",
    "BTG": "break the glass",
    "PATRQT": "patient requested",
    "HOPERAT": "healthcare operations",
    "POPHLTH": "population health (planning)",
    "HRESCH": "healthcare research",
}
# The data-subject rights (UK GDPR Articles 15-21) and who may answer them.
RIGHTS = ("access", "rectification", "erasure", "restriction", "objection", "portability")
ORIGINATING, NATIONAL = "originating", "national"
Answerer = Literal["originating", "national"]
_ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")  # as dhr.config and client registration check them


def _purposes(codes: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [c for c in codes if c not in PURPOSES]
    if unknown:
        raise ValueError(
            f"unknown purpose {', '.join(map(repr, unknown))}: expected HL7 v3 PurposeOfUse "
            f"codes, one of {', '.join(PURPOSES)}"
        )
    return tuple(dict.fromkeys(codes))  # each once, in the document's order


def _ods(code: str) -> str:
    code = code.strip().upper()
    if not _ODS_CODE.match(code):
        raise ValueError(f"{code!r} is not an ODS code (3-10 letters and digits)")
    return code


Purposes = Annotated[tuple[str, ...], AfterValidator(_purposes)]
OdsCode = Annotated[str, AfterValidator(_ods)]
Text = Annotated[str, Field(min_length=1, max_length=500)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NationalController(_Model):
    """The national controller: joint controller of all data."""

    ods: OdsCode
    name: Text
    contact: Text
    purposes: Purposes


class OriginatingDefault(_Model):
    """What every originating organisation permits unless the arrangement names it."""

    purposes: Purposes
    contact: Text


class Controller(_Model):
    """One originating organisation's own terms; what it leaves out follows the default."""

    ods: OdsCode
    name: Text | None = None
    purposes: Purposes | None = None
    contact: Text | None = None


class Rights(_Model):
    """Which controller answers each data-subject right (UK GDPR Articles 15-21)."""

    access: Answerer
    rectification: Answerer
    erasure: Answerer
    restriction: Answerer
    objection: Answerer
    portability: Answerer


class Arrangement(_Model):
    """The whole joint-controller arrangement, one version of it."""

    national: NationalController
    originating_default: OriginatingDefault
    controllers: tuple[Controller, ...] = ()
    rights: Rights

    @model_validator(mode="after")
    def _one_entry_per_organisation(self) -> Arrangement:
        seen: set[str] = set()
        for controller in self.controllers:
            if controller.ods == self.national.ods:
                raise ValueError(
                    f"controllers: {controller.ods} is the national controller; "
                    "its terms belong under national"
                )
            if controller.ods in seen:
                raise ValueError(f"controllers: {controller.ods} appears twice")
            seen.add(controller.ods)
        return self

    def controller(self, ods: str) -> Controller | None:
        """The organisation's own entry, if the arrangement has one."""
        return next((c for c in self.controllers if c.ods == ods), None)


class ArrangementError(ValueError):
    """A document the server cannot accept as its arrangement; the message says why."""


@cache
def load_default() -> Arrangement:
    """The packaged default arrangement (version 0, in force until one is recorded)."""
    text = resources.files("dhr").joinpath("data/controller_arrangement.json").read_text("utf-8")
    return Arrangement.model_validate_json(text)


def parse_arrangement(text: str, national_ods: str) -> Arrangement:
    """A JSON document checked as an arrangement for a server whose national controller is
    ``national_ods``; :class:`ArrangementError` lists every problem in plain words."""
    try:
        arrangement = Arrangement.model_validate_json(text)
    except ValidationError as exc:
        raise ArrangementError(describe_errors(exc)) from exc
    check_national(arrangement, national_ods)
    return arrangement


def check_national(arrangement: Arrangement, national_ods: str) -> None:
    """The document's national controller must be the one this server is configured with."""
    if arrangement.national.ods != national_ods:
        raise ArrangementError(
            f"national.ods is {arrangement.national.ods} but this server's national controller "
            f"is {national_ods} (DHR_NATIONAL_CONTROLLER_ODS)"
        )


def describe_errors(exc: ValidationError) -> str:
    """One line per problem: where in the document, and what is wrong."""
    lines = []
    for error in exc.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
        where = where.removeprefix(".") or "the document"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not part of an arrangement"
        elif error["type"] == "missing":
            message = "is missing"
        lines.append(f"{where}: {message}")
    return "\n".join(lines)


def _is_national(arrangement: Arrangement, ods: str, national_ods: str) -> bool:
    return ods in (national_ods, arrangement.national.ods)


def purposes_for(arrangement: Arrangement, ods: str, national_ods: str) -> frozenset[str]:
    """The purposes controller ``ods`` permits for the data it controls: the national terms for
    the national controller, else the organisation's own entry, else the originating default."""
    if _is_national(arrangement, ods, national_ods):
        return frozenset(arrangement.national.purposes)
    own = arrangement.controller(ods)
    if own is not None and own.purposes is not None:
        return frozenset(own.purposes)
    return frozenset(arrangement.originating_default.purposes)


def contact_for(arrangement: Arrangement, ods: str, national_ods: str) -> str:
    """The contact point of controller ``ods`` (resolved as :func:`purposes_for`)."""
    if _is_national(arrangement, ods, national_ods):
        return arrangement.national.contact
    own = arrangement.controller(ods)
    if own is not None and own.contact is not None:
        return own.contact
    return arrangement.originating_default.contact


def who_answers(arrangement: Arrangement, right: str) -> str:
    """``"originating"`` or ``"national"``: the controller that answers a data-subject right."""
    if right not in RIGHTS:
        raise ValueError(f"unknown data-subject right {right!r}: expected one of {RIGHTS}")
    answerer: str = getattr(arrangement.rights, right)
    return answerer
