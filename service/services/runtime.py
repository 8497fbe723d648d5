"""The per-process objects the use cases run on, built by a composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.config import Settings
from service.db.session import Database, UnitOfWork
from service.ports import DataExportControl, IdentityProvider, MlControlPlane, SecretBox
from service.services.api_keys import KeyCache
from service.services.log_gateway import LogGateway


@dataclass
class Runtime:
    settings: Settings
    database: Database
    secret_box: SecretBox
    identity: IdentityProvider
    ml: MlControlPlane
    logs: LogGateway
    key_cache: KeyCache = field(default_factory=KeyCache)  # API-key look-ups of this process
    exports: DataExportControl | None = None  # Log Analytics data export rules (retention)

    def uow(self) -> UnitOfWork:
        return self.database.unit_of_work()

    def close(self) -> None:
        """Close the Azure clients the adapters keep (their connection pools).

        Adapters that keep nothing (the tests' fakes) need no ``close``; those that do close
        every client they built. Called by each composition root when its process ends.
        """
        for part in (self.ml, self.logs, self.exports, self.identity):
            close = getattr(part, "close", None)
            if callable(close):
                close()
