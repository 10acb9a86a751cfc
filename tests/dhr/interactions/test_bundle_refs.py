"""Rewriting references (https://hl7.org/fhir/R4/http.html#trules): every ``reference`` however
deep, ``contained`` included, copy on write, the input untouched; finding them once and rewriting
later (the ingest planner's two passes) gives the same body and the same order of lookups."""

from __future__ import annotations

import copy
from typing import Any

from dhr.interactions.bundle_refs import find_references, rewrite_found, walk_references

RESOURCE: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "o1",
    "subject": {"reference": "urn:uuid:p"},
    "performer": [{"reference": "Practitioner/a"}, {"display": "no reference"}],
    "contained": [{"resourceType": "Device", "id": "d", "owner": {"reference": "urn:uuid:o"}}],
    "device": {"reference": "#d"},
    "component": [{"valueString": "reference"}, {"extension": [{"valueReference": {}}]}],
    "note": [{"text": "see urn:uuid:p"}],
}
TARGETS = {"urn:uuid:p": "Patient/123", "urn:uuid:o": "Organization/9"}


def test_every_reference_is_rewritten_and_the_input_is_untouched() -> None:
    before = copy.deepcopy(RESOURCE)
    out = walk_references(RESOURCE, lambda r: TARGETS.get(r, r))
    assert before == RESOURCE
    assert out["subject"] == {"reference": "Patient/123"}
    assert out["contained"][0]["owner"] == {"reference": "Organization/9"}
    assert out["performer"] is RESOURCE["performer"]  # nothing changed there: shared
    assert out["device"] == {"reference": "#d"}
    assert out["note"] == RESOURCE["note"]  # text is not a reference


def test_found_once_and_rewritten_later_is_the_same_walk() -> None:
    walked: list[str] = []
    rewritten: list[str] = []
    expected = walk_references(RESOURCE, lambda r: walked.append(r) or TARGETS.get(r, r))
    found = find_references(RESOURCE)
    got = rewrite_found(RESOURCE, found, lambda r: rewritten.append(r) or TARGETS.get(r, r))
    assert got == expected
    assert rewritten == walked  # the planner's first match decides a compartment: same order
    assert sorted(v for _, v in found) == sorted(
        ["urn:uuid:p", "Practitioner/a", "urn:uuid:o", "#d"]
    )


def test_a_resource_without_references_comes_back_as_a_new_top_level_dict() -> None:
    plain = {"resourceType": "Patient", "id": "p"}
    out = rewrite_found(plain, find_references(plain), lambda r: r + "x")
    assert out == plain
    assert out is not plain
