"""Local users: staff bound to a Practitioner/PractitionerRole and an ODS code, patients to their
Patient (the SMART ``fhirUser``, https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).
Real database (SQLite or PostgreSQL).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, select

from dhr.auth import passwords, users
from dhr.auth.users import UserError, add_user, check_login, deactivate_user, get_user, list_users
from dhr.store.auth_models import UserRow
from dhr.store.db import unit_of_work

PASSWORD = "correct horse battery staple"


@pytest.fixture
def db(engine: Engine) -> Engine:
    """The test database (the user table is shared between tests: usernames are unique)."""
    return engine


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_a_clinician_is_stored_with_role_practitioner_and_organisation(db: Engine) -> None:
    jones = name("dr.jones")
    user = add_user(
        db,
        username=jones,
        password=PASSWORD,
        role="clinician",
        fhir_user="Practitioner/p1",
        organisation="a81001",
        display="Dr Jones",
    )
    assert (user.role, user.fhir_user, user.organisation, user.active) == (
        "R8000",
        "Practitioner/p1",
        "A81001",
        True,
    )
    assert get_user(db, jones) == user
    assert user.role_info.display == "Clinical Practitioner Access Role"


def test_the_password_is_stored_only_as_a_salted_hash(db: Engine) -> None:
    pat = name("pat")
    add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/9")
    with unit_of_work(db, write=False) as conn:
        stored = conn.execute(
            select(UserRow.password_hash).where(UserRow.username == pat)
        ).scalar_one()
    assert PASSWORD not in stored
    assert stored.startswith("scrypt$")
    assert passwords.verify_password(PASSWORD, stored)


@pytest.mark.parametrize(
    ("role", "fhir_user", "organisation", "message"),
    [
        ("patient", None, None, "must be linked"),
        ("patient", "Practitioner/1", None, "not valid for Patient"),
        ("R8000", "Patient/1", "A81001", "not valid"),
        ("R8000", "Practitioner/1", None, "ODS code"),
        ("R8000", "Practitioner/1", "not an ods!", "not an ODS code"),
        ("R8001", None, "A81001", "must be linked"),
        ("system", None, None, "cannot be given to a user"),
        ("R1234", None, None, "unknown role"),
    ],
)
def test_bindings_the_role_does_not_allow_are_refused(
    db: Engine, role: str, fhir_user: str | None, organisation: str | None, message: str
) -> None:
    someone = name("someone")
    with pytest.raises(UserError, match=message):
        add_user(
            db,
            username=someone,
            password=PASSWORD,
            role=role,
            fhir_user=fhir_user,
            organisation=organisation,
        )
    assert get_user(db, someone) is None


def test_a_researcher_needs_no_fhir_user(db: Engine) -> None:
    res = name("res")
    user = add_user(db, username=res, password=PASSWORD, role="researcher")
    assert user.role == "researcher"
    assert user.fhir_user is None


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("bad name", PASSWORD, "username"),
        ("", PASSWORD, "username"),
        ("ok", "short", "password"),
    ],
)
def test_bad_usernames_and_short_passwords_are_refused(
    db: Engine, username: str, password: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        add_user(db, username=username, password=password, role="patient", fhir_user="Patient/1")


def test_a_username_is_taken_only_once(db: Engine) -> None:
    pat = name("pat")
    add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/1")
    with pytest.raises(UserError, match="already exists"):
        add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/2")


def test_login_needs_the_right_password_of_an_active_user(db: Engine) -> None:
    pat = name("pat")
    add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/1")
    user = check_login(db, pat, PASSWORD)
    assert user is not None
    assert user.patient_id == "1"
    assert check_login(db, pat, PASSWORD + "!") is None
    assert check_login(db, "nobody", PASSWORD) is None
    assert deactivate_user(db, pat)
    assert check_login(db, pat, PASSWORD) is None
    assert get_user(db, pat) is not None
    assert not deactivate_user(db, "nobody")


def test_an_unknown_user_costs_as_much_as_a_wrong_password(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown, inactive and known users each cost one full scrypt derivation (no timing oracle)."""
    pat, gone = name("pat"), name("gone")
    add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/1")
    add_user(db, username=gone, password=PASSWORD, role="patient", fhir_user="Patient/2")
    deactivate_user(db, gone)
    derivations: list[int] = []
    real = passwords._derive

    def counted(password: str, salt: bytes, cost: passwords.ScryptCost) -> bytes:
        derivations.append(1 << cost.log_n)
        return real(password, salt, cost)

    monkeypatch.setattr(passwords, "_derive", counted)
    for username in (pat, name("nobody"), gone, "not a valid username!"):
        derivations.clear()
        assert check_login(db, username, "wrong password") is None
        assert derivations == [1 << passwords.DEFAULT_COST.log_n], username


def test_a_hash_with_older_parameters_is_upgraded_at_login(db: Engine) -> None:
    pat = name("pat")
    add_user(db, username=pat, password=PASSWORD, role="patient", fhir_user="Patient/1")
    old = passwords.hash_password(PASSWORD, passwords.ScryptCost(log_n=10, r=8, p=1))
    with unit_of_work(db, write=True) as conn:
        conn.execute(
            UserRow.__table__.update().where(UserRow.username == pat).values(password_hash=old)
        )
    assert check_login(db, pat, PASSWORD) is not None
    with unit_of_work(db, write=False) as conn:
        stored = conn.execute(
            select(UserRow.password_hash).where(UserRow.username == pat)
        ).scalar_one()
    assert stored != old
    assert not passwords.needs_rehash(stored)


def test_users_are_listed_by_username(db: Engine) -> None:
    zed = name("zed")
    amy = name("amy")
    add_user(db, username=zed, password=PASSWORD, role="patient", fhir_user="Patient/1")
    add_user(
        db,
        username=amy,
        password=PASSWORD,
        role="R8001",
        fhir_user="PractitionerRole/r1",
        organisation="B82005",
    )
    listed = [u.username for u in list_users(db)]
    assert [u for u in listed if u in (amy, zed)] == [amy, zed]
    assert listed == sorted(listed)
    assert all(isinstance(u, users.User) for u in list_users(db))
