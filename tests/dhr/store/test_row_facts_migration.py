"""Migrations 0008 and 0009 work out the patient key and the controllers of resources stored
before them, from their index rows.

Run on a database of its own (a SQLite file, or a throwaway PostgreSQL database when
``DHR_TEST_DATABASE_URL`` names a server), migrated to 0007, filled the way 0007's write path
filled it, then upgraded.
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text

from dhr.record.vocab import CONTROLLER_SYSTEM
from dhr.store import db
from dhr.store.controller_codes import UNKNOWN
from dhr.store.patient_key import SEVERAL

BASE = "http://dhr.test/fhir"


# (res_type, res_id, deleted, [(param, target_type, target_id, url)])
BEFORE = [
    ("Patient", "alone", False, []),
    ("Patient", "source", False, [("link", "Patient", "master", None)]),
    ("Patient", "self-linked", False, [("link", "Patient", "self-linked", None)]),
    ("Observation", "of-one", False, [("subject", "Patient", "alone", None)]),
    (
        "Observation",
        "of-two",
        False,
        [("subject", "Patient", "alone", None), ("performer", "Patient", "source", None)],
    ),
    ("Observation", "absolute", False, [("subject", "Patient", "alone", f"{BASE}/Patient/alone")]),
    ("Observation", "of-a-group", False, [("subject", "Group", "g", None)]),
    ("Observation", "by-a-doctor", False, [("performer", "Practitioner", "d", None)]),
    ("Organization", "practice", False, []),
    ("Observation", "deleted", True, []),
]
AFTER = {
    "alone": "alone",
    "source": SEVERAL,
    "self-linked": "self-linked",
    "of-one": "alone",
    "of-two": SEVERAL,
    "absolute": SEVERAL,
    "of-a-group": None,
    "by-a-doctor": None,
    "practice": None,
    "deleted": SEVERAL,
}

# resource key (1-based position in BEFORE) -> its _tag index rows
TAGS = {
    1: [(CONTROLLER_SYSTEM, "X24"), (CONTROLLER_SYSTEM, "A81001")],
    4: [(CONTROLLER_SYSTEM, "R0BEN"), ("http://example.org/other-tags", "R0BEN")],
    9: [(CONTROLLER_SYSTEM, "not an ODS code")],
    10: [(CONTROLLER_SYSTEM, "X24")],
}
CONTROLLERS = {
    "alone": " A81001 X24 ",
    "of-one": " R0BEN ",
    "practice": UNKNOWN,
    "deleted": UNKNOWN,
}


def test_the_upgrade_gives_every_stored_resource_its_patient_key_and_controllers(
    private_engine: Engine,
) -> None:
    config = db.alembic_config(private_engine)
    command.upgrade(config, "0007")
    insert_resource = text(
        "INSERT INTO resource (key, res_type, res_id, version_id, deleted, last_updated) "
        "VALUES (:k, :t, :i, 1, :d, 0)"
    )
    insert_ref = text(
        "INSERT INTO ix_reference (resource_key, res_type, param, target_type, target_id, url) "
        "VALUES (:k, :t, :p, :tt, :ti, :u)"
    )
    with private_engine.begin() as conn:
        for key, (res_type, res_id, deleted, refs) in enumerate(BEFORE, start=1):
            conn.execute(insert_resource, {"k": key, "t": res_type, "i": res_id, "d": deleted})
            for param, target_type, target_id, url in refs:
                conn.execute(
                    insert_ref,
                    {"k": key, "t": res_type, "p": param, "tt": target_type, "ti": target_id}
                    | {"u": url},
                )
    insert_tag = text(
        "INSERT INTO ix_token (resource_key, res_type, param, system, code) "
        "VALUES (:k, :t, '_tag', :s, :c)"
    )
    with private_engine.begin() as conn:
        for key, (res_type, _, _, _) in enumerate(BEFORE, start=1):
            for system, code in TAGS.get(key, ()):
                conn.execute(insert_tag, {"k": key, "t": res_type, "s": system, "c": code})
    command.upgrade(config, "head")
    with private_engine.connect() as conn:
        found = {
            str(i): (k, c)
            for i, k, c in conn.execute(
                text("SELECT res_id, patient_key, controllers FROM resource")
            )
        }
    assert found == {res_id: (key, CONTROLLERS.get(res_id)) for res_id, key in AFTER.items()}
