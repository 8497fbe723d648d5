"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with several keys for rotation."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from service.errors import SecretsUnavailable


class FernetSecretBox:
    """Encrypts with the first key; decrypts with any. Implements ``service.ports.SecretBox``."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise SecretsUnavailable("no CREDENTIAL_KEYS configured: secrets cannot be used")
        return self._fernet

    def encrypt(self, plaintext: bytes) -> str:
        return self._require().encrypt(plaintext).decode()

    def decrypt(self, token: str) -> bytes:
        try:
            return self._require().decrypt(token.encode())
        except InvalidToken:
            raise SecretsUnavailable("no key in CREDENTIAL_KEYS decrypts a stored secret") from None

    def rotate(self, token: str) -> str:
        try:
            return self._require().rotate(token.encode()).decode()
        except InvalidToken:
            raise SecretsUnavailable("no key in CREDENTIAL_KEYS decrypts a stored secret") from None


def load_or_create_key_file(path: Path) -> tuple[str, bool]:
    """The key file's text, made first (one new key, mode 0600) when it does not exist.

    Returns ``(text, created)``. Several processes may start at once (gunicorn workers, the
    reconciler): the file appears complete or not at all (written aside, then hard-linked into
    place), so exactly one process creates it and every process reads the same key.
    """
    try:
        return path.read_text(encoding="ascii"), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, draft = tempfile.mkstemp(prefix=".credential-keys-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(FernetSecretBox.new_key() + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(draft, path)
            created = True
        except FileExistsError:
            created = False  # another process won the race: use its key
    finally:
        os.unlink(draft)
    return path.read_text(encoding="ascii"), created
