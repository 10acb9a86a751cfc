"""SQL for sign-ins through external OpenID Connect providers (:mod:`dhr.auth.federation`).

Sign-ins in progress live in ``auth_federation_state`` (OpenID Connect Core 1.0 section 3.1.2,
https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest: ``state``, ``nonce``; RFC 7636
PKCE); each federated identity keeps a row in ``auth_user``. Every function takes the connection
of the caller's unit of work and never commits. Secrets arrive already hashed, except the PKCE
verifier, which must be sent to the provider (it lives at most a few minutes and is deleted when
the sign-in returns).
"""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from dhr.store.auth_models import FederationStateRow, UserRow

# --- sign-ins in progress --------------------------------------------------------------------


def insert_state(
    conn: Connection,
    *,
    state_hash: str,
    provider: str,
    browser_hash: str,
    nonce_hash: str,
    code_verifier: str,
    next_url: str,
    expires_at: int,
) -> None:
    conn.execute(
        insert(FederationStateRow).values(
            state_hash=state_hash,
            provider=provider,
            browser_hash=browser_hash,
            nonce_hash=nonce_hash,
            code_verifier=code_verifier,
            next_url=next_url,
            expires_at=expires_at,
        )
    )


def take_state(conn: Connection, state_hash: str, now: int) -> RowMapping | None:
    """Delete the sign-in named by ``state_hash`` and return it if it had not expired.

    Single use: of two requests racing with the same state only the one whose delete removed
    the row gets it.
    """
    row = (
        conn.execute(
            select(
                FederationStateRow.provider,
                FederationStateRow.browser_hash,
                FederationStateRow.nonce_hash,
                FederationStateRow.code_verifier,
                FederationStateRow.next_url,
                FederationStateRow.expires_at,
            ).where(FederationStateRow.state_hash == state_hash)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    removed = conn.execute(
        delete(FederationStateRow).where(FederationStateRow.state_hash == state_hash)
    ).rowcount
    return row if removed > 0 and int(row["expires_at"]) > now else None


def purge_expired_states(conn: Connection, now: int) -> int:
    result = conn.execute(delete(FederationStateRow).where(FederationStateRow.expires_at <= now))
    return int(result.rowcount)


# --- federated users -------------------------------------------------------------------------


def refresh_user(
    conn: Connection,
    *,
    username: str,
    role: str,
    fhir_user: str,
    organisation: str | None,
    display: str,
) -> None:
    """Bring an existing federated user's role and bindings up to what the provider said now."""
    conn.execute(
        update(UserRow)
        .where(UserRow.username == username)
        .values(role=role, fhir_user=fhir_user, organisation=organisation, display=display)
    )
