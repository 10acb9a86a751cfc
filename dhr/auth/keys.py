"""The server's rotatable RS256 signing keys and the JWK Set it publishes.

JWK (RFC 7517, https://www.rfc-editor.org/rfc/rfc7517), key ids are RFC 7638 thumbprints
(https://www.rfc-editor.org/rfc/rfc7638), signatures are JWS RS256 (RFC 7518 section 3.3).
SMART App Launch 2.2 publishes the set at ``jwks_uri``
(https://hl7.org/fhir/smart-app-launch/conformance.html#metadata).

Keys live in ``auth_signing_key`` so every worker process signs and verifies with the same set.
The newest unretired key signs. :meth:`KeyRing.rotate` retires it and makes a new one; a retired
key stays in the JWK Set and keeps verifying for :data:`GRACE_SECONDS` (longer than any access
token lives), then drops out. Each process keeps the keys in memory and re-reads the table every
:data:`REFRESH_SECONDS`, or at once (at most once a second) when a token names a ``kid`` it does
not know, so a rotation made by another process is picked up without a restart. If the table
is found empty while this process holds keys (a restore, a test wiping tables), it writes them
back instead of orphaning the tokens they signed.

Private keys are stored as unencrypted PKCS#8 PEM: protect the database (and its backups) as
you would the key itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import Engine

from dhr.store import auth_keys_store as store
from dhr.store.db import unit_of_work

ALG = "RS256"
KEY_BITS = 2048
GRACE_SECONDS = 2 * 3600
REFRESH_SECONDS = 60.0
UNKNOWN_KID_RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class SigningKey:
    """One key pair of the ring; ``key`` holds the private half."""

    kid: str
    key: RSAKey
    public: RSAKey
    created_at: int
    retired_at: int | None

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(self.public.as_dict(private=False))
        jwk.update({"kid": self.kid, "alg": ALG, "use": "sig"})
        return jwk


def _generate(now: int) -> tuple[SigningKey, store.StoredKey]:
    key = RSAKey.generate_key(KEY_BITS, auto_kid=False)
    kid = key.thumbprint()
    pem = key.as_pem(private=True)
    stored = store.StoredKey(kid, ALG, pem, now, None)
    return _loaded(stored, key), stored


def _stored(key: SigningKey) -> store.StoredKey:
    pem = key.key.as_pem(private=True)
    return store.StoredKey(key.kid, ALG, pem, key.created_at, key.retired_at)


def _loaded(stored: store.StoredKey, key: RSAKey | None = None) -> SigningKey:
    private = key or RSAKey.import_key(stored.private_pem)
    public = RSAKey.import_key(private.as_dict(private=False))
    return SigningKey(stored.kid, private, public, stored.created_at, stored.retired_at)


class KeyRing:
    """The signing keys, backed by ``auth_signing_key`` and cached in memory."""

    def __init__(
        self,
        engine: Engine,
        *,
        grace_seconds: int = GRACE_SECONDS,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.grace_seconds = grace_seconds
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}  # replaced whole on reload: lock-free reads
        self._loaded_at = -math.inf
        self._unknown_reload_at = -math.inf

    # --- signing ---------------------------------------------------------------------------

    def current(self) -> SigningKey:
        """The key that signs now; the first call on an empty table makes one."""
        with self._lock:
            self._refresh_if_due()
            active = self._active()
            if active is None:
                active = self._create_if_missing()
            return active

    def rotate(self) -> SigningKey:
        """Retire the signing key (it keeps verifying for the grace period) and make a new one.

        Keys whose grace period is over are deleted from the table.
        """
        with self._lock:
            now = int(self.clock())
            new, stored = _generate(now)
            with unit_of_work(self.engine, write=True) as conn:
                store.retire_signing_keys(conn, now)
                store.drop_signing_keys_retired_before(conn, now - self.grace_seconds)
                store.insert_signing_key(conn, stored)
            self._reload()
            return self._keys.get(new.kid, new)

    # --- publishing and verifying ----------------------------------------------------------

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set: the signing key first, then retired keys still in their grace period."""
        self.current()  # makes the first key, so the set is never empty
        now = self.clock()
        keys = sorted(
            self._keys.values(), key=lambda k: (k.retired_at is not None, -k.created_at, k.kid)
        )
        return {"keys": [k.public_jwk() for k in keys if self._publishable(k, now)]}

    def verification_key(self, kid: str) -> RSAKey | None:
        """The public key named ``kid`` if it may still verify tokens, else None."""
        if self.clock() - self._loaded_at >= self.refresh_seconds:
            with self._lock:
                self._refresh_if_due()
        entry = self._keys.get(kid)
        if entry is None:
            entry = self._reload_for_unknown(kid)
            if entry is None:
                return None
        return entry.public if self._publishable(entry, self.clock()) else None

    def reload(self) -> None:
        """Re-read the table now (e.g. after a rotation made by another process)."""
        with self._lock:
            self._reload()

    def kids(self) -> list[str]:
        """The ids of the published keys, newest first."""
        return [k["kid"] for k in self.public_jwks()["keys"]]

    # --- internals -------------------------------------------------------------------------

    def _publishable(self, key: SigningKey, now: float) -> bool:
        return key.retired_at is None or now < key.retired_at + self.grace_seconds

    def _active(self) -> SigningKey | None:
        active = [k for k in self._keys.values() if k.retired_at is None]
        return max(active, key=lambda k: (k.created_at, k.kid)) if active else None

    def _refresh_if_due(self) -> None:
        if self.clock() - self._loaded_at >= self.refresh_seconds:
            self._reload()

    def _reload(self) -> None:
        with unit_of_work(self.engine, write=False, single_statement=True) as conn:
            rows = store.signing_keys(conn)
        old = self._keys
        if not rows and old:
            # The table was emptied under us (a restore, a test wiping tables): write back the
            # keys this process signs and verifies with rather than orphaning issued tokens.
            rows = [_stored(k) for k in old.values()]
            with unit_of_work(self.engine, write=True) as conn:
                for row in rows:
                    store.insert_signing_key(conn, row)
        keys: dict[str, SigningKey] = {}
        for row in rows:
            known = old.get(row.kid)
            if known is not None:  # keep the parsed key objects; only retirement changes
                keys[row.kid] = SigningKey(
                    known.kid, known.key, known.public, known.created_at, row.retired_at
                )
            else:
                keys[row.kid] = _loaded(row)
        self._keys = keys
        self._loaded_at = self.clock()

    def _reload_for_unknown(self, kid: str) -> SigningKey | None:
        with self._lock:
            if kid not in self._keys and (
                self.clock() - self._unknown_reload_at >= UNKNOWN_KID_RELOAD_SECONDS
            ):
                self._unknown_reload_at = self.clock()
                self._reload()
            return self._keys.get(kid)

    def _create_if_missing(self) -> SigningKey:
        """Make the first key, unless another process made one meanwhile (then use it)."""
        now = int(self.clock())
        new, stored = _generate(now)
        with unit_of_work(self.engine, write=True) as conn:
            rows = store.signing_keys(conn)
            if not any(r.retired_at is None for r in rows):
                store.insert_signing_key(conn, stored)
        self._reload()
        active = self._active()
        return active if active is not None else new
