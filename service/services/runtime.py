"""The per-process objects the use cases run on, built by a composition root."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import partial

from service.config import Settings
from service.db.session import Database, UnitOfWork
from service.ports import DataExportControl, IdentityProvider, MlControlPlane, SecretBox
from service.services.api_keys import KeyCache
from service.services.audit_queue import AuditQueue, write_rows
from service.services.credential_memo import CredentialMemo
from service.services.log_gateway import LogGateway
from service.services.meter import Meter, NoMeter


@dataclass
class Runtime:
    settings: Settings
    database: Database
    secret_box: SecretBox
    identity: IdentityProvider
    ml: MlControlPlane
    logs: LogGateway
    # What this process remembers of who may reach what: API keys, log query targets.
    access_cache: KeyCache = field(default_factory=KeyCache)
    exports: DataExportControl | None = None  # Log Analytics data export rules (retention)
    meter: Meter = field(default_factory=NoMeter)  # what the use cases count (metrics)
    credential_memo: CredentialMemo = field(default_factory=CredentialMemo)  # tenants' Azure creds
    _audit: AuditQueue | None = field(default=None, init=False, repr=False)
    _audit_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def uow(self, *, read_only: bool = False) -> UnitOfWork:
        return self.database.unit_of_work(read_only=read_only)

    def audit_queue(self) -> AuditQueue:
        """This runtime's queue of query audit events and its writer (made on first use)."""
        with self._audit_lock:
            if self._audit is None:
                self._audit = AuditQueue(
                    partial(write_rows, self), self.settings.log_query.audit_queue
                )
            return self._audit

    def close(self) -> None:
        """Write the queued audit events, then close the Azure clients the adapters keep
        (their connection pools).

        Adapters that keep nothing (the tests' fakes) need no ``close``; those that do close
        every client they built. Called by each composition root when its process ends.
        """
        with self._audit_lock:
            queue = self._audit
        if queue is not None:
            queue.close()
        for part in (self.ml, self.logs, self.exports, self.identity):
            close = getattr(part, "close", None)
            if callable(close):
                close()
