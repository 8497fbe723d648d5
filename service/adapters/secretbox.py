"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with several keys for rotation."""

from __future__ import annotations

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
