"""The per-process objects the use cases run on, built by a composition root."""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.db.session import Database, UnitOfWork
from service.ports import IdentityProvider, MlControlPlane, SecretBox
from service.services.log_gateway import LogGateway


@dataclass
class Runtime:
    settings: Settings
    database: Database
    secret_box: SecretBox
    identity: IdentityProvider
    ml: MlControlPlane
    logs: LogGateway

    def uow(self) -> UnitOfWork:
        return self.database.unit_of_work()
