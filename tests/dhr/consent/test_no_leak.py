"""No path through the FHIR API shows more, or less, than the consent decision permits.

ARCHITECTURE.md "The policy layer": the decision compiles into every statement that returns
resources (dhr.enforce), so the pages are full and the totals true. Hypothesis builds small
worlds (patients, care relationships, Consents from a catalogue, security labels, opt-outs,
break-glass declarations) and a requester; for every resource the expected visibility is
computed in Python by ``consent.pdp.decide`` from the same world. Every path must agree with it:
read and vread (https://hl7.org/fhir/R4/http.html#read), search by type, ``_id`` and
``patient=`` (https://hl7.org/fhir/R4/search.html), ``_count=1`` paging, ``_total=accurate`` and
``_summary=count``, ``_include`` and ``_revinclude``, a chain and ``_has``, instance and type
history, ``Patient/[id]/$everything`` and the GET entries of a batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from consent.model import DataItem, Facts, Label, Requester
from consent.pdp import decide
from consent.provisions import parse_consent
from dhr.record.arrangement import load_default, purposes_for
from tests.conftest import LiveServer
from tests.dhr.consent.conftest import (
    ELSEWHERE,
    GP,
    HOSPITAL,
    MH,
    NHS_NUMBERS,
    REGISTRY,
    World,
    consent_body,
    reset,
)
from tests.dhr.consent.test_truth_table import CONSENTS
from tests.helpers import BackendClient

NATIONAL = "X24"
LOINC = "http://loinc.org|8867-4"
SUBJECT = "dr-hypothesis"
ORGS = (GP, HOSPITAL, ELSEWHERE)
COMPARTMENT = ("Patient", "Observation", "Encounter", "Consent")
PURPOSES = {
    "TREAT": {},
    "HRESCH": {"X-DHR-Purpose-Of-Use": "HRESCH"},
    "POPHLTH": {"X-DHR-Purpose-Of-Use": "POPHLTH"},
    "BTG": {"X-DHR-Purpose-Of-Use": "BTG", "X-DHR-Break-Glass-Reason": "collapsed"},
}


@dataclass(frozen=True)
class PatientSpec:
    registered_with: str | None
    encounter_with: str | None  # an in-progress Encounter with this organisation
    opted_out: bool
    consents: tuple[str, ...]
    observations: tuple[tuple[str, bool], ...]  # (writer, labelled MH)


@dataclass(frozen=True)
class Asker:
    organisation: str
    role: str
    purpose: str
    declared_for_first: bool  # a break-glass declaration in force for the first patient


patients = st.builds(
    PatientSpec,
    registered_with=st.sampled_from((GP, ELSEWHERE, None)),
    encounter_with=st.sampled_from((None, None, GP, HOSPITAL)),
    opted_out=st.booleans(),
    consents=st.lists(st.sampled_from(sorted(CONSENTS)), max_size=2).map(tuple),
    observations=st.lists(
        st.tuples(st.sampled_from((GP, HOSPITAL, ELSEWHERE)), st.booleans()), max_size=3
    ).map(tuple),
)
askers = st.builds(
    Asker,
    organisation=st.sampled_from(ORGS),
    role=st.sampled_from(("R8000", "R8001")),
    purpose=st.sampled_from(sorted(PURPOSES)),
    declared_for_first=st.booleans(),
)


@dataclass
class Item:
    """One patient-compartment resource of the world, with what decide() needs."""

    res_type: str
    res_id: str
    patient: str
    writer: str
    labels: frozenset[Label] = frozenset()
    codes: frozenset[str] = frozenset()


@dataclass
class Built:
    items: list[Item]
    facts: dict[str, Facts]  # patient id -> facts for the asker

    def of(self, res_type: str) -> list[Item]:
        return [i for i in self.items if i.res_type == res_type]


def _controller_purposes() -> dict[str, frozenset[str]]:
    doc = load_default()
    return {ods: purposes_for(doc, ods, NATIONAL) for ods in (*ORGS, REGISTRY, NATIONAL)}


def build(world: World, specs: list[PatientSpec], asker: Asker) -> Built:
    items: list[Item] = []
    facts: dict[str, Facts] = {}
    today = dt.datetime.now(dt.UTC).date().isoformat()
    for n, spec in enumerate(specs):
        pid = world.patient(NHS_NUMBERS[n], spec.registered_with)
        items.append(Item("Patient", pid, pid, REGISTRY))
        if spec.encounter_with is not None:
            eid = world.encounter(pid, spec.encounter_with)
            items.append(Item("Encounter", eid, pid, REGISTRY))
        parsed = []
        for name in spec.consents:
            scope, provision = CONSENTS[name]
            cid = world.consent(pid, provision, scope)
            items.append(Item("Consent", cid, pid, REGISTRY))
            found = parse_consent({**consent_body(pid, provision, scope), "id": cid})
            assert found is not None
            parsed.append(found)
        for writer, labelled in spec.observations:
            oid = world.observation(pid, writer, (MH,) if labelled else ())
            labels = frozenset({Label(MH["system"], MH["code"])}) if labelled else frozenset()
            items.append(Item("Observation", oid, pid, writer, labels, frozenset({LOINC})))
        if spec.opted_out:
            world.opt_out(NHS_NUMBERS[n])
        declared = asker.declared_for_first and n == 0
        if declared:
            world.declare_break_glass(SUBJECT, pid, asker.organisation)
        relationship = (
            "registered"
            if spec.registered_with == asker.organisation
            else "encounter"
            if spec.encounter_with == asker.organisation
            else None
        )
        facts[pid] = Facts(
            consents=tuple(parsed),
            relationship=relationship,
            opted_out=spec.opted_out,
            controller_purposes=_controller_purposes(),
            today=today,
            national=NATIONAL,
            glass_broken=declared,
        )
    return Built(items, facts)


def requester(asker: Asker) -> Requester:
    purpose_headers = PURPOSES[asker.purpose]
    return Requester(
        subject=SUBJECT,
        roles=(asker.role,),
        organisation=asker.organisation,
        client_id="test-app",
        purpose=asker.purpose,
        break_glass_reason=purpose_headers.get("X-DHR-Break-Glass-Reason"),
    )


def permitted(built: Built, asker: Asker) -> set[str]:
    """``Type/id`` of every resource the decision point permits the asker."""
    who = requester(asker)
    allowed: set[str] = set()
    for item in built.items:
        data = DataItem(
            item.res_type,
            item.patient,
            item.labels,
            (item.writer, NATIONAL),
            res_id=item.res_id,
            codes=item.codes,
        )
        if decide(who, data, built.facts[item.patient]).permitted:
            allowed.add(f"{item.res_type}/{item.res_id}")
    return allowed


def _refs(bundle: dict[str, Any], mode: str | None = None) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if mode is None or e.get("search", {}).get("mode") == mode
    ]


def _get(reader: httpx.Client, url: str, **params: str) -> dict[str, Any]:
    got = reader.get(url, params=params)
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def _pages(reader: httpx.Client, res_type: str) -> list[str]:
    """Every page of a ``_count=1`` search, followed by its ``next`` links."""
    seen: list[str] = []
    url: str | None = f"{res_type}?_count=1"
    while url is not None:
        got = reader.get(url)
        assert got.status_code == 200, got.text
        bundle = got.json()
        seen += _refs(bundle, "match")
        url = next(
            (link["url"] for link in bundle.get("link", []) if link["relation"] == "next"), None
        )
        assert len(seen) <= 50, "paging does not end"
    return seen


def check_every_path(reader: httpx.Client, built: Built, allowed: set[str]) -> None:
    everything = {f"{i.res_type}/{i.res_id}" for i in built.items}
    # read, vread, instance history, and a batch of GETs
    for ref in sorted(everything):
        status = 200 if ref in allowed else 404
        assert reader.get(ref).status_code == status, ref
        assert reader.get(f"{ref}/_history/1").status_code == status, ref
        history = reader.get(f"{ref}/_history")
        if ref in allowed:
            assert history.status_code == 200, ref
            assert _refs(history.json()) == [ref]
        else:
            assert history.status_code == 404 or _refs(history.json()) == [], ref
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": ref}} for ref in sorted(everything)],
    }
    answer = reader.post("", json=batch)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"].split()[0] for e in answer.json()["entry"]]
    assert statuses == ["200" if ref in allowed else "404" for ref in sorted(everything)]

    visible_patients = {r for r in allowed if r.startswith("Patient/")}
    for res_type in COMPARTMENT:
        want = sorted(r for r in allowed if r.startswith(f"{res_type}/"))
        # type-level search with a true total, every page, the count alone, by _id
        bundle = _get(reader, res_type, _total="accurate", _count="100")
        assert sorted(_refs(bundle)) == want, res_type
        assert bundle["total"] == len(want), res_type
        paged = _pages(reader, res_type)
        assert len(paged) == len(set(paged)), res_type
        assert sorted(paged) == want, res_type
        assert _get(reader, res_type, _summary="count")["total"] == len(want), res_type
        ids = ",".join(i.res_id for i in built.of(res_type))
        if ids:
            assert sorted(_refs(_get(reader, res_type, _id=ids))) == want, res_type
        # type history: the one version of each visible resource
        assert sorted(_refs(_get(reader, f"{res_type}/_history", _count="100"))) == want

    for pid in built.facts:
        mine = {f"{i.res_type}/{i.res_id}" for i in built.items if i.patient == pid}
        observations = sorted(r for r in allowed & mine if r.startswith("Observation/"))
        assert sorted(_refs(_get(reader, "Observation", patient=pid))) == observations
        everything_op = reader.get(f"Patient/{pid}/$everything")
        if f"Patient/{pid}" in allowed:
            assert everything_op.status_code == 200, everything_op.text
            got = {r for r in _refs(everything_op.json()) if r.split("/")[0] in COMPARTMENT}
            assert got == allowed & mine, pid
        else:
            assert everything_op.status_code == 404, everything_op.text

    visible_obs = {
        i.res_id: i.patient for i in built.of("Observation") if f"Observation/{i.res_id}" in allowed
    }
    # _include: the matches are the visible Observations, the includes their visible Patients
    bundle = _get(reader, "Observation", _include="Observation:subject", _count="100")
    assert sorted(_refs(bundle, "match")) == sorted(f"Observation/{o}" for o in visible_obs)
    included = {f"Patient/{p}" for p in visible_obs.values()} & visible_patients
    assert set(_refs(bundle, "include")) == included
    # _revinclude: the visible Patients, and their visible Observations
    bundle = _get(reader, "Patient", _revinclude="Observation:subject", _count="100")
    assert sorted(_refs(bundle, "match")) == sorted(visible_patients)
    assert set(_refs(bundle, "include")) == {
        f"Observation/{o}" for o, p in visible_obs.items() if f"Patient/{p}" in visible_patients
    }
    # a chain through the Patient, and _has through the Observations: only what the reader
    # sees on both sides of the reference counts
    chained = set(_refs(_get(reader, "Observation", **{"subject:Patient.family": "Truth"})))
    assert chained == {
        f"Observation/{o}" for o, p in visible_obs.items() if f"Patient/{p}" in visible_patients
    }
    has = set(_refs(_get(reader, "Patient", **{"_has:Observation:subject:code": LOINC})))
    assert has == {f"Patient/{p}" for p in visible_obs.values()} & visible_patients


@pytest.fixture(scope="module")
def world_clients(
    policy_live_server: LiveServer, writers: dict[str, BackendClient]
) -> Iterator[dict[str, httpx.Client]]:
    clients = {
        ods: httpx.Client(base_url=policy_live_server.base + "/", timeout=30, auth=auth)
        for ods, auth in writers.items()
    }
    yield clients
    for http in clients.values():
        http.close()


@settings(
    max_examples=12,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(specs=st.lists(patients, min_size=1, max_size=3), asker=askers)
@example(  # both sides of the decision in one world: the practice sees one patient, not another
    specs=[
        PatientSpec(GP, None, False, (), ((HOSPITAL, False), (HOSPITAL, True), (GP, True))),
        PatientSpec(ELSEWHERE, None, True, ("research",), ((HOSPITAL, False), (GP, False))),
    ],
    asker=Asker(GP, "R8000", "TREAT", False),
)
def test_every_path_shows_exactly_what_the_decision_permits(
    policy_live_server: LiveServer,
    engine: Engine,
    world_clients: dict[str, httpx.Client],
    specs: list[PatientSpec],
    asker: Asker,
) -> None:
    reset(engine)
    world = World(policy_live_server, engine, world_clients)
    built = build(world, specs, asker)
    allowed = permitted(built, asker)
    with world.reader(asker.organisation, (asker.role,), SUBJECT, PURPOSES[asker.purpose]) as r:
        check_every_path(r, built, allowed)
