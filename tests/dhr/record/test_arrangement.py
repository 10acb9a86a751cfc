"""The joint-controller arrangement: the document (:mod:`dhr.record.arrangement`) and its
versions on a real database (:mod:`dhr.store.arrangement_store`).

ARCHITECTURE.md "The unified record", Controllers: which controller permits which purpose
(HL7 v3 PurposeOfUse, http://terminology.hl7.org/CodeSystem/v3-ActReason), who answers which
data-subject right, the contact point; data, versioned, read by the policy layer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, delete

from dhr.config import Settings
from dhr.record.arrangement import (
    PURPOSES,
    RIGHTS,
    Arrangement,
    ArrangementError,
    contact_for,
    load_default,
    parse_arrangement,
    purposes_for,
    who_answers,
)
from dhr.store import arrangement_store as store
from dhr.store.db import unit_of_work

NATIONAL = "X24"


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The session's database with no arrangement recorded (version 0 in force)."""
    with engine.begin() as conn:
        conn.execute(delete(store.ARRANGEMENT))
    return engine


def document(**changes: Any) -> dict[str, Any]:
    """The packaged default as a dict, with top-level parts replaced."""
    doc = load_default().model_dump(mode="json")
    doc.update(changes)
    return doc


def with_orchard(**terms: Any) -> Arrangement:
    orchard = {"ods": "A81001", "name": "Orchard Surgery", **terms}
    return Arrangement.model_validate(document(controllers=[orchard]))


# --- the document ----------------------------------------------------------------------------


def test_the_default_loads_and_matches_the_default_settings() -> None:
    default = load_default()
    assert default.national.ods == Settings.model_fields["national_controller_ods"].default
    assert default.national.name == "NHS England"
    assert set(default.national.purposes) == {
        "TREAT",
        "ETREAT",
        "BTG",
        "POPHLTH",
        "HRESCH",
        "PATRQT",
    }
    assert set(default.originating_default.purposes) == {"TREAT", "ETREAT", "BTG", "PATRQT"}
    assert default.controllers == ()
    assert {r: who_answers(default, r) for r in RIGHTS} == {
        "access": "originating",
        "rectification": "originating",
        "erasure": "originating",
        "restriction": "originating",
        "objection": "national",
        "portability": "originating",
    }


def test_purposes_for_national_default_and_override() -> None:
    arrangement = with_orchard(purposes=["TREAT", "HRESCH"])
    national = purposes_for(arrangement, NATIONAL, NATIONAL)
    assert {"POPHLTH", "HRESCH"} <= national
    # A practice without its own terms follows the originating default: no research, no planning.
    riverside = purposes_for(arrangement, "B82002", NATIONAL)
    assert riverside == frozenset({"TREAT", "ETREAT", "BTG", "PATRQT"})
    assert purposes_for(arrangement, "A81001", NATIONAL) == frozenset({"TREAT", "HRESCH"})


def test_an_override_without_purposes_or_contact_follows_the_default() -> None:
    arrangement = with_orchard(contact="dpo@orchard.example")
    assert purposes_for(arrangement, "A81001", NATIONAL) == purposes_for(
        arrangement, "B82002", NATIONAL
    )
    assert contact_for(arrangement, "A81001", NATIONAL) == "dpo@orchard.example"
    assert contact_for(arrangement, "B82002", NATIONAL) == "the practice's data protection officer"
    assert contact_for(arrangement, NATIONAL, NATIONAL) == "england.dpo@nhs.net"
    bare = with_orchard()
    assert contact_for(bare, "A81001", NATIONAL) == "the practice's data protection officer"


def test_who_answers_follows_the_document() -> None:
    rights = dict(load_default().rights.model_dump(), erasure="national")
    arrangement = Arrangement.model_validate(document(rights=rights))
    assert who_answers(arrangement, "erasure") == "national"
    assert who_answers(arrangement, "access") == "originating"
    with pytest.raises(ValueError, match="unknown data-subject right"):
        who_answers(arrangement, "forgetting")


def test_every_purpose_code_is_known_and_duplicates_collapse() -> None:
    national = dict(document()["national"], purposes=[*PURPOSES, "TREAT"])
    arrangement = Arrangement.model_validate(document(national=national))
    assert arrangement.national.purposes == tuple(PURPOSES)


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        (
            {"originating_default": {"purposes": ["TREAT", "MARKETING"], "contact": "dpo"}},
            "originating_default.purposes",
            "unknown purpose 'MARKETING'",
        ),
        (
            {"controllers": [{"ods": "A81001", "purposes": ["treat"]}]},
            "controllers[0].purposes",
            "unknown purpose 'treat'",
        ),
        ({"controllers": [{"ods": "A-1"}]}, "controllers[0].ods", "is not an ODS code"),
        ({"controllers": [{"ods": "A81001"}, {"ods": "A81001"}]}, "", "A81001 appears twice"),
        ({"controllers": [{"ods": "X24"}]}, "", "is the national controller"),
        (
            {"rights": dict.fromkeys(RIGHTS, "patient")},
            "rights.access",
            "'originating' or 'national'",
        ),
        ({"purpose": "TREAT"}, "purpose", "is not part of an arrangement"),
    ],
)
def test_invalid_documents_are_refused_in_plain_words(
    changes: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(ArrangementError) as info:
        parse_arrangement(json.dumps(document(**changes)), NATIONAL)
    line = next(line for line in str(info.value).splitlines() if message in line)
    assert line.startswith(f"{where}: " if where else "the document: ")


def test_a_missing_right_is_refused() -> None:
    rights = load_default().rights.model_dump()
    del rights["objection"]
    with pytest.raises(ArrangementError, match=r"rights\.objection: is missing"):
        parse_arrangement(json.dumps(document(rights=rights)), NATIONAL)


def test_the_national_controller_must_be_the_configured_one() -> None:
    text = json.dumps(document())
    assert parse_arrangement(text, NATIONAL) == load_default()
    with pytest.raises(ArrangementError, match="this server's national controller is Y56"):
        parse_arrangement(text, "Y56")


def test_documents_are_frozen() -> None:
    with pytest.raises(ValidationError):
        load_default().national.ods = "Y56"  # type: ignore[misc]


# --- versions --------------------------------------------------------------------------------


def test_an_empty_table_means_version_0_the_default(engine: Engine) -> None:
    with unit_of_work(engine, write=False) as conn:
        assert store.current_arrangement(conn) == (0, load_default())
        assert store.arrangement_version(conn, 0) == load_default()
        assert store.arrangement_version(conn, 1) is None
        assert store.arrangement_history(conn) == []


def test_set_records_versions_1_and_2_and_keeps_the_old(engine: Engine) -> None:
    first = with_orchard(purposes=["TREAT", "HRESCH"])
    second = with_orchard(purposes=["TREAT"], contact="dpo@orchard.example")
    with unit_of_work(engine, write=True) as conn:
        assert store.record_arrangement(conn, first, "cli:alice", 1_000_000) == 1
    with unit_of_work(engine, write=True) as conn:
        assert store.record_arrangement(conn, second, "cli:bob", 2_000_000) == 2
    with unit_of_work(engine, write=False) as conn:
        assert store.current_arrangement(conn) == (2, second)
        assert store.arrangement_version(conn, 1) == first
        assert store.arrangement_version(conn, 2) == second
        assert store.arrangement_version(conn, 0) == load_default()
        history = store.arrangement_history(conn)
    assert [(v.version, v.recorded, v.recorded_by) for v in history] == [
        (1, 1_000_000, "cli:alice"),
        (2, 2_000_000, "cli:bob"),
    ]
    assert history[0].arrangement == first
    with unit_of_work(engine, write=False) as conn:
        _, in_force = store.current_arrangement(conn)
    assert purposes_for(in_force, "A81001", NATIONAL) == frozenset({"TREAT"})


def _record_then_fail(engine: Engine) -> None:
    with unit_of_work(engine, write=True) as conn:
        store.record_arrangement(conn, load_default(), "cli:alice", 1)
        raise RuntimeError("the unit of work fails")


def test_a_rolled_back_recording_leaves_no_version(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        _record_then_fail(engine)
    with unit_of_work(engine, write=False) as conn:
        assert store.current_arrangement(conn)[0] == 0
