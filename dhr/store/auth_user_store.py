"""SQL for local users, login sessions, EHR launch contexts and new authorisation codes.

The tables are in :mod:`dhr.store.auth_models` (SMART App Launch 2.2,
https://hl7.org/fhir/smart-app-launch/app-launch.html). Every function takes the connection of
the caller's unit of work and never commits. Secrets (session secrets, launch ids, codes) arrive
here already hashed; times are epoch seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from dhr.store.auth_models import AuthorizationCodeRow, LaunchRow, LoginSessionRow, UserRow

_USER_COLUMNS = (
    UserRow.username,
    UserRow.password_hash,
    UserRow.role,
    UserRow.fhir_user,
    UserRow.organisation,
    UserRow.display,
    UserRow.active,
    UserRow.created_at,
)


# --- users -----------------------------------------------------------------------------------


def insert_user(
    conn: Connection,
    *,
    username: str,
    password_hash: str,
    role: str,
    fhir_user: str | None,
    organisation: str | None,
    display: str,
    created_at: int,
) -> None:
    conn.execute(
        insert(UserRow).values(
            username=username,
            password_hash=password_hash,
            role=role,
            fhir_user=fhir_user,
            organisation=organisation,
            display=display,
            active=True,
            created_at=created_at,
        )
    )


def get_user(conn: Connection, username: str) -> RowMapping | None:
    return (
        conn.execute(select(*_USER_COLUMNS).where(UserRow.username == username)).mappings().first()
    )


def list_users(conn: Connection) -> Sequence[RowMapping]:
    return conn.execute(select(*_USER_COLUMNS).order_by(UserRow.username)).mappings().all()


def set_user_active(conn: Connection, username: str, active: bool) -> bool:
    """Activate or deactivate; False when there is no such user."""
    result = conn.execute(update(UserRow).where(UserRow.username == username).values(active=active))
    return result.rowcount > 0


def set_password_hash(conn: Connection, username: str, password_hash: str) -> None:
    conn.execute(
        update(UserRow).where(UserRow.username == username).values(password_hash=password_hash)
    )


# --- login sessions --------------------------------------------------------------------------


def insert_session(conn: Connection, session_hash: str, username: str, expires_at: int) -> None:
    conn.execute(
        insert(LoginSessionRow).values(
            session_hash=session_hash, username=username, expires_at=expires_at
        )
    )


def session_username(conn: Connection, session_hash: str, now: int) -> str | None:
    """The user of an unexpired session, or None."""
    found = conn.execute(
        select(LoginSessionRow.username).where(
            LoginSessionRow.session_hash == session_hash, LoginSessionRow.expires_at > now
        )
    ).scalar_one_or_none()
    return str(found) if found is not None else None


def delete_session(conn: Connection, session_hash: str) -> None:
    conn.execute(delete(LoginSessionRow).where(LoginSessionRow.session_hash == session_hash))


def delete_user_sessions(conn: Connection, username: str) -> int:
    result = conn.execute(delete(LoginSessionRow).where(LoginSessionRow.username == username))
    return int(result.rowcount)


def purge_expired_sessions(conn: Connection, now: int) -> int:
    result = conn.execute(delete(LoginSessionRow).where(LoginSessionRow.expires_at <= now))
    return int(result.rowcount)


# --- EHR launch contexts ---------------------------------------------------------------------


def insert_launch(
    conn: Connection,
    *,
    launch_hash: str,
    patient: str | None,
    encounter: str | None,
    created_by: str,
    expires_at: int,
    client_id: str | None = None,
) -> None:
    conn.execute(
        insert(LaunchRow).values(
            launch_id=launch_hash,
            patient=patient,
            encounter=encounter,
            client_id=client_id,
            created_by=created_by,
            expires_at=expires_at,
        )
    )


def get_launch(conn: Connection, launch_hash: str, now: int) -> RowMapping | None:
    """An unexpired launch context (patient, encounter, client_id, created_by), or None."""
    return (
        conn.execute(
            select(
                LaunchRow.patient, LaunchRow.encounter, LaunchRow.client_id, LaunchRow.created_by
            ).where(LaunchRow.launch_id == launch_hash, LaunchRow.expires_at > now)
        )
        .mappings()
        .first()
    )


def consume_launch(conn: Connection, launch_hash: str, now: int) -> bool:
    """Delete an unexpired launch context; False if another request already used it."""
    result = conn.execute(
        delete(LaunchRow).where(LaunchRow.launch_id == launch_hash, LaunchRow.expires_at > now)
    )
    return result.rowcount > 0


def purge_expired_launches(conn: Connection, now: int) -> int:
    result = conn.execute(delete(LaunchRow).where(LaunchRow.expires_at <= now))
    return int(result.rowcount)


# --- authorisation codes ---------------------------------------------------------------------


def insert_code(
    conn: Connection,
    *,
    code_hash: str,
    client_id: str,
    username: str,
    redirect_uri: str,
    scope: str,
    code_challenge: str,
    patient: str | None,
    encounter: str | None,
    nonce: str | None,
    expires_at: int,
    session_hash: str | None = None,
) -> None:
    """A new single-use authorisation code (the token endpoint redeems and marks it used).

    ``session_hash`` names the login session that approved it: an ``online_access`` refresh
    token lives only as long as that session.
    """
    conn.execute(
        insert(AuthorizationCodeRow).values(
            code_hash=code_hash,
            client_id=client_id,
            username=username,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            patient=patient,
            encounter=encounter,
            nonce=nonce,
            session_hash=session_hash,
            expires_at=expires_at,
            used=False,
        )
    )
