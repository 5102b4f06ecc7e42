"""The pseudonymization service's keys: one secret per project, kept apart from the data.

Keys live under ``PMHUB_HOME/privacy/keys/`` (directory 0700, files 0600). A key is read
only by this module and used only inside HMAC; it is never returned to a caller that
writes files, and a key file readable by others is refused rather than used. A different
key per project means two projects' pseudonyms cannot be linked.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from pmhub.privacy.errors import KeyStoreError
from pmhub.settings import Settings

PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KEY_BYTES = 32


class ProjectKey:
    """An HMAC-SHA-256 key that hashes but never shows itself (repr and str hide it)."""

    __slots__ = ("_secret", "project")

    def __init__(self, project: str, secret: bytes) -> None:
        if len(secret) < 16:
            raise KeyStoreError(f"the key of project {project!r} is shorter than 128 bits")
        self.project = project
        self._secret = secret

    def __repr__(self) -> str:
        return f"ProjectKey(project={self.project!r})"

    def digest(self, namespace: str, value: str) -> bytes:
        message = namespace.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.digest(self._secret, message, hashlib.sha256)  # one-shot C path: fast

    def pseudonym(self, namespace: str, value: str, length: int = 32) -> str:
        return self.digest(namespace, value).hex()[:length]

    def offset(self, namespace: str, value: str, max_days: int) -> int:
        """A keyed, uniform offset in [-max_days, -1] ∪ [1, max_days] (never 0)."""
        draw = int.from_bytes(self.digest(namespace, value)[:8], "big") % (2 * max_days)
        return draw - max_days if draw < max_days else draw - max_days + 1

    def sql_parameters(self) -> dict[str, bytes]:
        """The HMAC's padded keys, to bind (never to inline) into :func:`pseudonym_sql`.

        They are as secret as the key: they go to the in-process query engine as bound
        parameters only, so no SQL text, plan or error message holds them.
        """
        secret = self._secret
        if len(secret) > SHA256_BLOCK:  # RFC 2104: a long key is hashed first
            secret = hashlib.sha256(secret).digest()
        block = secret.ljust(SHA256_BLOCK, b"\x00")
        return {
            INNER: bytes(b ^ 0x36 for b in block),
            OUTER: bytes(b ^ 0x5C for b in block),
        }


SHA256_BLOCK = 64
INNER, OUTER = "hmac_inner", "hmac_outer"


def _hmac_hex_sql(namespace: str, text_sql: str) -> str:
    """HMAC-SHA-256 (RFC 2104) in DuckDB SQL: the same digest as ``ProjectKey.digest``.

    A query computes it on all cores and without a Python call per row.
    """
    prefix = "'" + namespace.replace("'", "''") + "' || chr(0) || "
    message = f"encode({prefix}{text_sql})"
    return f"sha256(${OUTER} || unhex(sha256(${INNER} || {message})))"


def pseudonym_sql(namespace: str, text_sql: str, length: int = 32) -> str:
    """SQL for ``ProjectKey.pseudonym`` of a text expression (NULL stays NULL)."""
    return f"substr({_hmac_hex_sql(namespace, text_sql)}, 1, {int(length)})"


def offset_sql(namespace: str, text_sql: str, max_days: int) -> str:
    """SQL for ``ProjectKey.offset`` of a text expression, as an integer number of days."""
    span = 2 * int(max_days)
    first_bytes = f"'0x' || substr({_hmac_hex_sql(namespace, text_sql)}, 1, 16)"
    draw = f"CAST(CAST({first_bytes} AS UBIGINT) % {span} AS BIGINT)"  # one hash: DuckDB CSE
    return (
        f"CAST(CASE WHEN {draw} < {int(max_days)} THEN {draw} - {int(max_days)}"
        f" ELSE {draw} - {int(max_days)} + 1 END AS INTEGER)"
    )


def check_project(project: str) -> str:
    if not PROJECT.fullmatch(project):
        raise KeyStoreError(
            f"project name {project!r} is not valid",
            hint="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return project


class KeyStore:
    def __init__(self, settings: Settings) -> None:
        self.folder = settings.home_dir() / "privacy" / "keys"

    def path(self, project: str) -> Path:
        return self.folder / f"{check_project(project)}.key"

    def create(self, project: str) -> Path:
        path = self.path(project)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyStoreError(
                f"project {project!r} already has a key; it is never replaced silently",
                hint="Keep using it: replacing a key breaks every link to earlier releases.",
            ) from None
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
        return path

    def exists(self, project: str) -> bool:
        return self.path(project).exists()

    def get(self, project: str) -> ProjectKey:
        path = self.path(project)
        if not path.exists():
            raise KeyStoreError(f"project {project!r} has no pseudonymization key")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise KeyStoreError(
                f"the key file of project {project!r} is readable by others (mode {mode:o})",
                hint=f"Restrict it with `chmod 600 {path}` and check who may have read it.",
            )
        try:
            secret = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise KeyStoreError(
                f"the key file of project {project!r} is damaged",
                hint="Restore it from the key backup; without it, pseudonyms cannot be repeated.",
            ) from None
        return ProjectKey(project, secret)
