"""The per-request audit recorder: who's record each resource belongs to, and one event per
patient (IHE BALP, https://profiles.ihe.net/ITI/BALP/content.html; the Patient compartment,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dhr.audit.recorder import AuditRecorder, interaction, outcome_of, patients_of
from dhr.auth.model import Principal
from dhr.store.patient_key import SEVERAL

BASE = "http://dhr.test/fhir"
WHO = Principal(subject="user-1", client_id="app-1")


def obs(*refs: str, performer: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
    if refs:
        body["subject"] = {"reference": refs[0]}
    if performer:
        body["performer"] = [{"reference": performer}]
    return body


def test_a_patient_is_its_own_record() -> None:
    assert patients_of("Patient", "p1", None, BASE) == ["p1"]


def test_compartment_references_name_the_patients() -> None:
    both = patients_of("Observation", "o1", obs("Patient/a", performer="Patient/b"), BASE)
    assert sorted(both) == ["a", "b"]
    assert patients_of("Observation", "o1", obs(f"{BASE}/Patient/c"), BASE) == ["c"]


def test_data_of_no_patient_names_nobody() -> None:
    assert patients_of("Practitioner", "d1", {"resourceType": "Practitioner"}, BASE) == []
    assert patients_of("Observation", "o1", obs("Group/g1"), BASE) == []
    assert patients_of("Observation", "o1", obs("http://elsewhere.test/Patient/x"), BASE) == []
    assert patients_of("Observation", "o1", None, BASE) == []


def records(recorder: AuditRecorder, **kwargs: Any) -> list[dict[str, Any]]:
    args = {"subtype": "search-type", "action": "E", "outcome": "0", **kwargs}
    out = recorder.events(**args)
    return [{"row": r, "event": orjson.loads(r.data)} for r in out]


def refs(item: dict[str, Any]) -> list[str]:
    return [
        e["what"]["reference"] for e in item["event"]["entity"] if "reference" in e.get("what", {})
    ]


def test_one_event_per_patient_and_shared_data_in_each() -> None:
    recorder = AuditRecorder(WHO, BASE, request_id="req-1")
    recorder.touched_resource("Observation", "o1", orjson.dumps(obs("Patient/a")))
    recorder.touched_resource("Observation", "o2", obs("Patient/b"))
    recorder.touched_rows([(1, "Practitioner", "d1", b'{"resourceType":"Practitioner"}', None)])
    recorder.touched("Patient", "a", "a")
    out = records(recorder, query="code=x")
    assert [i["row"].patient for i in out] == ["a", "b"]
    assert refs(out[0]) == ["Patient/a", "Observation/o1", "Practitioner/d1"]
    assert refs(out[1]) == ["Patient/b", "Observation/o2", "Practitioner/d1"]
    assert {i["row"].request_id for i in out} == {"req-1"}
    assert len({i["row"].event_id for i in out}) == 2


def test_search_rows_name_the_patient_of_their_key_and_content_only_when_several() -> None:
    recorder = AuditRecorder(WHO, BASE)
    several = orjson.dumps(obs("Patient/b", performer="Patient/c"))
    recorder.touched_rows(
        [
            # (key, type, id, data, sort values..., patient key worked out at write time)
            (1, "Observation", "o1", orjson.dumps(obs("Patient/a")), "2024", "a"),
            (2, "Practitioner", "d1", b'{"resourceType":"Practitioner"}', None),
            # several patients (or a key never worked out): the content says which
            (3, "Observation", "o3", several, SEVERAL),
        ]
    )
    by_patient = {i["row"].patient: refs(i) for i in records(recorder)}
    assert sorted(by_patient) == ["a", "b", "c"]
    assert by_patient["a"] == ["Patient/a", "Observation/o1", "Practitioner/d1"]
    assert by_patient["c"] == ["Patient/c", "Observation/o3", "Practitioner/d1"]


def test_nothing_touched_is_one_event_without_a_patient() -> None:
    [item] = records(AuditRecorder(WHO, BASE))
    assert item["row"].patient is None
    assert refs(item) == []


def test_a_denial_reason_replaces_the_message_of_a_failure_only() -> None:
    recorder = AuditRecorder(WHO, BASE)
    recorder.denied("outside the compartment", "Observation", "o1", obs("Patient/b"))
    [failed] = records(recorder, outcome="4", outcome_desc="not found")
    assert failed["event"]["outcomeDesc"] == "outside the compartment"
    assert failed["row"].patient == "b"
    [ok] = records(recorder, outcome="0", outcome_desc=None)
    assert "outcomeDesc" not in ok["event"]


def test_transaction_entries_are_collected_apart_and_claims_win() -> None:
    recorder = AuditRecorder(WHO, BASE)
    recorder.claim("Observation", "o9", 1)
    recorder.select(0)
    recorder.touched_resource("Patient", "a", None)
    recorder.touched_resource("Observation", "o9", obs("Patient/a"))  # claimed by entry 1
    recorder.touched_resource("Observation", "o8", obs("Patient/a"))  # entry 0
    assert recorder.patients(0) == {"a": ["Patient/a", "Observation/o8"]}
    assert recorder.patients(1) == {"a": ["Observation/o9"]}
    merged = records(recorder, all_keys=True)
    assert [i["row"].patient for i in merged] == ["a"]
    assert sorted(refs(merged[0])) == ["Observation/o8", "Observation/o9", "Patient/a"]


def test_a_disabled_recorder_collects_and_returns_nothing() -> None:
    recorder = AuditRecorder(WHO, BASE, enabled=False)
    recorder.touched("Patient", "a", "a")
    assert recorder.patients() == {}
    assert recorder.events("read", "R", "0") == []


@pytest.mark.parametrize(
    ("route", "method", "expected"),
    [
        ("read", "GET", ("read", "R")),
        ("search-compartment", "GET", ("search-type", "E")),
        ("patch-conditional", "PATCH", ("patch", "U")),
        ("everything", "GET", ("operation", "E")),
        (None, "DELETE", ("delete", "D")),
        (None, "BREW", ("operation", "E")),
    ],
)
def test_routes_map_to_balp_subtypes_and_actions(
    route: str | None, method: str, expected: tuple[str, str]
) -> None:
    assert interaction(route, method) == expected


def test_status_maps_to_outcome() -> None:
    assert [outcome_of(s) for s in (200, 201, 304, 403, 404, 500, 503)] == [
        "0",
        "0",
        "0",
        "4",
        "4",
        "8",
        "8",
    ]
