"""``dhr opt-out add|remove|list`` (dhr.access.opt_out_cli) run as the real ``dhr`` command, in a
separate process, against the test database: the national data opt-out registry
(https://digital.nhs.uk/services/national-data-opt-out), NHS numbers checked with Modulus 11,
changes audited, and the consent decision for research following the registry."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, select

from dhr.record.nhs_number import check_digit
from dhr.record.vocab import NHS_NUMBER_SYSTEM
from dhr.store.audit_store import EVENTS
from dhr.store.policy_store import opt_outs
from tests.conftest import LiveServer
from tests.dhr.record.test_source_cli import Dhr
from tests.helpers import created_id

FIRST = "9434765919"
SECOND = "943476587" + str(check_digit("943476587"))
WRONG_CHECK_DIGIT = "9434765918"


@pytest.fixture
def dhr(policy_server: LiveServer, database_url: str, tmp_path: Path) -> Dhr:
    """Runs ``dhr`` on the test database, emptied for this test (no opt-outs recorded)."""
    return Dhr(database_url, tmp_path / "data")


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def recorded(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [number for number, _, _ in opt_outs(conn)]


def test_add_list_and_remove(dhr: Dhr, engine: Engine) -> None:
    assert "0 national data opt-out(s) recorded" in ok(dhr("opt-out", "list"))

    added = ok(dhr("opt-out", "add", FIRST, SECOND))
    assert f"{FIRST}: opt-out recorded" in added
    assert recorded(engine) == sorted([FIRST, SECOND])

    listed = ok(dhr("opt-out", "list"))
    assert FIRST in listed
    assert SECOND in listed
    assert "cli:" in listed
    assert "2 national data opt-out(s) recorded" in listed

    again = ok(dhr("opt-out", "add", FIRST))
    assert f"{FIRST}: opt-out already recorded, unchanged" in again

    removed = ok(dhr("opt-out", "remove", FIRST))
    assert f"{FIRST}: opt-out withdrawn" in removed
    assert recorded(engine) == [SECOND]
    assert "was not recorded" in ok(dhr("opt-out", "remove", FIRST))


def test_a_bad_nhs_number_is_refused_and_nothing_is_recorded(dhr: Dhr, engine: Engine) -> None:
    refused = dhr("opt-out", "add", FIRST, WRONG_CHECK_DIGIT)
    assert refused.returncode == 2
    assert f"'{WRONG_CHECK_DIGIT}' is not a valid NHS number" in refused.stderr
    assert "check digit is 8 but Modulus 11 gives 9" in refused.stderr
    assert recorded(engine) == []

    spaced = dhr("opt-out", "remove", "943 476 5919")
    assert spaced.returncode == 2
    assert "without spaces" in spaced.stderr


def test_changes_are_audited(dhr: Dhr, engine: Engine) -> None:
    ok(dhr("opt-out", "add", FIRST))
    ok(dhr("opt-out", "add", FIRST))  # unchanged: nothing to audit
    ok(dhr("opt-out", "remove", FIRST))
    with engine.connect() as conn:
        rows = conn.execute(
            select(EVENTS.c.subtype, EVENTS.c.action, EVENTS.c.agent).order_by(EVENTS.c.key)
        ).all()
    assert [(r.subtype, r.action) for r in rows] == [("data-opt-out", "C"), ("data-opt-out", "D")]
    assert all(r.agent.startswith("cli:") for r in rows)


def test_research_follows_the_registry(dhr: Dhr, policy_client: httpx.Client) -> None:
    made = policy_client.post(
        "Patient",
        json={
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": FIRST}],
        },
    )
    assert made.status_code == 201, made.text
    pid = created_id(made)

    def research_decision() -> str:
        asked = policy_client.post(
            "$access-check",
            json={
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}},
                    {"name": "purpose", "valueCode": "HRESCH"},
                    {"name": "role", "valueCode": "researcher"},
                    {"name": "controller", "valueString": "X24"},
                ],
            },
        )
        assert asked.status_code == 200, asked.text
        return str(
            next(p["valueCode"] for p in asked.json()["parameter"] if p["name"] == "decision")
        )

    assert research_decision() == "permit"
    ok(dhr("opt-out", "add", FIRST))
    assert research_decision() == "deny"
    ok(dhr("opt-out", "remove", FIRST))
    assert research_decision() == "permit"
