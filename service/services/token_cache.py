"""The database side of a delegated credential's msal token cache (encrypted, versioned).

No database lock is ever held while Entra is called: a refresher takes a short lease with one
committed UPDATE, calls Entra with no transaction open, then stores its result with a
compare-and-swap on the cache version (which also ends the lease).
"""

from __future__ import annotations

import time

from sqlalchemy import or_, select, update

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
        with self._database.unit_of_work(read_only=True) as uow:
            row = uow.session.execute(
                select(
                    TenantCredential.token_cache_ciphertext, TenantCredential.token_cache_version
                ).where(TenantCredential.id == self._id)
            ).first()
        if row is None:
            raise LoginRequired("the delegated credential was removed")
        return self._decrypt(row[0]), int(row[1])

    def claim_refresh(self, version: int, lease_s: float) -> bool:
        now = time.time()
        with self._database.unit_of_work() as uow:
            # Core UPDATEs leave the row's ETag version alone: a token refresh is not an edit.
            claimed = uow.session.execute(
                update(TenantCredential)
                .where(
                    TenantCredential.id == self._id,
                    TenantCredential.token_cache_version == version,
                    or_(
                        TenantCredential.token_refresh_lease_until.is_(None),
                        TenantCredential.token_refresh_lease_until < now,
                    ),
                )
                .values(token_refresh_lease_until=now + lease_s)
                .execution_options(synchronize_session=False)
            )
            uow.commit()
        return claimed.rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def store(self, version: int, serialized: str | None) -> int | None:
        ciphertext = self._box.encrypt(serialized.encode()) if serialized else None
        with self._database.unit_of_work() as uow:
            stored = uow.session.execute(
                update(TenantCredential)
                .where(
                    TenantCredential.id == self._id,
                    TenantCredential.token_cache_version == version,
                )
                .values(
                    token_cache_ciphertext=ciphertext,
                    token_cache_version=version + 1,
                    token_refresh_lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )
            uow.commit()
        return version + 1 if stored.rowcount == 1 else None  # type: ignore[attr-defined]

    def release(self, version: int) -> None:
        with self._database.unit_of_work() as uow:
            uow.session.execute(
                update(TenantCredential)
                .where(
                    TenantCredential.id == self._id,
                    TenantCredential.token_cache_version == version,
                )
                .values(token_refresh_lease_until=None)
                .execution_options(synchronize_session=False)
            )
            uow.commit()

    def _decrypt(self, ciphertext: str | None) -> str | None:
        return self._box.decrypt(ciphertext).decode() if ciphertext else None
