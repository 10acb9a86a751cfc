"""The Ed25519 key that signs audit checkpoints, kept in a PEM file outside the database.

RFC 8032 (Ed25519) through ``cryptography``
(https://cryptography.io/en/latest/hazmat/primitives/asymmetric/ed25519/). The private key is
``settings.effective_audit_key_file`` (PKCS#8 PEM, mode 0600, created on first use); the public
key sits beside it as ``<name>.pub.pem`` so that an auditor can verify with the public key alone.
A checkpoint signs the UTF-8 bytes of ``f"{seq}:{chain_hash}"``; ``key_id`` is the first 16 hex
digits of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINTS_FILE = "audit-checkpoints.ndjson"
_LOCK = threading.Lock()


def checkpoint_message(seq: int, chain_hash: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return f"{seq}:{chain_hash}".encode()


def public_key_file(key_file: Path) -> Path:
    """``audit-signing.pem`` -> ``audit-signing.pub.pem``."""
    return key_file.with_name(f"{key_file.stem}.pub.pem")


def checkpoints_file(key_file: Path) -> Path:
    """The NDJSON copy of the checkpoints, beside the key (outside the database)."""
    return key_file.parent / CHECKPOINTS_FILE


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Verifier:
    """A public key that checks checkpoint signatures."""

    public: Ed25519PublicKey
    key_id: str

    def verify(self, seq: int, chain_hash: str, signature: bytes) -> bool:
        try:
            self.public.verify(signature, checkpoint_message(seq, chain_hash))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """The private key that signs checkpoints."""

    private: Ed25519PrivateKey
    key_id: str

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private.public_key(), self.key_id)

    def sign(self, seq: int, chain_hash: str) -> bytes:
        return self.private.sign(checkpoint_message(seq, chain_hash))


def load_or_create(key_file: Path) -> Signer:
    """The signing key in ``key_file``; a new one (0600, plus the public PEM) if there is none.

    Creation is exclusive (``O_EXCL``): of several processes starting at once one writes the
    key and the others read it.
    """
    with _LOCK:
        if not key_file.exists():
            _create(key_file)
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{key_file} does not hold an Ed25519 private key")
        public_file = public_key_file(key_file)
        if not public_file.exists():
            _write_public(public_file, private.public_key())
    return Signer(private, key_id_of(private.public_key()))


def load_verifier(key_file: Path) -> Verifier:
    """The public key beside ``key_file`` (or derived from the private key when only it exists)."""
    public_file = public_key_file(key_file)
    if public_file.exists():
        public = serialization.load_pem_public_key(public_file.read_bytes())
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"{public_file} does not hold an Ed25519 public key")
        return Verifier(public, key_id_of(public))
    if key_file.exists():
        return load_or_create(key_file).verifier
    raise FileNotFoundError(f"no audit signing key at {key_file} (nor {public_file})")


def _create(key_file: Path) -> None:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = key_file.with_name(f".{key_file.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, key_file)  # fails if another process got there first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    _fsync_dir(key_file.parent)


def _write_public(public_file: Path, public: Ed25519PublicKey) -> None:
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    tmp = public_file.with_name(f".{public_file.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pem)
    os.replace(tmp, public_file)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
