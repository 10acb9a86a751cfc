"""Parsing search query strings into typed requests (pure; no database).

https://hl7.org/fhir/R4/search.html: #combining (AND/OR), #escaping, #prefix, #modifiers,
#chaining, #has, #sort, #count, #total.
"""

from __future__ import annotations

import pytest

from dhr.errors import FhirError
from dhr.search.params import Chain, Filter, Has, parse_search
from dhr.search.sql.values import (
    Composite,
    Missing,
    Quantity,
    Range,
    Ref,
    Text,
    Token,
    Uri,
    split,
    unescape,
)

BASE = "https://dhr.example/fhir"


def parse(res_type: str, query: str, strict: bool = False):  # type: ignore[no-untyped-def]
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
    return parse_search(res_type, pairs, BASE, 1000, strict)  # type: ignore[arg-type]


def one(res_type: str, query: str) -> Filter:
    criteria = parse(res_type, query).criteria
    assert len(criteria) == 1
    assert isinstance(criteria[0], Filter)
    return criteria[0]


def bad(res_type: str, query: str) -> FhirError:
    with pytest.raises(FhirError) as info:
        parse(res_type, query)
    assert info.value.status == 400
    return info.value


def test_commas_are_or_and_repeated_parameters_are_and() -> None:
    req = parse("Patient", "given=eve,ann&given=bob")
    assert len(req.criteria) == 2
    first = req.criteria[0]
    assert isinstance(first, Filter)
    assert first.values == (Text("eve"), Text("ann"))


def test_escaped_separators_are_part_of_the_value() -> None:
    assert split(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert unescape(r"a\,b\|c\$d\\e") == "a,b|c$d\\e"
    f = one("Patient", r"family=O\,Brien")
    assert f.values == (Text("o,brien"),)
    t = one("Observation", r"code=http://x\|y|a\$b")
    assert t.values == (Token("http://x|y", "a$b"),)


def test_string_values_are_normalised_except_exact() -> None:
    assert one("Patient", "name=P%C3%A9ter".replace("%C3%A9", "é")).values == (Text("peter"),)
    exact = one("Patient", "name:exact=Péter")
    assert exact.modifier == "exact"
    assert exact.values == (Text("Péter"),)


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("8867-4", Token(None, "8867-4")),
        ("http://loinc.org|8867-4", Token("http://loinc.org", "8867-4")),
        ("|8867-4", Token("", "8867-4")),
        ("http://loinc.org|", Token("http://loinc.org", None)),
    ],
)
def test_token_forms(value: str, token: Token) -> None:
    assert one("Observation", f"code={value}").values == (token,)


def test_token_text_and_not_modifiers() -> None:
    assert one("Observation", "code:text=Heart Rate").values == (Text("heart rate"),)
    assert one("Patient", "gender:not=male").modifier == "not"


def test_prefixes_and_precision_ranges_on_numbers_and_dates() -> None:
    (r,) = one("RiskAssessment", "probability=gt0.8").values
    assert isinstance(r, Range)
    assert r.prefix == "gt"
    assert r.value == pytest.approx(0.8)
    (plain,) = one("RiskAssessment", "probability=100").values
    assert isinstance(plain, Range)
    assert (plain.prefix, plain.low, plain.high) == ("eq", 99.5, 100.5)
    (d,) = one("Patient", "birthdate=ge2020-03").values
    assert isinstance(d, Range)
    assert d.prefix == "ge"
    assert d.high - d.low == 31 * 86_400_000_000


def test_quantity_forms() -> None:
    (q,) = one("Observation", "value-quantity=le5.4|http://unitsofmeasure.org|mg").values
    assert isinstance(q, Quantity)
    assert (q.range.prefix, q.system, q.code) == ("le", "http://unitsofmeasure.org", "mg")
    (q2,) = one("Observation", "value-quantity=5.4||mg").values
    assert isinstance(q2, Quantity)
    assert (q2.system, q2.code) == (None, "mg")


def test_reference_forms() -> None:
    assert one("Observation", "subject=Patient/23").values == (Ref("Patient", "23"),)
    assert one("Observation", "subject=23").values == (Ref(None, "23"),)
    assert one("Observation", "subject:Patient=23").values == (Ref("Patient", "23"),)
    assert one("Observation", f"subject={BASE}/Patient/23").values == (Ref("Patient", "23"),)
    other = "http://elsewhere.org/fhir/Patient/23"
    assert one("Observation", f"subject={other}").values == (Ref(None, None, other),)
    ident = one("Observation", "subject:identifier=http://nhs|123")
    assert ident.values == (Token("http://nhs", "123"),)


def test_uri_and_missing() -> None:
    assert one("ValueSet", "url:below=http://acme.org/fhir").values == (
        Uri("http://acme.org/fhir"),
    )
    assert one("Patient", "gender:missing=true").values == (Missing(True),)


def test_composite_components_are_parsed_by_their_own_types() -> None:
    (c,) = one("Observation", "code-value-quantity=http://loinc.org|8480-6$gt100").values
    assert isinstance(c, Composite)
    (_, code), (_, qty) = c.parts
    assert code == Token("http://loinc.org", "8480-6")
    assert isinstance(qty, Quantity)
    assert qty.range.prefix == "gt"


def test_chains_search_every_target_type_defining_the_parameter() -> None:
    (chain,) = parse("Observation", "subject.name=peter").criteria
    assert isinstance(chain, Chain)
    # Observation.subject may be a Device, Group, Location or Patient; two of them define name.
    assert {t for t, _ in chain.inner} == {"Location", "Patient"}
    (typed,) = parse("Observation", "subject:Patient.organization.name=acme").criteria
    assert isinstance(typed, Chain)
    assert [t for t, _ in typed.inner] == ["Patient"]
    assert isinstance(typed.inner[0][1], Chain)


def test_reverse_chains_nest() -> None:
    (has,) = parse("Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=x").criteria
    assert isinstance(has, Has)
    assert has.source == "Observation"
    assert isinstance(has.inner, Has)
    assert has.inner.source == "AuditEvent"


def test_unknown_parameters_are_ignored_unless_strict() -> None:
    req = parse("Patient", "nonsense=1&name=x")
    assert req.ignored == ("nonsense",)
    assert req.used == (("name", "x"),)
    with pytest.raises(FhirError):
        parse("Patient", "nonsense=1", strict=True)


def test_result_parameters() -> None:
    req = parse("Patient", "_count=10&_sort=-birthdate,_id&_total=accurate")
    assert req.count == 10
    assert [(k.param.code, k.descending) for k in req.sort] == [("birthdate", True), ("_id", False)]
    assert req.total == "accurate"


@pytest.mark.parametrize(
    "query",
    [
        "birthdate=2020-13-45",
        "birthdate=yesterday",
        "birthdate=xx2020",
        "gender:exact=male",
        "name:below=x",
        "name.family=x",
        "general-practitioner.nonsense=x",
        "_count=-1",
        "_count=1001",
        "_count=ten",
        "_total=maybe",
        "_sort=nonsense",
        "gender:missing=maybe",
        "_id='; DROP TABLE resource;--",
        "identifier=a|b|c",
        "_has:Observation:patient=x",
        "_has:Nothing:patient:code=x",
        "organization=Observation/1",
        "identifier:of-type=http://t|MR|123",
        "name=a,,b",
    ],
)
def test_malformed_input_is_a_400(query: str) -> None:
    bad("Patient", query)


def test_observation_specific_errors() -> None:
    bad("Observation", "code-value-quantity=http://loinc.org|8480-6")  # one component missing
    bad("Observation", "value-quantity=abc")
    bad("Observation", "code:in=http://vs")
    bad("Observation", "subject:Medication=1")
