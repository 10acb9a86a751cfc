"""SQL for the authorisation server's signing keys, revoked access tokens and CORS origins.

Signing keys: RFC 7517 (https://www.rfc-editor.org/rfc/rfc7517) JWK Sets served at
``/auth/jwks``; revocations: RFC 7009 (https://www.rfc-editor.org/rfc/rfc7009); origins: the
``origins`` list each client registers for CORS. Every function takes the caller's
:class:`~sqlalchemy.Connection`; nothing here commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, Table, and_, delete, select, true, update

from dhr.store.auth_models import ClientRow, RevokedTokenRow, SigningKeyRow, UserRow
from dhr.store.conflict import insert_for

KEY = cast(Table, SigningKeyRow.__table__)
REVOKED = cast(Table, RevokedTokenRow.__table__)
CLIENT = cast(Table, ClientRow.__table__)
USER = cast(Table, UserRow.__table__)


@dataclass(frozen=True)
class StoredKey:
    """One row of ``auth_signing_key``."""

    kid: str
    alg: str
    private_pem: bytes
    created_at: int
    retired_at: int | None


# --- signing keys ----------------------------------------------------------------------------


def signing_keys(conn: Connection) -> list[StoredKey]:
    """Every stored key, oldest first."""
    rows = conn.execute(select(KEY).order_by(KEY.c.created_at, KEY.c.kid)).all()
    return [
        StoredKey(r.kid, r.alg, bytes(r.private_pem), int(r.created_at), r.retired_at) for r in rows
    ]


def insert_signing_key(conn: Connection, key: StoredKey) -> None:
    values = {
        "kid": key.kid,
        "alg": key.alg,
        "private_pem": key.private_pem,
        "created_at": key.created_at,
        "retired_at": key.retired_at,
    }
    conn.execute(insert_for(conn, KEY).values(**values).on_conflict_do_nothing())


def retire_signing_keys(conn: Connection, now: int) -> int:
    """Retire every key still signing; the number retired."""
    stmt = update(KEY).where(KEY.c.retired_at.is_(None)).values(retired_at=now)
    return int(conn.execute(stmt).rowcount)


def drop_signing_keys_retired_before(conn: Connection, cutoff: int) -> int:
    """Forget keys retired before ``cutoff`` (their grace period is over)."""
    stmt = delete(KEY).where(and_(KEY.c.retired_at.is_not(None), KEY.c.retired_at < cutoff))
    return int(conn.execute(stmt).rowcount)


# --- revoked access tokens -------------------------------------------------------------------


def record_revocation(conn: Connection, jti: str, expires_at: int, now: int) -> None:
    """Remember that the token ``jti`` is revoked until it would have expired (idempotent)."""
    values = {"jti": jti, "expires_at": expires_at, "revoked_at": now}
    conn.execute(insert_for(conn, REVOKED).values(**values).on_conflict_do_nothing())


def revocations_since(conn: Connection, since: int, now: int) -> Sequence[tuple[str, int]]:
    """``(jti, expires_at)`` of the revocations made from ``since`` on that still matter."""
    stmt = select(REVOKED.c.jti, REVOKED.c.expires_at).where(
        and_(REVOKED.c.revoked_at >= since, REVOKED.c.expires_at >= now)
    )
    return [(str(jti), int(exp)) for jti, exp in conn.execute(stmt).all()]


def drop_expired_revocations(conn: Connection, cutoff: int) -> int:
    """Forget revocations of tokens that expired before ``cutoff`` (they fail on ``exp``)."""
    return int(conn.execute(delete(REVOKED).where(REVOKED.c.expires_at < cutoff)).rowcount)


# --- CORS origins ----------------------------------------------------------------------------


def deactivated(conn: Connection) -> tuple[frozenset[str], frozenset[str]]:
    """The ids of deactivated clients and the usernames of deactivated users."""
    clients = conn.execute(select(CLIENT.c.client_id).where(CLIENT.c.active.is_(False)))
    users = conn.execute(select(USER.c.username).where(USER.c.active.is_(False)))
    return frozenset(r[0] for r in clients), frozenset(r[0] for r in users)


def registered_origins(conn: Connection) -> frozenset[str]:
    """The union of the ``origins`` lists of the active clients (malformed lists are skipped)."""
    origins: set[str] = set()
    for (text,) in conn.execute(select(CLIENT.c.origins).where(CLIENT.c.active == true())):
        try:
            values = json.loads(text or "[]")
        except ValueError:
            continue
        if isinstance(values, list):
            origins.update(v for v in values if isinstance(v, str))
    return frozenset(origins)
