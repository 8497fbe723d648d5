"""The database side of a delegated credential's msal token cache (encrypted, versioned)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, update

from service.db.models import TenantCredential
from service.db.session import Database
from service.errors import LoginRequired
from service.ports import SecretBox


class DbTokenCacheStore:
    """Implements ``service.ports.TokenCacheStore`` for one tenant credential row."""

    def __init__(self, database: Database, box: SecretBox, credential_id: str) -> None:
        self._database = database
        self._box = box
        self._id = credential_id

    def load(self) -> tuple[str | None, int]:
        with self._database.unit_of_work() as uow:
            row = uow.session.execute(
                select(
                    TenantCredential.token_cache_ciphertext, TenantCredential.token_cache_version
                ).where(TenantCredential.id == self._id)
            ).first()
        if row is None:
            raise LoginRequired("the delegated credential was removed")
        return self._decrypt(row[0]), int(row[1])

    def update_locked(
        self, update_fn: Callable[[str | None, int], str | None]
    ) -> tuple[str | None, int]:
        with self._database.unit_of_work() as uow:
            # A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite, so
            # concurrent refreshers queue here and each sees the previous one's refresh token.
            # Core UPDATEs leave the row's ETag version alone: a token refresh is not an edit.
            locked = uow.session.execute(
                update(TenantCredential)
                .where(TenantCredential.id == self._id)
                .values(token_cache_version=TenantCredential.token_cache_version)
                .execution_options(synchronize_session=False)
            )
            if locked.rowcount == 0:  # type: ignore[attr-defined]
                raise LoginRequired("the delegated credential was removed")
            row = uow.session.execute(
                select(
                    TenantCredential.token_cache_ciphertext, TenantCredential.token_cache_version
                ).where(TenantCredential.id == self._id)
            ).one()
            current, version = self._decrypt(row[0]), int(row[1])
            new = update_fn(current, version)
            if new != current:
                version += 1
                uow.session.execute(
                    update(TenantCredential)
                    .where(TenantCredential.id == self._id)
                    .values(
                        token_cache_ciphertext=self._box.encrypt(new.encode()) if new else None,
                        token_cache_version=version,
                    )
                    .execution_options(synchronize_session=False)
                )
            uow.commit()
        return new, version

    def _decrypt(self, ciphertext: str | None) -> str | None:
        return self._box.decrypt(ciphertext).decode() if ciphertext else None
