"""The official FHIR patch test cases, run against the patch engines.

https://hl7.org/fhir/R4/http.html#patch (JSON Patch, RFC 6902) and
https://hl7.org/fhir/R4/fhirpatch.html (FHIRPath Patch). The cases live in fhir-test-cases
(``r4/patch``), which is read from ``../shared`` beside the repository when it is there; without
it these tests skip. The FHIRPath Patch cases are XML and are converted with
:mod:`tests.dhr.patch.fhir_xml`.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from dhr.errors import FhirError
from dhr.patch import fhirpath_patch, jsonpatch
from tests.dhr.patch.fhir_xml import UnsupportedXmlError, resource

CASES = (
    (
        Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "fhir-test-cases"
    ).resolve()
    / "r4"
    / "patch"
)

pytestmark = pytest.mark.slow


def _load_json_cases() -> list[Any]:
    path = CASES / "json-patch-tests.json"
    if not path.is_file():
        return [pytest.param(None, id="absent")]
    cases = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(c, id=c.get("comment", str(i))[:60]) for i, c in enumerate(cases)]


def _load_fhir_cases() -> list[Any]:
    path = CASES / "fhir-patch-tests.xml"
    if not path.is_file():
        return [pytest.param(None, id="absent")]
    root = ET.parse(path).getroot()
    return [pytest.param(c, id=c.get("name", str(i))) for i, c in enumerate(root.iter("case"))]


@pytest.mark.parametrize("case", _load_json_cases())
def test_official_json_patch_case(case: dict[str, Any] | None) -> None:
    if case is None:
        pytest.skip(f"the official test cases are not present at {CASES}")
    if "error" in case:
        with pytest.raises(FhirError) as caught:
            jsonpatch.apply(case["doc"], case["patch"])
        assert caught.value.status in (400, 422)
        return
    assert jsonpatch.apply(case["doc"], case["patch"]) == case["expected"]


def _div_normalised(value: Any) -> Any:
    """XHTML compared without its layout whitespace (the XML and the string differ there)."""
    if isinstance(value, dict):
        return {
            k: re.sub(r"\s+", " ", re.sub(r">\s+<", "><", v)).strip()
            if k == "div" and isinstance(v, str)
            else _div_normalised(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_div_normalised(v) for v in value]
    return value


@pytest.mark.parametrize("case", _load_fhir_cases())
def test_official_fhirpath_patch_case(case: ET.Element | None) -> None:
    if case is None:
        pytest.skip(f"the official test cases are not present at {CASES}")
    try:
        before = resource(_first(case, "input"))
        diff = resource(_first(case, "diff"))
        output = case.find("output")
        expected = resource(_first(case, "output")) if output is not None else None
    except UnsupportedXmlError as exc:
        pytest.skip(f"the case's XML could not be converted to JSON: {exc}")
    if case.find("error") is not None:
        with pytest.raises(FhirError) as caught:
            fhirpath_patch.apply(before, diff)
        assert caught.value.status in (400, 422)
        return
    assert _div_normalised(fhirpath_patch.apply(before, diff)) == _div_normalised(expected)


def _first(case: ET.Element, name: str) -> ET.Element:
    holder = case.find(name)
    assert holder is not None
    children = [c for c in holder if isinstance(c.tag, str)]
    return children[0]
