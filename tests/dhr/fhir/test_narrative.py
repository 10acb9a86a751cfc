"""Narratives: https://hl7.org/fhir/R4/narrative.html#xhtml (txt-1).

"The XHTML content SHALL NOT contain a head, a body, external stylesheet references, scripts,
forms, base/link/xlink, frames, iframes and objects": such a resource is a 400 naming the
narrative, and nothing is stored. The formatting the spec allows (tables, lists, links,
images, style attributes) is accepted as sent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dhr.errors import FhirError
from dhr.fhir.narrative import check_narratives, narrative_problem
from tests.helpers import assert_outcome, created_id, patient

XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def div(inner: str) -> str:
    return f"<div {XHTML}>{inner}</div>"


def with_text(body: dict[str, Any], inner: str) -> dict[str, Any]:
    return {**body, "text": {"status": "generated", "div": div(inner)}}


ACCEPTED = [
    "<p>Jane Smith, born <b>2 April 1980</b></p>",
    '<table class="grid"><tr><th scope="col">Code</th><td colspan="2">E11</td></tr></table>',
    '<ul><li><a href="http://example.org/x">link</a></li><li><a href="#p1">here</a></li></ul>',
    '<img src="data:image/png;base64,iVBORw0KGgo=" alt="scan"/> <span style="color: red">!</span>',
    '<a name="top"/><h3 style="background-image: url(tbl_bck1.png)">Official styling</h3>',
    '<p><a href="mailto:gp@example.nhs.uk">mail</a> <a href="Patient/123">relative</a></p>',
    "",  # an empty div: txt-2 is not enforced (official R4 examples have some)
]

REFUSED = [
    ("<script>alert(1)</script>", "<script>"),
    ('<p onclick="alert(1)">x</p>', "onclick"),
    ('<img src="x" onerror="alert(1)"/>', "onerror"),
    ('<a href="javascript:alert(1)">x</a>', "javascript"),
    ('<a href="&#106;avascript:alert(1)">x</a>', "javascript"),
    ('<a href=" java\tscript:alert(1)">x</a>', "javascript"),
    ('<a href="JAVASCRIPT:alert(1)">x</a>', "javascript"),
    ('<img src="data:text/html;base64,PHNjcmlwdD4="/>', "data"),
    ('<iframe src="http://evil.example"></iframe>', "<iframe>"),
    ('<object data="x.swf"></object>', "<object>"),
    ('<form action="http://evil.example"><input name="pin"/></form>', "<form>"),
    ('<link rel="stylesheet" href="http://evil.example/x.css"/>', "<link>"),
    ('<base href="http://evil.example/"/>', "<base>"),
    ('<p style="width: expression(alert(1))">x</p>', "style"),
    ('<p style="background: url(javascript:alert(1))">x</p>', "style"),
    ("<svg><script>alert(1)</script></svg>", "<svg>"),
    ('<p formaction="x">x</p>', "formaction"),
]


@pytest.mark.parametrize("inner", ACCEPTED)
def test_the_formatting_the_spec_allows_is_accepted(inner: str) -> None:
    assert narrative_problem(div(inner)) is None


@pytest.mark.parametrize(("inner", "named"), REFUSED)
def test_active_content_is_refused_and_named(inner: str, named: str) -> None:
    problem = narrative_problem(div(inner))
    assert problem is not None
    assert named in problem, problem


@pytest.mark.parametrize(
    "narrative",
    [
        "<p>no div</p>",
        "text before <div>x</div>",
        f"<html><body><div {XHTML}>x</div></body></html>",
        f"<?xml version='1.0'?><div {XHTML}>x</div>",
    ],
)
def test_the_narrative_is_one_div(narrative: str) -> None:
    assert narrative_problem(narrative) is not None


def test_narratives_of_contained_and_bundled_resources_are_checked_too() -> None:
    bad = with_text({"resourceType": "Practitioner", "id": "pr"}, "<script>x</script>")
    with pytest.raises(FhirError) as contained:
        check_narratives("Patient", {**patient(), "contained": [bad]})
    assert contained.value.expression == ("Patient.contained[0].text.div",)
    bundle = {"resourceType": "Bundle", "entry": [{"resource": patient()}, {"resource": bad}]}
    with pytest.raises(FhirError) as bundled:
        check_narratives("Bundle", bundle)
    assert bundled.value.expression == ("Bundle.entry[1].resource.text.div",)
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "a", "part": [{"name": "b", "resource": bad}]}],
    }
    with pytest.raises(FhirError) as part:
        check_narratives("Parameters", parameters)
    assert part.value.expression == ("Parameters.parameter[0].part[0].resource.text.div",)


def test_a_resource_with_a_script_in_its_narrative_is_400_and_not_stored(
    client: httpx.Client,
) -> None:
    refused = client.post("Patient", json=with_text(patient(), "<script>steal()</script>"))
    outcome = assert_outcome(refused, 400, expression="Patient.text.div")
    assert "<script>" in outcome["issue"][0]["diagnostics"]
    assert client.get("Patient?_count=1&_total=accurate").json()["total"] == 0
    fine = client.post("Patient", json=with_text(patient(), "<p>Jane <b>Smith</b></p>"))
    assert fine.status_code == 201, fine.text
    stored = client.get(f"Patient/{created_id(fine)}").json()
    assert stored["text"]["div"] == div("<p>Jane <b>Smith</b></p>")


def test_a_transaction_with_one_unsafe_narrative_writes_nothing(client: httpx.Client) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": with_text(patient(), '<a href="javascript:x()">x</a>'),
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    assert_outcome(client.post("", json=bundle), 400)
    assert client.get("Patient?_count=1&_total=accurate").json()["total"] == 0
