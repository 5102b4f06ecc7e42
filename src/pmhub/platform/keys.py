"""The Ed25519 key that signs audit checkpoints.

The private key is a file in ``PMHUB_HOME/keys/`` readable by its owner only, never a row
in the state database: someone who can rewrite the database cannot also sign. The public
key sits beside it (and goes into every export) for auditors to verify with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pmhub.platform.errors import AuditKeyError

KEY_DIR = "keys"
PRIVATE_FILE = "audit-ed25519.key"
PUBLIC_FILE = "audit-ed25519.pub"


def key_dir(home: Path) -> Path:
    return home / KEY_DIR


def key_id(public: Ed25519PublicKey) -> str:
    """A short fingerprint that a checkpoint names its key by."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Verifier:
    public: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def verify(self, signature_hex: str, message: bytes) -> bool:
        try:
            self.public.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclasses.dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def verifier(self) -> Verifier:
        return Verifier(self.private.public_key())

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def signing_key_exists(home: Path) -> bool:
    return (key_dir(home) / PRIVATE_FILE).exists()


def create_signing_key(home: Path) -> Signer:
    """A new key pair; refuses to replace one (that would orphan every old checkpoint)."""
    folder = key_dir(home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(folder / PRIVATE_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_signer(home)  # another process made it first
    except OSError as exc:
        raise AuditKeyError(f"cannot write the audit signing key in {folder}: {exc}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())
    signer = Signer(private)
    (folder / PUBLIC_FILE).write_bytes(signer.verifier.pem())
    return signer


def load_signer(home: Path) -> Signer:
    path = key_dir(home) / PRIVATE_FILE
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuditKeyError(
                f"the audit signing key {path} is readable by others "
                f"(mode {stat.S_IMODE(mode):o}); it must be 600"
            )
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise AuditKeyError(f"the audit signing key {path} is missing") from exc
    except (OSError, ValueError, TypeError) as exc:
        raise AuditKeyError(f"the audit signing key {path} is unreadable: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise AuditKeyError(f"the audit signing key {path} is not an Ed25519 key")
    return Signer(private)


def load_verifier(path: Path) -> Verifier:
    """An auditor's public key (PEM), e.g. ``public-key.pem`` of an export."""
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise AuditKeyError(
            f"cannot read the public key {path}: {exc}",
            hint="Give the PEM public key the platform published (keys/audit-ed25519.pub).",
        ) from exc
    if not isinstance(public, Ed25519PublicKey):
        raise AuditKeyError(f"the public key {path} is not an Ed25519 key")
    return Verifier(public)


def home_verifier(home: Path) -> Verifier:
    return load_verifier(key_dir(home) / PUBLIC_FILE)
