"""Password hashing: salted scrypt (RFC 7914) in a self-describing, upgradable format.

OWASP Password Storage Cheat Sheet scrypt parameters; constant-time comparison.
"""

from __future__ import annotations

import pytest

from dhr.auth.passwords import (
    DEFAULT_COST,
    ScryptCost,
    hash_password,
    needs_rehash,
    verify_password,
)

CHEAP = ScryptCost(log_n=10, r=8, p=1)  # only for tests of the format, not the default


def test_a_hash_names_its_algorithm_and_parameters_and_verifies() -> None:
    stored = hash_password("s3cret passphrase")
    algorithm, log_n, r, p, salt, digest = stored.split("$")
    assert (algorithm, int(log_n), int(r), int(p)) == ("scrypt", 15, 8, 3)
    assert salt
    assert digest
    assert verify_password("s3cret passphrase", stored)
    assert not verify_password("s3cret passphrasE", stored)


def test_the_default_cost_is_one_of_owasps_scrypt_settings() -> None:
    # OWASP Password Storage Cheat Sheet: N=2^17,p=1 or the equivalents below, all with r=8
    owasp = {(17, 1), (16, 2), (15, 3), (14, 5), (13, 10)}
    assert DEFAULT_COST.r == 8
    assert (DEFAULT_COST.log_n, DEFAULT_COST.p) in owasp


def test_every_hash_has_its_own_salt() -> None:
    first, second = hash_password("same", CHEAP), hash_password("same", CHEAP)
    assert first != second
    assert first.split("$")[4] != second.split("$")[4]
    assert verify_password("same", first)
    assert verify_password("same", second)


def test_stored_parameters_are_used_so_old_hashes_still_verify_and_need_an_upgrade() -> None:
    old = hash_password("pw-with-old-cost", CHEAP)
    assert old.startswith("scrypt$10$8$1$")
    assert verify_password("pw-with-old-cost", old)
    assert needs_rehash(old)
    assert not needs_rehash(hash_password("pw-with-new-cost"))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain-text-password",
        "bcrypt$10$8$1$c2FsdA$aGFzaA",
        "scrypt$10$8$1$c2FsdA",  # missing the hash
        "scrypt$x$8$1$c2FsdA$aGFzaA",
        "scrypt$40$8$1$c2FsdA$" + "A" * 43,  # absurd cost: refused, not computed
        "scrypt$10$8$1$c2FsdA$aGFzaA",  # hash of the wrong length
    ],
)
def test_malformed_or_unknown_hashes_never_match(stored: str) -> None:
    assert not verify_password("anything", stored)
    assert needs_rehash(stored)


def test_empty_and_oversized_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="characters"):
        hash_password("")
    with pytest.raises(ValueError, match="characters"):
        hash_password("x" * 1025)
    assert not verify_password("", hash_password("x", CHEAP))
