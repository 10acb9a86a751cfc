"""Search by parameter type, modifier and prefix over real HTTP, as the spec words them.

https://hl7.org/fhir/R4/search.html (#string, #token, #date, #number, #quantity, #reference,
#uri, #composite, #id, #lastUpdated, #modifiers, #prefix, #chaining, #has) and
https://hl7.org/fhir/R4/http.html#search (``POST [type]/_search``).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.helpers import created_id, observation, patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "searchset"
    return {e["resource"]["id"] for e in body.get("entry", []) if e["search"]["mode"] == "match"}


def make(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post(body["resourceType"], json=body)
    assert response.status_code == 201, response.text
    return created_id(response)


def test_string_is_case_and_accent_insensitive_starts_with(client: httpx.Client) -> None:
    peter = make(client, patient(name=[{"family": "Péterson", "given": ["Ann"]}]))
    make(client, patient(name=[{"family": "Smith"}]))
    assert ids(client.get("Patient?name=peter")) == {peter}
    assert ids(client.get("Patient?family=PETERS")) == {peter}
    assert ids(client.get("Patient?family=eterson")) == set()
    assert ids(client.get("Patient?family:contains=eterso")) == {peter}
    assert ids(client.get("Patient?family:exact=Péterson")) == {peter}
    assert ids(client.get("Patient?family:exact=peterson")) == set()


def test_string_values_with_like_wildcards_match_literally(client: httpx.Client) -> None:
    make(client, patient(name=[{"family": "Smith"}]))
    assert ids(client.get("Patient", params={"family": "%"})) == set()
    assert ids(client.get("Patient", params={"family": "S_ith"})) == set()


def test_token_code_system_and_no_system_forms(client: httpx.Client) -> None:
    pid = make(client, patient())
    loinc = make(client, observation(f"Patient/{pid}"))
    local = make(client, observation(f"Patient/{pid}", code={"coding": [{"code": "8867-4"}]}))
    assert ids(client.get("Observation?code=8867-4")) == {loinc, local}
    assert ids(client.get(f"Observation?code={LOINC}|8867-4")) == {loinc}
    assert ids(client.get("Observation?code=|8867-4")) == {local}
    assert ids(client.get(f"Observation?code={LOINC}|")) == {loinc}


def test_token_not_includes_resources_without_the_element(client: httpx.Client) -> None:
    female = make(client, patient(gender="female"))
    male = make(client, patient(gender="male"))
    unknown = make(client, {"resourceType": "Patient"})
    assert ids(client.get("Patient?gender:not=male")) == {female, unknown}
    assert ids(client.get("Patient?gender=male,female")) == {female, male}


def test_token_text_is_starts_with_on_the_display(client: httpx.Client) -> None:
    pid = make(client, patient())
    text = {"coding": [{"system": LOINC, "code": "8867-4"}], "text": "Heart rate"}
    oid = make(client, observation(f"Patient/{pid}", code=text))
    assert ids(client.get("Observation?code:text=heart")) == {oid}
    assert ids(client.get("Observation?code:text=rate")) == set()


def test_missing_true_and_false(client: httpx.Client) -> None:
    with_gender = make(client, patient())
    without = make(client, {"resourceType": "Patient", "active": True})
    assert ids(client.get("Patient?gender:missing=true")) == {without}
    assert ids(client.get("Patient?gender:missing=false")) == {with_gender}
    assert ids(client.get("Patient?_id:missing=true")) == set()


def test_date_precision_and_prefixes(client: httpx.Client) -> None:
    early = make(client, patient(birthDate="2020-01-15"))
    late = make(client, patient(birthDate="2020-12-31"))
    other = make(client, patient(birthDate="2021-06-01"))
    assert ids(client.get("Patient?birthdate=2020")) == {early, late}
    assert ids(client.get("Patient?birthdate=eq2020-01")) == {early}
    assert ids(client.get("Patient?birthdate=ne2020")) == {other}
    assert ids(client.get("Patient?birthdate=gt2020")) == {other}
    assert ids(client.get("Patient?birthdate=lt2020-06")) == {early}
    assert ids(client.get("Patient?birthdate=ge2020-12-31")) == {late, other}
    assert ids(client.get("Patient?birthdate=le2020-01-15")) == {early}
    assert ids(client.get("Patient?birthdate=sa2020")) == {other}
    assert ids(client.get("Patient?birthdate=eb2021")) == {early, late}
    both = client.get("Patient?birthdate=ge2020-06&birthdate=lt2021")
    assert ids(both) == {late}


def test_date_with_time_zone_and_ap(client: httpx.Client) -> None:
    pid = make(client, patient())
    oid = make(client, observation(f"Patient/{pid}", effectiveDateTime="2021-03-04T10:00:00Z"))
    assert ids(client.get("Observation", params={"date": "2021-03-04T11:00:00+01:00"})) == {oid}
    assert ids(client.get("Observation?date=ap2021-03")) == {oid}
    assert ids(client.get("Observation?date=ap1990")) == set()


def test_number_precision_and_prefixes(client: httpx.Client) -> None:
    def risk(probability: float) -> str:
        return make(
            client,
            {
                "resourceType": "RiskAssessment",
                "status": "final",
                "subject": {"reference": "Patient/p"},
                "prediction": [{"probabilityDecimal": probability}],
            },
        )

    low, mid, high = risk(0.2), risk(0.52), risk(0.9)
    assert ids(client.get("RiskAssessment?probability=0.5")) == {mid}
    assert ids(client.get("RiskAssessment?probability=0.50")) == set()
    assert ids(client.get("RiskAssessment?probability=gt0.5")) == {mid, high}
    assert ids(client.get("RiskAssessment?probability=le0.2")) == {low}
    assert ids(client.get("RiskAssessment?probability=ap0.5")) == {mid}


def test_quantity_forms(client: httpx.Client) -> None:
    pid = make(client, patient())
    bpm = make(client, observation(f"Patient/{pid}"))  # 72 /min
    mg = make(
        client,
        observation(
            f"Patient/{pid}",
            valueQuantity={"value": 5.4, "unit": "mg", "system": UCUM, "code": "mg"},
        ),
    )
    assert ids(client.get(f"Observation?value-quantity=5.4|{UCUM}|mg")) == {mg}
    assert ids(client.get("Observation?value-quantity=5.4||mg")) == {mg}
    assert ids(client.get("Observation?value-quantity=gt5")) == {bpm, mg}
    assert ids(client.get(f"Observation?value-quantity=lt100|{UCUM}|/min")) == {bpm}
    assert ids(client.get("Observation?value-quantity=72||mg")) == set()


def test_reference_forms(client: httpx.Client) -> None:
    pid = make(client, patient())
    other = make(client, patient())
    oid = make(client, observation(f"Patient/{pid}"))
    make(client, observation(f"Patient/{other}"))
    base = str(client.base_url).rstrip("/")
    assert ids(client.get(f"Observation?subject=Patient/{pid}")) == {oid}
    assert ids(client.get(f"Observation?subject={pid}")) == {oid}
    assert ids(client.get(f"Observation?subject:Patient={pid}")) == {oid}
    assert ids(client.get(f"Observation?patient={base}/Patient/{pid}")) == {oid}
    assert ids(client.get(f"Observation?subject:Group={pid}")) == set()


def test_reference_identifier_modifier(client: httpx.Client) -> None:
    pid = make(client, patient())
    ref = {"identifier": {"system": "https://nhs.example/id", "value": "943"}}
    body = observation(f"Patient/{pid}")
    body["subject"] = ref
    oid = make(client, body)
    found = client.get("Observation?subject:identifier=https://nhs.example/id|943")
    assert ids(found) == {oid}


def test_uri_equality_below_and_above(client: httpx.Client) -> None:
    def vs(url: str) -> str:
        return make(client, {"resourceType": "ValueSet", "status": "active", "url": url})

    root = vs("http://acme.org/fhir/ValueSet")
    child = vs("http://acme.org/fhir/ValueSet/123")
    assert ids(client.get("ValueSet?url=http://acme.org/fhir/ValueSet")) == {root}
    assert ids(client.get("ValueSet?url:below=http://acme.org/fhir")) == {root, child}
    above = client.get("ValueSet?url:above=http://acme.org/fhir/ValueSet/123/_history/5")
    assert ids(above) == {root, child}


def measured(client: httpx.Client, pid: str, code: str, value: float, unit: str) -> str:
    """A new Observation of ``pid``: LOINC ``code`` with a UCUM quantity."""
    return make(
        client,
        observation(
            f"Patient/{pid}",
            code={"coding": [{"system": LOINC, "code": code}]},
            valueQuantity={"value": value, "system": UCUM, "code": unit},
        ),
    )


def test_composite_components_match_within_one_element(client: httpx.Client) -> None:
    pid = make(client, patient())
    bp = measured(client, pid, "8480-6", 120, "mm[Hg]")
    measured(client, pid, "8480-6", 90, "mm[Hg]")
    query = f"Observation?code-value-quantity={LOINC}|8480-6$gt100"
    assert ids(client.get(query)) == {bp}


def test_combo_parameters_find_the_observation_and_its_components(
    client: httpx.Client,
) -> None:
    # https://hl7.org/fhir/R4/observation.html#search: combo-code is code | component.code.
    pid = make(client, patient())
    panel = make(
        client,
        observation(
            f"Patient/{pid}",
            code={"coding": [{"system": LOINC, "code": "85354-9"}]},
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                    "valueQuantity": {"value": 120, "system": UCUM, "code": "mm[Hg]"},
                }
            ],
        ),
    )
    weight = measured(client, pid, "29463-7", 70, "kg")
    assert ids(client.get(f"Observation?combo-code={LOINC}|8480-6")) == {panel}
    assert ids(client.get(f"Observation?combo-code={LOINC}|85354-9")) == {panel}
    assert ids(client.get(f"Observation?combo-code={LOINC}|29463-7")) == {weight}
    assert ids(client.get("Observation?combo-value-quantity=gt100")) == {panel}
    query = f"Observation?combo-code-value-quantity={LOINC}|8480-6$gt100"
    assert ids(client.get(query)) == {panel}
    assert ids(client.get(f"Observation?combo-code-value-quantity={LOINC}|85354-9$gt100")) == set()
    ascending = client.get("Observation?_sort=combo-value-quantity").json()["entry"]
    assert [e["resource"]["id"] for e in ascending] == [weight, panel]
    descending = client.get("Observation?_sort=-combo-code").json()["entry"]
    assert [e["resource"]["id"] for e in descending] == [panel, weight]  # 85354-9 > 29463-7


def test_id_last_updated_and_tag(client: httpx.Client) -> None:
    tag = {"system": "http://example.org/tags", "code": "vip"}
    tagged = make(client, patient(meta={"tag": [tag]}))
    plain = make(client, patient())
    assert ids(client.get(f"Patient?_id={tagged},{plain}")) == {tagged, plain}
    assert ids(client.get("Patient?_lastUpdated=gt2000-01-01")) == {tagged, plain}
    assert ids(client.get("Patient?_lastUpdated=lt2000-01-01")) == set()
    assert ids(client.get("Patient?_tag=http://example.org/tags|vip")) == {tagged}


def test_deleted_resources_are_not_found(client: httpx.Client) -> None:
    pid = make(client, patient())
    client.delete(f"Patient/{pid}")
    assert ids(client.get("Patient")) == set()


def test_chained_and_typed_chained_search(client: httpx.Client) -> None:
    peter = make(client, patient(name=[{"family": "Peters"}]))
    jane = make(client, patient(name=[{"family": "Jones"}]))
    about_peter = make(client, observation(f"Patient/{peter}"))
    make(client, observation(f"Patient/{jane}"))
    assert ids(client.get("Observation?subject.name=peter")) == {about_peter}
    assert ids(client.get("Observation?subject:Patient.name=peter")) == {about_peter}
    about_jane = ids(client.get("Observation?patient.family=jones"))
    assert len(about_jane) == 1
    assert ids(client.get("Observation?patient.family=jones,peters")) == about_jane | {about_peter}
    assert ids(client.get("Observation?subject:Patient.name=nobody")) == set()


def test_reverse_chaining_with_has(client: httpx.Client) -> None:
    with_obs = make(client, patient())
    make(client, patient())
    make(client, observation(f"Patient/{with_obs}"))
    assert ids(client.get("Patient?_has:Observation:patient:code=8867-4")) == {with_obs}
    assert ids(client.get("Patient?_has:Observation:patient:code=1234-5")) == set()


def test_post_search_merges_the_form_body_with_the_query(client: httpx.Client) -> None:
    female = make(client, patient(gender="female", birthDate="1990-01-01"))
    make(client, patient(gender="male", birthDate="1990-01-01"))
    response = client.post(
        "Patient/_search?birthdate=1990",
        content="gender=female",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert ids(response) == {female}
    self_link = response.json()["link"][0]["url"]
    assert "gender=female" in self_link
    assert "birthdate=1990" in self_link
