"""Password hashing for the local users of the embedded authorisation server.

scrypt (RFC 7914) with a per-password random salt. The stored form carries its algorithm and
parameters, so stronger parameters (or another algorithm) can be introduced later and old hashes
still verify; :func:`needs_rehash` says when a hash should be upgraded at the next login::

    scrypt$<log2 N>$<r>$<p>$<salt, base64url>$<hash, base64url>

The default cost is one of the OWASP Password Storage Cheat Sheet's scrypt settings
(N=2^15, r=8, p=3: the CPU cost of N=2^17, p=1 with a quarter of the memory, 32 MiB, which
keeps concurrent logins from exhausting memory). Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

ALGORITHM = "scrypt"
SALT_BYTES = 16
HASH_BYTES = 32
MAX_PASSWORD_CHARS = 1024  # long enough for any passphrase, short enough to bound the work


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's cost parameters: N = 2**log_n, block size r, parallelisation p."""

    log_n: int = 15
    r: int = 8
    p: int = 3

    @property
    def maxmem(self) -> int:
        """Memory scrypt needs (128 * N * r bytes) plus headroom for its own buffers."""
        return 128 * (1 << self.log_n) * self.r * 2 + 1024 * 1024


DEFAULT_COST = ScryptCost()
_LIMITS = ScryptCost(log_n=20, r=16, p=16)  # refuse stored parameters beyond these


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << cost.log_n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.maxmem,
        dklen=HASH_BYTES,
    )


def hash_password(password: str, cost: ScryptCost = DEFAULT_COST) -> str:
    """A fresh salted hash of ``password`` in the self-describing stored form."""
    if not password or len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"a password has 1 to {MAX_PASSWORD_CHARS} characters")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _derive(password, salt, cost)
    return f"{ALGORITHM}${cost.log_n}${cost.r}${cost.p}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[ScryptCost, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != ALGORITHM:
        return None
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    in_range = (
        1 <= cost.log_n <= _LIMITS.log_n and 1 <= cost.r <= _LIMITS.r and 1 <= cost.p <= _LIMITS.p
    )
    if not in_range or not salt or len(digest) != HASH_BYTES:
        return None
    return cost, salt, digest


def verify_password(password: str, stored: str) -> bool:
    """Does ``password`` match the stored hash? Malformed hashes never match."""
    parsed = _parse(stored)
    if parsed is None or not password or len(password) > MAX_PASSWORD_CHARS:
        return False
    cost, salt, digest = parsed
    return hmac.compare_digest(_derive(password, salt, cost), digest)


def needs_rehash(stored: str, cost: ScryptCost = DEFAULT_COST) -> bool:
    """Is ``stored`` weaker than (or different from) the current default and worth upgrading?"""
    parsed = _parse(stored)
    return parsed is None or parsed[0] != cost
