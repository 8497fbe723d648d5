"""A fake of the ``MlControlPlane`` port for unit tests of the reconciler's decisions.

It behaves like Azure where the reconciler depends on it: an update puts the service in
``Transitioning`` until its operation is polled to the end (a poll of the operation, or a read
of the service: each is a look at the running update), a second update meanwhile is refused
with 409, and it can hold reads or leave a write unanswered past its deadline (its PATCH lands
later), as a slow network does. Every write is recorded with the thread that sent it.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service.domain.targets import Capabilities, capabilities
from service.errors import AzureCallFailed, ServiceError, WriteNotSent, WriteOutcomeUnknown
from service.ports import AzureOperationStatus, CertificateInfo, MlTarget, ServiceSnapshot


@dataclass
class FakeService:
    name: str
    app_insights: bool = False
    state: str = "Healthy"
    pending: dict[str, Any] | None = None  # the running update's changes
    pending_id: str | None = None  # and its operation
    updated_at: datetime | None = None  # Azure's time of the service's last change


@dataclass
class FakeMl:
    services: dict[str, FakeService] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    read_errors: list[ServiceError] = field(default_factory=list)  # raised by reads, in order
    always_fail_reads: ServiceError | None = None
    # Reads wait on this gate while it is closed (cleared); ``reads_held`` counts the waiters.
    gate: threading.Event = field(default_factory=threading.Event)
    reads_held: int = 0
    hold_reads: int = 0  # how many of the next reads wait on the gate
    read_delay_s: float = 0.0  # every read takes this long (a slow network)
    # The next write gets no answer in time: it lands when ``write_lands`` is set.
    unanswered_writes: int = 0
    write_lands: threading.Event = field(default_factory=threading.Event)
    # The next writes send nothing (``WriteNotSent``): the read before each failed (a 429 with
    # Retry-After 0.3 s, ``read_failed``) or ended after its ``send_by`` (``read_slow``).
    unsent_writes: int = 0
    unsent_reason: str = "read_failed"
    send_bys: list[float | None] = field(default_factory=list)  # each start_update's send_by
    running_polls: int = 0  # the next polls of an operation answer "running"
    # Azure's time of the last change, set on a service when an update of it succeeds.
    update_time: datetime | None = None
    failing_updates: int = 0  # the next updates end failed (the service keeps its values)
    changed_after_update: int = 0  # the next updates end and someone sets the value back
    operation_polls: int = 0  # operation_status calls (the reads of a service not counted)
    _ended: dict[str, AzureOperationStatus] = field(default_factory=dict)  # by operation id
    poll_times: list[float] = field(default_factory=list)  # time.monotonic() of each poll
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, *, app_insights: bool = False) -> None:
        self.services[name] = FakeService(name, app_insights)

    # -- the port --------------------------------------------------------------------------
    def capabilities(self, kind: str) -> Capabilities:
        return capabilities(kind)

    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        return [self._snapshot(s) for s in self.services.values()]

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        with self._lock:
            hold = self.hold_reads > 0
            if hold:
                self.hold_reads -= 1
                self.reads_held += 1
        if hold:
            self.gate.wait(30)
        if self.read_delay_s:
            time.sleep(self.read_delay_s)
        if self.always_fail_reads is not None:
            raise self.always_fail_reads
        if self.read_errors:
            raise self.read_errors.pop(0)
        with self._lock:
            service = self.services.get(name)
            if service is not None and service.pending is not None:
                self._look_at_update(service)
            return None if service is None else self._snapshot(service)

    def start_update(
        self,
        target: MlTarget,
        name: str,
        *,
        app_insights: bool | None = None,
        model_data_collection: bool | None = None,
        expected_version: str | None = None,  # v2 only; these fake services are v1
        send_by: float | None = None,
    ) -> str:
        changes = {"app_insights": app_insights}
        with self._lock:
            self.send_bys.append(send_by)
            unsent = self.unsent_writes > 0
            if unsent:
                self.unsent_writes -= 1
        if unsent:
            failed = self.unsent_reason == "read_failed"
            raise WriteNotSent(
                f"update of '{name}' not sent: the read before it "
                + ("failed" if failed else "ended after its slot"),
                reason=self.unsent_reason,
                retry_after_s=0.3 if failed else None,
            )
        with self._lock:
            unanswered = self.unanswered_writes > 0
            if unanswered:
                self.unanswered_writes -= 1
        if not unanswered:
            return self._patch(name, changes)
        landed: dict[str, Any] = {}
        done = threading.Event()

        def send_late() -> None:  # the abandoned call: its PATCH reaches Azure later
            self.write_lands.wait(30)
            try:
                landed["id"] = self._patch(name, changes)
            except ServiceError as exc:
                landed["error"] = exc
            done.set()

        threading.Thread(target=send_late, daemon=True).start()

        def settle(timeout_s: float) -> str | None:
            if not done.wait(timeout_s):
                return None
            if "error" in landed:
                raise landed["error"]
            return str(landed["id"])

        raise WriteOutcomeUnknown("update got no answer in time", settle)

    def operation_status(
        self, target: MlTarget, name: str, operation_id: str
    ) -> AzureOperationStatus:
        with self._lock:
            self.operation_polls += 1
            service = self.services[name]
            if service.pending is not None and service.pending_id == operation_id:
                if not self._look_at_update(service):
                    return AzureOperationStatus("running")
            else:
                self.poll_times.append(time.monotonic())
            return self._ended.get(operation_id, AzureOperationStatus("succeeded"))

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        return ""

    def telemetry_roles(self, target: MlTarget, online_endpoint: str) -> dict[str, str | None]:
        return {}

    # -- helpers ---------------------------------------------------------------------------
    def _look_at_update(self, service: FakeService) -> bool:
        """A poll of the service's running update (under the lock): it ends unless
        ``running_polls`` says it still runs. True when it ended."""
        self.poll_times.append(time.monotonic())
        if self.running_polls > 0:
            self.running_polls -= 1
            return False
        assert service.pending is not None
        assert service.pending_id is not None
        status = AzureOperationStatus("succeeded")
        if self.failing_updates > 0:
            self.failing_updates -= 1
            status = AzureOperationStatus("failed", "the update failed: quota exceeded")
        else:
            service.app_insights = bool(service.pending["app_insights"])
            service.updated_at = self.update_time or service.updated_at
            if self.changed_after_update > 0:  # someone changed it back, out of band
                self.changed_after_update -= 1
                service.app_insights = not service.app_insights
        self._ended[service.pending_id] = status
        service.pending = service.pending_id = None
        service.state = "Healthy"
        return True

    def _patch(self, name: str, changes: dict[str, Any]) -> str:
        with self._lock:
            self.writes.append((name, changes))
            service = self.services[name]
            if service.pending is not None:
                raise AzureCallFailed(
                    "Azure ML: update web service: HTTP 409",
                    azure_status=409,
                    azure_code="Conflict",
                )
            service.pending = changes
            service.pending_id = f"op-{next(self._ids)}"
            service.state = "Transitioning"
            return service.pending_id

    @staticmethod
    def _snapshot(service: FakeService) -> ServiceSnapshot:
        return ServiceSnapshot(
            name=service.name,
            compute_type="AKS",
            state=service.state,
            app_insights_enabled=service.app_insights,
            data_collection_enabled=None,
            scoring_uri=None,
            updated_at=service.updated_at,
        )


class FakeIdentity:
    """An ``IdentityProvider`` whose credentials are opaque tokens (the fake ML ignores them)."""

    def credential(self, spec: Any) -> Any:
        return ("credential", spec.tenant_key)

    def forget(self, tenant_key: str) -> None:
        return None

    def verify(self, spec: Any) -> Any:
        raise NotImplementedError

    def subscription_tenant(self, spec: Any, subscription_id: str) -> str | None:
        raise NotImplementedError

    def start_device_flow(self, entra_tenant_id: str, client_id: str) -> Any:
        raise NotImplementedError

    def poll_device_flow(self, entra_tenant_id: str, client_id: str, state: Any) -> Any:
        raise NotImplementedError

    def inspect_certificate(self, pem: bytes) -> CertificateInfo:
        raise NotImplementedError
