"""``Patient/$match``: find the Patients a partial Patient most likely is.

https://hl7.org/fhir/R4/patient-operation-match.html. ``POST Patient/$match`` takes a Parameters
body with ``resource`` (a Patient, required: 400 without it), ``onlyCertainMatches`` (boolean)
and ``count`` (integer, at most that many matches; default 10, never more than the server's page
limit). The answer is a ``searchset`` Bundle, most likely first: each entry has
``search.mode = match``, ``search.score`` (0 to 1) and the ``match-grade`` extension
(http://hl7.org/fhir/StructureDefinition/match-grade) with ``certain``, ``probable`` or
``possible``. No match is an empty searchset, not an error.

Candidates are the people of the unified record (ARCHITECTURE.md "The unified record"): master
Patients and Patients that are not a source's own record, so a Patient tagged
``record-role|source-record`` (linked to its master) is never returned and a person appears once.
They are fetched through the enforcing repository with ordinary indexed searches (so the
token's scopes restrict them and the search is audited): by the NHS number (``identifier``),
then by ``birthdate``, ``family`` and ``address-postalcode``; the union is capped at
:data:`MAX_CANDIDATES` and scored here.

Scoring:

* the input's NHS number (valid, Modulus 11) equals the candidate's: ``certain``, score 1.0;
* both carry a valid NHS number and they differ: not the same person, never returned;
* otherwise the demographics that agree add up (case-insensitive, spaces collapsed):
  family name 0.25, given name 0.15 (any given name of any name), birth date 0.30 (same
  date), gender 0.10, postcode 0.20 (``address.postalCode`` of any address, compared without
  spaces); a field missing on either side adds nothing.
* grades: all five agree (score 1.0) is ``certain``; 0.70 or more ``probable``; 0.40 or more
  ``possible``; below 0.40 the candidate is not returned. ``onlyCertainMatches=true`` keeps only
  ``certain`` matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dhr.api.http import check_body_type
from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext
from dhr.errors import Issue, bad_request, operation_outcome
from dhr.fhir import jsonio
from dhr.fhir.validate import validate_resource
from dhr.record.nhs_number import is_valid_nhs_number, patient_nhs_number
from dhr.record.vocab import (
    MATCH_GRADE_EXTENSION,
    NHS_NUMBER_SYSTEM,
    RECORD_ROLE_SYSTEM,
    ROLE_SOURCE_RECORD,
)
from dhr.search.params import parse_search

DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-match"
MAX_CANDIDATES = 200
DEFAULT_COUNT = 10
# Points out of 100 per agreeing field (integers, so grade thresholds compare exactly).
WEIGHTS = {"family": 25, "given": 15, "birthDate": 30, "gender": 10, "postcode": 20}
CERTAIN, PROBABLE, POSSIBLE = 100, 70, 40
_KNOWN = frozenset({"resource", "onlyCertainMatches", "count"})
_NOT_SOURCE = ("_tag:not", f"{RECORD_ROLE_SYSTEM}|{ROLE_SOURCE_RECORD}")


@dataclass(frozen=True)
class MatchRequest:
    """The parsed Parameters of one ``$match``."""

    patient: dict[str, Any]
    only_certain: bool
    count: int


@dataclass(frozen=True)
class Facts:
    """What a Patient says about its person, normalised for comparison."""

    nhs: str | None
    family: frozenset[str]
    given: frozenset[str]
    birth_date: str | None
    gender: str | None
    postcodes: frozenset[str]


@dataclass(frozen=True)
class Match:
    res_id: str
    resource: dict[str, Any]
    points: int
    grade: str


def match(ctx: RequestContext, req: FhirRequest) -> FhirResponse:
    """``POST Patient/$match``."""
    check_body_type(req)
    wanted = parse_request(req, ctx.settings.max_page_size)
    facts = facts_of(wanted.patient)
    found: list[Match] = []
    for res_id, resource in candidates(ctx, facts).items():
        graded = grade(facts, facts_of(resource))
        if graded is None or (wanted.only_certain and graded[1] != "certain"):
            continue
        found.append(Match(res_id, resource, graded[0], graded[1]))
    found.sort(key=lambda m: (-m.points, m.res_id))
    shown = found[: wanted.count]
    entries = [_entry(ctx, m) for m in shown]
    if not _searchable(facts):
        entries.append(_advice())
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(shown),
        "link": [{"relation": "self", "url": f"{ctx.base}/Patient/$match"}],
    }
    if entries:
        bundle["entry"] = entries
    return FhirResponse(200, None, bundle, {}, "Bundle")


# -- the request -------------------------------------------------------------------------------


def parse_request(req: FhirRequest, max_count: int) -> MatchRequest:
    """The Parameters body: 400 when it is not one, lacks ``resource`` or has a bad value."""
    body = jsonio.parse_object(req.body or b"")
    validate_resource(body, "Parameters")
    patient: dict[str, Any] | None = None
    only_certain = False
    count = min(DEFAULT_COUNT, max_count)
    seen: set[str] = set()
    for part in body.get("parameter") or []:
        name = part.get("name")
        if name not in _KNOWN:
            raise bad_request(
                f"$match takes the parameters resource, onlyCertainMatches and count, not "
                f"{str(name)[:40]!r}",
                "unknown-parameter",
            )
        if name in seen:
            raise bad_request(f"$match parameter {name} is repeated", "repeated-parameter")
        seen.add(name)
        if name == "resource":
            patient = part.get("resource")
            if not isinstance(patient, dict):
                raise bad_request("$match: the resource parameter has no resource", "no-resource")
            validate_resource(patient, "Patient")
        elif name == "onlyCertainMatches":
            value = part.get("valueBoolean")
            if not isinstance(value, bool):
                raise bad_request("$match: onlyCertainMatches takes a valueBoolean", "bad-value")
            only_certain = value
        else:
            value = part.get("valueInteger")
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad_request("$match: count takes a positive valueInteger", "bad-count")
            count = min(value, max_count)
    if patient is None:
        raise bad_request(
            "$match needs a 'resource' parameter holding the Patient to match", "no-resource"
        )
    return MatchRequest(patient, only_certain, count)


# -- what a Patient says -----------------------------------------------------------------------


def _norm(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split()).casefold()
    return text or None


def postcode_key(value: Any) -> str | None:
    """A postcode compared without spaces, case-insensitively (``ls1 4ab`` = ``LS14AB``)."""
    if not isinstance(value, str):
        return None
    key = "".join(value.split()).upper()
    return key or None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def facts_of(patient: dict[str, Any]) -> Facts:
    names = _dicts(patient.get("name"))
    family = {_norm(n.get("family")) for n in names}
    given = {_norm(g) for n in names for g in (n.get("given") or [])}
    codes = {postcode_key(a.get("postalCode")) for a in _dicts(patient.get("address"))}
    nhs = patient_nhs_number(patient)
    birth = patient.get("birthDate")
    gender = patient.get("gender")
    return Facts(
        nhs if nhs is not None and is_valid_nhs_number(nhs) else None,
        frozenset(f for f in family if f),
        frozenset(g for g in given if g),
        birth if isinstance(birth, str) and birth else None,
        gender if isinstance(gender, str) and gender else None,
        frozenset(c for c in codes if c),
    )


def _searchable(facts: Facts) -> bool:
    return bool(facts.nhs or facts.birth_date or facts.family or facts.postcodes)


# -- candidates --------------------------------------------------------------------------------


def _escape(value: str) -> str:
    """A search value with FHIR's special characters escaped (search.html#escaping)."""
    for char in ("\\", ",", "|", "$"):
        value = value.replace(char, "\\" + char)
    return value


def _queries(facts: Facts) -> list[tuple[str, str]]:
    """One search per fact, most specific first."""
    out: list[tuple[str, str]] = []
    if facts.nhs:
        out.append(("identifier", f"{NHS_NUMBER_SYSTEM}|{facts.nhs}"))
    if facts.birth_date:
        out.append(("birthdate", f"eq{facts.birth_date}"))
    if facts.family:
        out.append(("family", ",".join(_escape(f) for f in sorted(facts.family))))
    if facts.postcodes:
        spelt = set(facts.postcodes)  # as sent without spaces, and as ``OUTWARD INWARD``
        spelt |= {f"{code[:-3]} {code[-3:]}" for code in facts.postcodes if len(code) > 3}
        out.append(("address-postalcode", ",".join(_escape(v) for v in sorted(spelt))))
    return out


def candidates(ctx: RequestContext, facts: Facts) -> dict[str, dict[str, Any]]:
    """Patients (not source records) sharing the NHS number, birth date, family name or
    postcode, at most :data:`MAX_CANDIDATES`, read through the enforcing repository."""
    found: dict[str, dict[str, Any]] = {}
    for pair in _queries(facts):
        if len(found) >= MAX_CANDIDATES:
            break
        sreq = parse_search(
            "Patient", [pair, _NOT_SOURCE], ctx.base, MAX_CANDIDATES + 1, strict=True
        )
        rows: list[Any] = ctx.repo.search("Patient", sreq.criteria, (), MAX_CANDIDATES + 1, None)
        for row in rows[:MAX_CANDIDATES]:
            res_id = str(row[2])
            if res_id not in found and len(found) < MAX_CANDIDATES:
                resource = jsonio.loads(bytes(row[3]))
                if not _is_source_record(resource):
                    found[res_id] = resource
    return found


def _is_source_record(resource: dict[str, Any]) -> bool:
    tags = _dicts((resource.get("meta") or {}).get("tag"))
    return any(
        t.get("system") == RECORD_ROLE_SYSTEM and t.get("code") == ROLE_SOURCE_RECORD for t in tags
    )


# -- scoring -----------------------------------------------------------------------------------


def points(wanted: Facts, other: Facts) -> int:
    """The demographic points (out of 100) on which ``wanted`` and ``other`` agree."""
    agree = {
        "family": bool(wanted.family & other.family),
        "given": bool(wanted.given & other.given),
        "birthDate": wanted.birth_date is not None and wanted.birth_date == other.birth_date,
        "gender": wanted.gender is not None and wanted.gender == other.gender,
        "postcode": bool(wanted.postcodes & other.postcodes),
    }
    return sum(WEIGHTS[field] for field, same in agree.items() if same)


def grade(wanted: Facts, other: Facts) -> tuple[int, str] | None:
    """``(points, grade)`` of a candidate, or None when it is not a match."""
    if wanted.nhs is not None and other.nhs is not None:
        if wanted.nhs == other.nhs:
            return CERTAIN, "certain"
        return None
    score = points(wanted, other)
    if score >= CERTAIN:
        return score, "certain"
    if score >= PROBABLE:
        return score, "probable"
    if score >= POSSIBLE:
        return score, "possible"
    return None


# -- the answer --------------------------------------------------------------------------------


def _entry(ctx: RequestContext, found: Match) -> dict[str, Any]:
    return {
        "fullUrl": f"{ctx.base}/Patient/{found.res_id}",
        "resource": found.resource,
        "search": {
            "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": found.grade}],
            "mode": "match",
            "score": found.points / 100,
        },
    }


def _advice() -> dict[str, Any]:
    issue = Issue(
        "warning",
        "incomplete",
        "The Patient to match has no NHS number, birth date, family name or postcode, so "
        "nothing could be matched",
        (),
        "match-nothing-to-match",
    )
    return {"resource": operation_outcome([issue]), "search": {"mode": "outcome"}}
