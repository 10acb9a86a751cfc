"""The checkpoint signing key (dhr/audit/signing.py): Ed25519 (RFC 8032) in a PEM file outside
the database, created 0600 on first use with the public key beside it; key_id is the first 16
hex digits of sha256 of the raw public key; signatures cover f"{seq}:{chain_hash}".
"""

from __future__ import annotations

import hashlib
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from dhr.audit.signing import checkpoint_message, load_or_create, load_verifier, public_key_file


def test_the_key_is_created_once_0600_with_its_public_key_beside_it(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "audit-signing.pem"
    signer = load_or_create(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert public_key_file(key_file) == tmp_path / "keys" / "audit-signing.pub.pem"
    raw = signer.private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert signer.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert load_or_create(key_file).key_id == signer.key_id  # loaded, not replaced


def test_signatures_verify_with_the_public_key_alone(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-signing.pem"
    signature = load_or_create(key_file).sign(42, "ab" * 32)
    key_file.unlink()  # an auditor holds only the public key
    verifier = load_verifier(key_file)
    assert verifier.verify(42, "ab" * 32, signature)
    assert not verifier.verify(43, "ab" * 32, signature)
    assert not verifier.verify(42, "cd" * 32, signature)
    assert checkpoint_message(42, "ab") == b"42:ab"


def test_threads_creating_the_key_at_once_share_one_key(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-signing.pem"
    ids: list[str] = []
    threads = [
        threading.Thread(target=lambda: ids.append(load_or_create(key_file).key_id))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert load_verifier(key_file).key_id == ids[0]


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-signing.pem"
    other = generate_private_key(SECP256R1())
    key_file.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_or_create(key_file)


def test_no_key_at_all_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_verifier(tmp_path / "missing.pem")
