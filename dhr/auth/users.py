"""Local users of the embedded authorisation server: staff and patients, each with one role.

A user is bound to the FHIR resource that is their ``fhirUser`` (SMART App Launch 2.2,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-identity-data):
a patient to ``Patient/<id>``, staff to ``Practitioner/<id>`` or ``PractitionerRole/<id>`` and
an organisation's ODS code. Which bindings a role needs is data in ``roles.json``.
Passwords are stored only as :mod:`dhr.auth.passwords` hashes.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import cache

from sqlalchemy import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from dhr.auth import passwords
from dhr.auth import roles as rbac
from dhr.auth.roles import Role, UnknownRoleError
from dhr.store import auth_user_store as store
from dhr.store.db import unit_of_work

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
FHIR_USER = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")
ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
MIN_PASSWORD_CHARS = 8


class UserError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass(frozen=True)
class User:
    """A local user (never carries the password hash)."""

    username: str
    role: str  # the role's code (R8000, patient...)
    fhir_user: str | None  # Patient/9, Practitioner/3 or PractitionerRole/4
    organisation: str | None  # ODS code
    display: str
    active: bool
    created_at: int

    @property
    def role_info(self) -> Role:
        return rbac.role(self.role)

    @property
    def patient_id(self) -> str | None:
        """The id of the user's own Patient, when the user is bound to one."""
        if self.fhir_user and self.fhir_user.startswith("Patient/"):
            return self.fhir_user.split("/", 1)[1]
        return None


def _user(row: RowMapping) -> User:
    return User(
        username=row["username"],
        role=row["role"],
        fhir_user=row["fhir_user"],
        organisation=row["organisation"],
        display=row["display"] or "",
        active=bool(row["active"]),
        created_at=int(row["created_at"]),
    )


def _check_binding(r: Role, fhir_user: str | None, organisation: str | None) -> None:
    if fhir_user is None:
        if r.fhir_user_required:
            kinds = " or ".join(f"{t}/<id>" for t in r.fhir_user_types)
            raise UserError(f"a {r.display} user must be linked to a {kinds} (fhir_user)")
    else:
        match = FHIR_USER.match(fhir_user)
        if match is None or match.group(1) not in r.fhir_user_types:
            allowed = ", ".join(f"{t}/<id>" for t in r.fhir_user_types) or "nothing"
            raise UserError(f"fhir_user {fhir_user!r} is not valid for {r.display}: {allowed}")
    if organisation is None:
        if r.organisation_required:
            raise UserError(f"a {r.display} user needs an organisation ODS code")
    elif ODS_CODE.match(organisation) is None:
        raise UserError(f"organisation {organisation!r} is not an ODS code (e.g. A81001)")


def add_user(
    engine: Engine,
    *,
    username: str,
    password: str,
    role: str,
    fhir_user: str | None = None,
    organisation: str | None = None,
    display: str = "",
) -> User:
    """Create an active user; :class:`UserError` explains anything that is not allowed."""
    if USERNAME.match(username) is None:
        raise UserError(
            "a username has 1-128 letters, digits and . _ @ + - (starting alphanumeric)"
        )
    if len(password) < MIN_PASSWORD_CHARS or len(password) > passwords.MAX_PASSWORD_CHARS:
        raise UserError(
            f"a password has {MIN_PASSWORD_CHARS} to {passwords.MAX_PASSWORD_CHARS} characters"
        )
    try:
        r = rbac.role(role)
    except UnknownRoleError as exc:
        raise UserError(str(exc)) from exc
    if not r.user_assignable:
        raise UserError(f"the role {r.code} ({r.display}) cannot be given to a user")
    fhir_user = fhir_user.strip() if fhir_user else None
    organisation = organisation.strip().upper() if organisation else None
    _check_binding(r, fhir_user, organisation)
    password_hash = passwords.hash_password(password)
    now = int(time.time())
    try:
        with unit_of_work(engine, write=True) as conn:
            if store.get_user(conn, username) is not None:
                raise UserError(f"user {username!r} already exists")
            store.insert_user(
                conn,
                username=username,
                password_hash=password_hash,
                role=r.code,
                fhir_user=fhir_user,
                organisation=organisation,
                display=display.strip()[:255],
                created_at=now,
            )
    except IntegrityError as exc:
        raise UserError(f"user {username!r} already exists") from exc
    return User(username, r.code, fhir_user, organisation, display.strip()[:255], True, now)


def get_user(engine: Engine, username: str) -> User | None:
    with unit_of_work(engine, write=False) as conn:
        row = store.get_user(conn, username)
    return _user(row) if row is not None else None


def list_users(engine: Engine) -> list[User]:
    with unit_of_work(engine, write=False) as conn:
        return [_user(row) for row in store.list_users(conn)]


def deactivate_user(engine: Engine, username: str) -> bool:
    """Stop a user signing in and end their login sessions; False if there is no such user."""
    with unit_of_work(engine, write=True) as conn:
        found = store.set_user_active(conn, username, False)
        if found:
            store.delete_user_sessions(conn, username)
    return found


@cache
def _dummy_hash() -> str:
    """A hash to verify against for unknown users, so they take as long as known ones."""
    return passwords.hash_password("dhr-no-such-user-dummy-password")


def check_login(engine: Engine, username: str, password: str) -> User | None:
    """The active user with these credentials, or None (same work for unknown users).

    A hash made with older parameters is upgraded after a successful login.
    """
    with unit_of_work(engine, write=False) as conn:
        row = store.get_user(conn, username) if USERNAME.match(username) else None
    stored = str(row["password_hash"]) if row is not None else _dummy_hash()
    matches = passwords.verify_password(password, stored)
    if row is None or not matches or not row["active"]:
        return None
    if passwords.needs_rehash(stored):
        with unit_of_work(engine, write=True) as conn:
            store.set_password_hash(conn, username, passwords.hash_password(password))
    return _user(row)
