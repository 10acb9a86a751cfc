"""The unified-record demo (:mod:`dhr.demo_record`): two simulated GP systems' Bundles.

ARCHITECTURE.md "The unified record". The Bundles are FHIR R4 transactions
(https://hl7.org/fhir/R4/http.html#transaction) with ``urn:uuid`` references; NHS numbers pass
Modulus 11 (https://www.datadictionary.nhs.uk/attributes/nhs_number.html). Seeded through a live
server, each NHS number ends in one master Patient whose ``$everything``
(https://hl7.org/fhir/R4/patient-operation-everything.html) holds both sources' items, with
Provenance, and seeding again changes nothing.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from dhr.api.dispatch import Services
from dhr.demo import load_demo
from dhr.demo_record import (
    CONFLICT,
    EMIS,
    MOVED,
    NO_NHS,
    PERSONS,
    TPP,
    demo_bundles,
    demo_sources,
    nhs_test_numbers,
    seed_unified_record,
)
from dhr.fhir.types import model_class
from dhr.record.vocab import NHS_NUMBER_SYSTEM, ODS_CODE_SYSTEM, RECORD_ROLE_SYSTEM, source_uri
from tests.conftest import LiveServer
from tests.dhr.test_demo import nhs_number_is_valid, references

JSON = dict[str, Any]
ITEM_TYPES = {"Condition", "Observation", "MedicationRequest", "Immunization", "Encounter"}


def resources(bundle: JSON, rtype: str | None = None) -> list[JSON]:
    found = [e["resource"] for e in bundle["entry"]]
    return [r for r in found if rtype is None or r["resourceType"] == rtype]


def nhs_of(patient: JSON) -> str | None:
    return next(
        (i["value"] for i in patient["identifier"] if i["system"] == NHS_NUMBER_SYSTEM), None
    )


def patients_by_nhs(bundle: JSON) -> dict[str, JSON]:
    return {n: p for p in resources(bundle, "Patient") if (n := nhs_of(p)) is not None}


def items_by_patient(bundle: JSON) -> dict[str, Counter[str]]:
    """fullUrl of each Patient -> the types of the items that reference it."""
    out: dict[str, Counter[str]] = defaultdict(Counter)
    for r in resources(bundle):
        subject = r.get("subject") or r.get("patient")
        if isinstance(subject, dict):
            out[subject["reference"]][r["resourceType"]] += 1
    return out


# -- generation -----------------------------------------------------------------------------


def test_generation_is_deterministic() -> None:
    first, second = demo_bundles(), demo_bundles()
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert list(first) == [s.source_id for s in demo_sources()] == ["demo-emis", "demo-tpp"]


def test_test_numbers_skip_stems_without_a_valid_check_digit() -> None:
    numbers = nhs_test_numbers(14)
    assert numbers[:3] == ["9990000018", "9990000026", "9990000034"]
    assert not any(n.startswith("999000014") for n in numbers)  # 11 - remainder would be 10
    assert all(nhs_number_is_valid(n) for n in numbers)
    assert nhs_test_numbers(1, start=943476591) == ["9434765919"]  # an NHS test number


def test_every_nhs_number_but_the_absent_one_is_valid_modulus_11() -> None:
    numbers = [p.nhs for p in PERSONS if p.nhs is not None]
    assert [p for p in PERSONS if p.nhs is None] == [NO_NHS]
    assert len(set(numbers)) == len(numbers)
    for bundle in demo_bundles().values():
        for patient in resources(bundle, "Patient"):
            nhs = nhs_of(patient)
            if nhs is None:
                assert patient["name"][0]["family"] == NO_NHS.family
                continue
            assert nhs.startswith("999"), nhs
            assert nhs_number_is_valid(nhs), nhs


@pytest.mark.parametrize("source", [EMIS, TPP], ids=lambda s: s.source_id)
def test_each_bundle_is_a_coherent_transaction_from_its_source(source: Any) -> None:
    bundle = demo_bundles()[source.source_id]
    assert bundle["type"] == "transaction"
    full_urls = {e["fullUrl"] for e in bundle["entry"]}
    assert len(full_urls) == len(bundle["entry"])
    for entry in bundle["entry"]:
        r = entry["resource"]
        assert entry["request"] == {"method": "POST", "url": r["resourceType"]}
        assert entry["fullUrl"].startswith("urn:uuid:")
        own = [i["value"] for i in r["identifier"] if i["system"] == source.identifier_system]
        assert own == [r["id"]]  # the source's own id, also as its own identifier
        assert re.fullmatch(r"\d{12}" if source.numeric_ids else r"[0-9A-F-]{36}", r["id"])
        assert all(ref in full_urls for ref in references(r)), r
        model_class(r["resourceType"]).model_validate(r)  # valid FHIR R4 (fhir.resources)
    orgs = resources(bundle, "Organization")
    assert [o["identifier"] for o in orgs] == [
        [
            {"system": ODS_CODE_SYSTEM, "value": source.ods_code},
            {"system": source.identifier_system, "value": orgs[0]["id"]},
        ]
    ]
    assert len(resources(bundle, "Practitioner")) == 1
    patients = resources(bundle, "Patient")
    assert len(patients) == 8
    items = items_by_patient(bundle)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            assert set(items[entry["fullUrl"]]) >= ITEM_TYPES, items[entry["fullUrl"]]


def test_overlaps_conflict_move_and_missing_nhs_number_are_present() -> None:
    bundles = demo_bundles()
    emis, tpp = patients_by_nhs(bundles["demo-emis"]), patients_by_nhs(bundles["demo-tpp"])
    both = set(emis) & set(tpp)
    assert len(both) >= 3
    same = {"name", "gender", "address"}
    for nhs in both:
        assert {k: emis[nhs][k] for k in same} == {k: tpp[nhs][k] for k in same}
    differing = {n for n in both if emis[n]["birthDate"] != tpp[n]["birthDate"]}
    assert differing == {CONFLICT.nhs}
    assert len(both - differing) >= 3
    # The move: registered now at the SystmOne practice, older data at the EMIS practice.
    tpp_org = next(
        e["fullUrl"] for e in bundles["demo-tpp"]["entry"] if "Organization" in e["request"]["url"]
    )
    moved_tpp, moved_emis = tpp[str(MOVED.nhs)], emis[str(MOVED.nhs)]
    assert moved_tpp["managingOrganization"] == {"reference": tpp_org}
    assert {"reference": tpp_org} in moved_tpp["generalPractitioner"]
    assert "generalPractitioner" not in moved_emis

    emis_url = next(
        e["fullUrl"] for e in bundles["demo-emis"]["entry"] if e["resource"] is moved_emis
    )
    tpp_url = next(e["fullUrl"] for e in bundles["demo-tpp"]["entry"] if e["resource"] is moved_tpp)
    old = [
        r["period"]["start"]
        for r in resources(bundles["demo-emis"], "Encounter")
        if r["subject"]["reference"] == emis_url
    ]
    new = [
        r["period"]["start"]
        for r in resources(bundles["demo-tpp"], "Encounter")
        if r["subject"]["reference"] == tpp_url
    ]
    assert old
    assert new
    assert max(old) < min(new)
    # The missing NHS number: an EMIS patient only.
    absent = [p for p in resources(bundles["demo-emis"], "Patient") if nhs_of(p) is None]
    assert len(absent) == 1
    assert not [p for p in resources(bundles["demo-tpp"], "Patient") if nhs_of(p) is None]


# -- seeding through a live server ------------------------------------------------------------


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM resource_version")).scalar_one())


def test_seeding_twice_gives_one_master_per_nhs_number_with_both_sources_data(
    server: LiveServer, engine: Engine, client: httpx.Client
) -> None:
    services = Services(server.settings, engine)
    first: list[str] = []
    seed_unified_record(services, first)
    before = versions(engine)
    again: list[str] = []
    seed_unified_record(services, again)
    assert versions(engine) == before  # the re-sends were no-ops
    assert "created" not in "\n".join(again)
    for source in demo_sources():
        assert any(line.startswith(f"  {source.source_id}: ") for line in first)

    role = f"{RECORD_ROLE_SYSTEM}|master"
    masters = client.get("Patient", params={"_tag": role, "_count": "100"}).json()
    numbers = [nhs_of(e["resource"]) for e in masters["entry"]]
    assert sorted(numbers) == sorted(str(p.nhs) for p in PERSONS if p.nhs)  # one each
    both = [p for p in PERSONS if len(p.sources) == 2]
    for person in both:
        found = client.get(
            "Patient", params={"identifier": f"{NHS_NUMBER_SYSTEM}|{person.nhs}", "_tag": role}
        ).json()["entry"]
        assert len(found) == 1
        master = found[0]["resource"]["id"]
        everything = client.get(f"Patient/{master}/$everything", params={"_count": "500"})
        assert everything.status_code == 200, everything.text
        got = [e["resource"] for e in everything.json()["entry"]]
        by_source = Counter(
            (r["resourceType"], r.get("meta", {}).get("source"))
            for r in got
            if r["resourceType"] in ITEM_TYPES
        )
        for source in demo_sources():
            for rtype in ITEM_TYPES:
                assert by_source[(rtype, source_uri(source.source_id))] >= 1, (rtype, by_source)
        provenance = [r for r in got if r["resourceType"] == "Provenance"]
        assert {r["meta"]["source"] for r in provenance} == {
            source_uri(s.source_id) for s in demo_sources()
        }
    no_nhs = client.get("Patient", params={"family": NO_NHS.family}).json()["entry"]
    assert len(no_nhs) == 1


def test_the_printed_token_and_everything_commands_work(server: LiveServer, engine: Engine) -> None:
    lines: list[str] = []
    seed_unified_record(Services(server.settings, engine), lines)
    token_line = next(x for x in lines if "dhr token" in x)
    command = shlex.split(re.search(r"\$\((.*)\)", token_line).group(1))  # type: ignore[union-attr]
    env = {"DHR_BASE_URL": server.base, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "dhr.cli", *command[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    headers = {"Authorization": f"Bearer {done.stdout.strip()}"}
    everything = next(x for x in lines if "$everything" in x)
    url = re.search(r"'(http[^']+)'", everything).group(1)  # type: ignore[union-attr]
    answer = httpx.get(url, headers=headers, params={"_count": "500"}, timeout=30)
    assert answer.status_code == 200, answer.text
    sources = {e["resource"].get("meta", {}).get("source") for e in answer.json()["entry"]}
    assert {source_uri(EMIS.source_id), source_uri(TPP.source_id)} <= sources
    assert str(MOVED.nhs) in everything or str(MOVED.nhs) in "\n".join(lines)


def test_the_demo_start_up_text_names_both_sources_and_an_nhs_number(
    server: LiveServer, engine: Engine
) -> None:
    load_demo(server.settings, engine)
    before = versions(engine)
    message = load_demo(server.settings, engine)  # the second start adds nothing
    assert versions(engine) == before
    for source in demo_sources():
        assert f"{source.source_id}: " in message
        assert source.ods_code in message
    assert f"NHS {MOVED.nhs}" in message
    assert "$everything" in message
