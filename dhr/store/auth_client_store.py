"""SQL for the token endpoint: clients, used assertion ``jti`` values, codes and refresh tokens.

RFC 6749 (https://www.rfc-editor.org/rfc/rfc6749), RFC 7523 section 3 (a ``jti`` is accepted
once) and SMART App Launch 2.2 (https://hl7.org/fhir/smart-app-launch/). Every function takes
the caller's :class:`~sqlalchemy.Connection`; nothing here commits. Single-use checks (codes,
assertion ids, refresh token rotation) are one conditional statement each, so two concurrent
requests can never both win.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, and_, delete, insert, select, update

from dhr.store.auth_models import (
    AssertionJtiRow,
    AuthorizationCodeRow,
    ClientRow,
    RefreshTokenRow,
)
from dhr.store.conflict import insert_if_absent

CLIENT = cast(Table, ClientRow.__table__)
JTI = cast(Table, AssertionJtiRow.__table__)
CODE = cast(Table, AuthorizationCodeRow.__table__)
REFRESH = cast(Table, RefreshTokenRow.__table__)


# --- clients ---------------------------------------------------------------------------------


def insert_client(conn: Connection, values: Mapping[str, Any]) -> bool:
    """Store a new client; False when the ``client_id`` is already taken."""
    return insert_if_absent(conn, CLIENT, values)


def client_row(conn: Connection, client_id: str) -> Row[Any] | None:
    return conn.execute(select(CLIENT).where(CLIENT.c.client_id == client_id)).first()


def client_rows(conn: Connection) -> Sequence[Row[Any]]:
    return conn.execute(select(CLIENT).order_by(CLIENT.c.created_at, CLIENT.c.client_id)).all()


def set_client_active(conn: Connection, client_id: str, active: bool) -> bool:
    """Activate or deactivate a client; False when there is no such client."""
    stmt = update(CLIENT).where(CLIENT.c.client_id == client_id).values(active=active)
    return conn.execute(stmt).rowcount == 1


def set_client_jwks(conn: Connection, client_id: str, jwks_json: str) -> bool:
    """Replace a client's inline JWK Set (JSON text); False when there is no such client."""
    stmt = update(CLIENT).where(CLIENT.c.client_id == client_id).values(jwks=jwks_json)
    return conn.execute(stmt).rowcount == 1


# --- client assertion ids (RFC 7523 section 3, item 7) ---------------------------------------


def record_assertion_jti(
    conn: Connection, client_id: str, jti: str, expires_at: int, now: int
) -> bool:
    """Remember ``jti`` until ``expires_at``; False when this client already used it.

    Rows whose assertion has expired are dropped first (an expired assertion is refused on its
    ``exp`` anyway, so its ``jti`` no longer needs remembering).
    """
    conn.execute(delete(JTI).where(JTI.c.expires_at < now))
    row = {"client_id": client_id, "jti": jti, "expires_at": expires_at}
    return insert_if_absent(conn, JTI, row)


# --- authorisation codes ---------------------------------------------------------------------


def code_row(conn: Connection, code_hash: str) -> Row[Any] | None:
    return conn.execute(select(CODE).where(CODE.c.code_hash == code_hash)).first()


def mark_code_used(conn: Connection, code_hash: str) -> bool:
    """Claim the code: True for exactly one caller, False when it was already used."""
    stmt = (
        update(CODE)
        .where(and_(CODE.c.code_hash == code_hash, CODE.c.used.is_(False)))
        .values(used=True)
    )
    return conn.execute(stmt).rowcount == 1


# --- refresh tokens --------------------------------------------------------------------------


def insert_refresh_token(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(REFRESH).values(**values))


def refresh_row(conn: Connection, token_hash: str) -> Row[Any] | None:
    return conn.execute(select(REFRESH).where(REFRESH.c.token_hash == token_hash)).first()


def revoke_refresh_token(conn: Connection, token_hash: str) -> bool:
    """Revoke one refresh token: True for exactly one caller, False if already revoked/absent."""
    stmt = (
        update(REFRESH)
        .where(and_(REFRESH.c.token_hash == token_hash, REFRESH.c.revoked.is_(False)))
        .values(revoked=True)
    )
    return conn.execute(stmt).rowcount == 1


def revoke_refresh_tokens_since(conn: Connection, client_id: str, username: str, since: int) -> int:
    """Revoke every refresh token ``client_id`` got for ``username`` from ``since`` on."""
    stmt = (
        update(REFRESH)
        .where(
            and_(
                REFRESH.c.client_id == client_id,
                REFRESH.c.username == username,
                REFRESH.c.created_at >= since,
                REFRESH.c.revoked.is_(False),
            )
        )
        .values(revoked=True)
    )
    return int(conn.execute(stmt).rowcount)
