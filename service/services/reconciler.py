"""The reconciler: level-triggered, idempotent ``reconcile_once()``.

Each tick: poll due device sign-ins, start discovery of due workspaces (which queues drift
corrections), then lease due operations up to the free threads and the tenants' caps, and run
them in a thread pool. One attempt of an operation:

1. if a previous attempt (maybe another worker's, before a crash) started an Azure operation,
   follow that one instead of writing again;
2. read the service; if it is mid-operation, wait; if it already matches the effective policy,
   succeed without writing (re-applying is idempotent anyway: PATCH replaces a value);
3. reserve a slot of the subscription's write budget, ``update(...)``, store the Azure
   operation id (lease-guarded), poll it ourselves, then re-read the service to confirm.

Never two attempts of one operation in flight:
- each attempt holds a fencing token (``Claim.fence``); every state change it makes is
  conditional on the token, so an attempt whose lease was taken over cannot write anything;
- the lease is renewed (fenced) before every Azure call once a third of it has passed, while
  waiting, and always right before a write: a stale attempt never sends one;
- a tick never claims an operation this worker still runs an attempt of;
- a write that got no answer in time may still be applied (its call goes on in the background):
  the attempt keeps its lease and waits for that call to end, then follows what it started;
  nothing else is written to the service meanwhile, and every attempt observes before writing.

Temporary failures are retried with backoff and jitter honouring Retry-After; reads are retried
in place when the wait is short; permanent failures end the operation ``failed``. How attempts
are charged against ``max_attempts`` (crashes are not): see ``leases``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import select

from service.db.models import Endpoint, Workspace
from service.db.types import utcnow
from service.domain.policy import Observed, changes_needed
from service.domain.retry import RetryPolicy
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    NotFound,
    ServiceError,
    WriteOutcomeUnknown,
    azure_answer,
    is_temporary,
    server_retry_after_s,
)
from service.metrics import RECONCILE_LAG, RECONCILE_SWEEP, THROTTLE_WAITS
from service.ports import MlTarget, ServiceSnapshot
from service.services import leases, retention, retention_apply
from service.services.device_logins import poll_due_device_logins
from service.services.discovery import discover, due_workspaces, lock_workspace, target_of
from service.services.leases import AttemptRecord, Claim
from service.services.operations import PolicyIndex
from service.services.operations_stats import oldest_due_age_s
from service.services.rollouts import rollout_group, take_slot
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")
IN_PLACE_RETRY_MAX_S = 5.0  # a read is retried in the same attempt when the wait is this short
READ_TRIES = 4


@dataclass
class Outcome:
    """How an attempt ended: ``succeeded``, ``retry``, ``failed``, ``cancelled``, ``released``
    (stopping: the lease is handed back for another worker), ``lost`` (taken over or cancelled:
    nothing to write) or ``abandoned`` (stopping while a write may still be sent: the lease is
    left to expire after this process has exited)."""

    state: str
    error: str | None = None
    delay_s: float = 0.0
    refund: bool = False  # a wait, not a failure: the attempt does not count
    keep_azure_operation: bool = False
    snapshot: ServiceSnapshot | None = None
    azure_status: int | None = None
    azure_code: str | None = None
    retry_after_s: float | None = None


@dataclass
class TickReport:
    discoveries: int = 0
    claimed: int = 0
    in_flight: int = 0
    finished: dict[str, int] = field(default_factory=dict)


class _Stopping(Exception):
    """The worker is stopping: hand the lease back."""


class _LeaseLost(Exception):
    """The attempt's fencing token is no longer current (taken over, or cancelled)."""


class _Abandon(Exception):
    """Stopping while a write of this attempt may still be sent: keep the lease until exit."""


class _Lease:
    """One attempt's hold on its operation, renewed with its fencing token.

    ``keep()`` renews when a third of the lease has passed since the last renewal (call it before
    every Azure call: a call lasts at most half a lease), ``keep(now=True)`` always (before a
    write); ``wait()`` sleeps while keeping it. Raises ``_LeaseLost`` once it is not ours.
    """

    def __init__(self, reconciler: Reconciler, claim: Claim) -> None:
        self._rec = reconciler
        self.claim = claim
        self._renewed = claim.leased_at or time.monotonic()
        self.azure_operation_id = claim.azure_operation_id

    def keep(self, *, now: bool = False, **changes: Any) -> None:
        third = self._rec.cfg.lease_s / 3
        if not (now or changes) and time.monotonic() - self._renewed < third:
            return
        asked = time.monotonic()
        if not leases.renew(self._rec.rt, self.claim, self._rec.worker_id, **changes):
            raise _LeaseLost
        self._renewed = asked

    def keep_for_write(self) -> None:
        """Renew right before a write, so that the lease outlasts the write's call deadline even
        if the renewal itself was slow (a loaded database); else do not write now."""
        cfg = self._rec.cfg
        for _ in range(3):
            self.keep(now=True)
            if time.monotonic() - self._renewed < cfg.lease_s - cfg.call_timeout_s:
                return
        raise AzureCallFailed("the database is too slow to hold the lease through a write")

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds`` keeping the lease; ``_Stopping`` when the worker stops."""
        deadline = time.monotonic() + seconds
        while True:
            self.keep()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._rec.stopping.wait(min(left, self._rec.cfg.lease_s / 3)):
                raise _Stopping


class Reconciler:
    """One worker's reconcile loop state (its id, thread pool and in-flight work)."""

    def __init__(
        self,
        rt: Runtime,
        worker_id: str | None = None,
        *,
        only_tenants: set[str] | None = None,
    ) -> None:
        self.rt = rt
        # None: every tenant. A set limits this worker to those tenants (sharding, tests).
        self.only_tenants = only_tenants
        self.cfg = rt.settings.reconciler
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.retry = RetryPolicy(self.cfg.retry_base_s, self.cfg.retry_max_s, self.cfg.max_attempts)
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.cfg.worker_threads, thread_name_prefix="reconcile")
        self._in_flight: dict[str, Future[str]] = {}
        self._discovering: dict[str, Future[None]] = {}
        self._finished: dict[str, int] = {}
        self._lock = threading.Lock()
        self._next_sign_in_poll = 0.0

    # -- the loop --------------------------------------------------------------------------
    def reconcile_once(self) -> TickReport:
        """One tick; returns at once (operations keep running in the pool)."""
        started = time.perf_counter()
        try:
            return self._tick()
        finally:
            RECONCILE_SWEEP.observe(time.perf_counter() - started)
            with contextlib.suppress(ServiceError):
                RECONCILE_LAG.set(oldest_due_age_s(self.rt))

    def _tick(self) -> TickReport:
        report = TickReport()
        self._reap()
        if self.stopping.is_set():
            return report
        if time.monotonic() >= self._next_sign_in_poll:
            # Device-code polls are due every few seconds at most: not on every busy tick.
            self._next_sign_in_poll = time.monotonic() + max(1.0, self.cfg.interval_s)
            try:
                poll_due_device_logins(self.rt)
            except Exception:  # a sign-in poll must never stop reconciliation
                log.warning("polling device sign-ins failed", exc_info=True)
        slots = max(0, self.cfg.worker_threads - len(self._in_flight))
        for ws_id in due_workspaces(self.rt, limit=max(1, slots), only_tenants=self.only_tenants):
            if ws_id not in self._discovering:
                self._discovering[ws_id] = self._pool.submit(self._discover, ws_id)
                report.discoveries += 1
        capacity = self.cfg.worker_threads - len(self._in_flight) - len(self._discovering)
        # Never claim what an attempt of ours still runs, even when its lease looks expired
        # (a claim would start a second attempt beside it and lose track of the first).
        for claim in leases.claim(
            self.rt,
            self.worker_id,
            capacity,
            only_tenants=self.only_tenants,
            exclude=set(self._in_flight),
        ):
            self._in_flight[claim.id] = self._pool.submit(self._run, claim)
            report.claimed += 1
        report.in_flight = len(self._in_flight)
        with self._lock:
            report.finished, self._finished = self._finished, {}
        return report

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; then hand back what is in flight and return."""
        while not stop.is_set():
            try:
                report = self.reconcile_once()
                busy = report.claimed or report.discoveries
            except ServiceError as exc:  # e.g. the database is briefly unavailable
                log.warning("reconcile tick failed: %s", exc.detail)
                busy = False
            stop.wait(0.05 if busy else self.cfg.interval_s)
        self.close()

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for everything in flight (tests and benchmarks)."""
        pending: list[Future[Any]] = [*self._in_flight.values(), *self._discovering.values()]
        wait(pending, timeout=timeout_s)
        self._reap()

    def close(self) -> None:
        """Graceful stop: attempts hand their leases back at their next wait, then return."""
        self.stopping.set()
        self._pool.shutdown(wait=True)
        self._reap()

    def _reap(self) -> None:
        for key, future in list(self._in_flight.items()):
            if future.done():
                del self._in_flight[key]
        for key, done in list(self._discovering.items()):
            if done.done():
                del self._discovering[key]

    def _discover(self, workspace_id: str) -> None:
        try:
            discover(self.rt, workspace_id)
        except ServiceError as exc:
            log.info("discovery of workspace %s failed: %s", workspace_id, exc.code)
        except Exception:
            log.exception("discovery of workspace %s crashed", workspace_id)
        try:
            retention.discover_exports(self.rt, workspace_id)
        except ServiceError as exc:
            log.info("export rule discovery of workspace %s failed: %s", workspace_id, exc.code)
        except Exception:
            log.exception("export rule discovery of workspace %s crashed", workspace_id)

    # -- one attempt -----------------------------------------------------------------------
    def _run(self, claim: Claim) -> str:
        lease = _Lease(self, claim)
        try:
            outcome = self._attempt(claim, lease)
        except _Stopping:
            outcome = Outcome("released", keep_azure_operation=True)
        except _LeaseLost:
            outcome = Outcome("lost")
        except _Abandon:
            outcome = Outcome("abandoned")
        except ServiceError as exc:
            temporary = is_temporary(exc)
            retry_after = server_retry_after_s(exc)
            status, code = azure_answer(exc)
            # Keep any Azure operation id: the next attempt follows it instead of writing again.
            outcome = Outcome(
                "retry" if temporary else "failed",
                exc.detail[:1000],
                self.retry.delay_s(claim.attempts, retry_after),
                keep_azure_operation=True,
                azure_status=status,
                azure_code=code,
                retry_after_s=retry_after,
            )
        except Exception as exc:
            log.exception("operation %s crashed", claim.id)
            outcome = Outcome("failed", f"internal error ({type(exc).__name__})")
        recorded = self._finish(claim, outcome, lease.azure_operation_id)
        with self._lock:
            self._finished[recorded] = self._finished.get(recorded, 0) + 1
        return recorded

    def _attempt(self, claim: Claim, lease: _Lease) -> Outcome:
        if retention_apply.is_export_operation(claim):
            return self._export_attempt(claim, lease)
        ws, target = self._target(claim)
        name = claim.endpoint_name
        if claim.azure_operation_id:
            followed = self._follow(claim, lease, target, claim.azure_operation_id)
            if followed is not None:
                return followed
        snapshot = self._read(lease, lambda: self.rt.ml.get_service(target, name))
        if snapshot is None:
            return Outcome("cancelled", "the endpoint no longer exists in Azure")
        if snapshot.in_progress:
            # Someone's update (maybe ours, from an attempt that died before saving its id)
            # is running: writing now would collide. Look again shortly.
            return Outcome(
                "retry",
                "an update is in progress on the service",
                self.cfg.poll_interval_s,
                refund=True,
                snapshot=snapshot,
            )
        changes = self._changes(claim, snapshot)
        if not changes:
            return Outcome("succeeded", snapshot=snapshot)
        waiting = self._rollout_slot(claim, snapshot)
        if waiting is not None:
            return waiting
        wait_s = leases.reserve_write(self.rt, ws.subscription_id)
        if wait_s > 0:
            THROTTLE_WAITS.labels("subscription_writes").inc()
        lease.wait(wait_s)
        # THE fence: renewed with this attempt's token right before the write, so an attempt
        # that lost its lease (taken over, or cancelled) never sends one.
        lease.keep_for_write()
        try:
            operation_id = self.rt.ml.start_update(
                target,
                name,
                app_insights=changes.get("app_insights"),
                model_data_collection=changes.get("model_data_collection"),
                expected_version=snapshot.version,
            )
        except WriteOutcomeUnknown as unanswered:
            operation_id = self._settle(lease, unanswered)
        lease.azure_operation_id = operation_id
        lease.keep(now=True, azure_operation_id=operation_id, desired=changes)
        followed = self._follow(claim, lease, target, operation_id)
        assert followed is not None
        return followed

    def _export_attempt(self, claim: Claim, lease: _Lease) -> Outcome:
        """A retention (data export rule) operation: its own module does the work, waiting and
        fencing each write through this attempt's lease."""
        state, error = retention_apply.attempt(
            self.rt, claim, pause=lease.wait, fence=lease.keep_for_write
        )
        delay = self.retry.delay_s(claim.attempts) if state == "retry" else 0.0
        return Outcome(state, error, delay)

    def _settle(self, lease: _Lease, unanswered: WriteOutcomeUnknown) -> str:
        """Wait for a write that got no answer in time to end, keeping the lease meanwhile: it
        may still reach Azure, so no other attempt may start. Returns the operation it started,
        or raises the error it ended with (the next attempt observes before writing again)."""
        log.warning("operation %s: %s; waiting for it to end", lease.claim.id, unanswered.detail)
        deadline = time.monotonic() + self.cfg.operation_timeout_s
        step = min(self.cfg.poll_interval_s, self.cfg.lease_s / 6)
        while True:
            operation_id = unanswered.settle(step)
            if operation_id is not None:
                return operation_id
            if time.monotonic() > deadline:
                raise AzureRejected(
                    "the update got no answer within "
                    f"{self.cfg.operation_timeout_s:g} s; whether Azure applied it is unknown"
                )
            if self.stopping.is_set():
                raise _Abandon
            try:
                lease.keep()
            except _LeaseLost:
                log.error(
                    "operation %s: lease lost while its write may still be sent", lease.claim.id
                )
                raise
            except ServiceError as exc:  # the database, briefly: keep waiting and renewing
                log.warning(
                    "operation %s: could not renew the lease: %s", lease.claim.id, exc.detail
                )

    def _follow(
        self, claim: Claim, lease: _Lease, target: MlTarget, operation_id: str
    ) -> Outcome | None:
        """Poll an Azure operation to its end, then confirm by re-reading the service.

        None when the operation is unknown to Azure (then the attempt starts over).
        """
        deadline = time.monotonic() + self.cfg.operation_timeout_s
        name = claim.endpoint_name
        while True:
            try:
                status = self._read(
                    lease, lambda: self.rt.ml.operation_status(target, name, operation_id)
                )
            except NotFound:
                return None
            if status.state == "failed":
                return Outcome("failed", f"the Azure operation failed: {status.error}")
            if status.state == "succeeded":
                break
            if time.monotonic() > deadline:
                return Outcome(
                    "failed",
                    f"the Azure operation did not finish within {self.cfg.operation_timeout_s:g} s",
                )
            lease.wait(self.cfg.poll_interval_s)
        snapshot = self._read(lease, lambda: self.rt.ml.get_service(target, name))
        if snapshot is None:
            return Outcome("cancelled", "the endpoint no longer exists in Azure")
        remaining = self._changes(claim, snapshot)
        if remaining:
            # Changed again out of band while we worked: level-triggered, so go round again.
            return Outcome(
                "retry",
                "the service still differs after the update",
                self.retry.delay_s(claim.attempts),
                snapshot=snapshot,
            )
        return Outcome("succeeded", snapshot=snapshot)

    def _rollout_slot(self, claim: Claim, snapshot: ServiceSnapshot) -> Outcome | None:
        """Kinds whose change rolls instances wait for a parallel-update slot of their online
        endpoint (the policy's ``max_parallel_updates``); None when the attempt may write."""
        caps = self.rt.ml.capabilities(snapshot.target_kind)
        if not caps.online or snapshot.online_endpoint is None:
            return None
        with self.rt.uow() as uow:
            limit = (
                PolicyIndex.load(uow.session, claim.tenant_id)
                .effective(claim.workspace_id, claim.endpoint_name)
                .parallel_updates
            )
        group = rollout_group(claim.workspace_id, snapshot.online_endpoint)
        slot = take_slot(self.rt, claim, self.worker_id, group, limit)
        if slot == "taken":
            return None
        if slot == "lost":
            raise _LeaseLost  # fenced like every state change: taken over, or cancelled
        return Outcome(
            "retry",
            f"waiting: {limit} deployment(s) of online endpoint '{snapshot.online_endpoint}' "
            "are being updated (max_parallel_updates)",
            self.cfg.poll_interval_s,
            refund=True,
            snapshot=snapshot,
        )

    def _read(self, lease: _Lease, call: Any) -> Any:
        """A read, retried in place on temporary errors whose wait is short."""
        for attempt in range(1, READ_TRIES + 1):
            lease.keep()
            try:
                return call()
            except ServiceError as exc:
                if not is_temporary(exc) or attempt == READ_TRIES:
                    raise
                delay = self.retry.delay_s(attempt, server_retry_after_s(exc))
                if delay > IN_PLACE_RETRY_MAX_S:
                    raise
                lease.wait(delay)
        raise AzureCallFailed("unreachable")  # pragma: no cover - the loop returns or raises

    def _target(self, claim: Claim) -> tuple[Workspace, MlTarget]:
        with self.rt.uow() as uow:
            ws = uow.session.get(Workspace, claim.workspace_id)
            if ws is None:
                raise AzureRejected("the workspace was deleted")
            uow.session.expunge(ws)
        return ws, target_of(self.rt, ws)

    def _changes(self, claim: Claim, snapshot: ServiceSnapshot) -> dict[str, bool]:
        """What still differs from the endpoint's effective policy *now* (level-triggered)."""
        with self.rt.uow() as uow:
            policy = PolicyIndex.load(uow.session, claim.tenant_id).effective(
                claim.workspace_id, claim.endpoint_name
            )
        observed = Observed(
            snapshot.compute_type, snapshot.app_insights_enabled, snapshot.data_collection_enabled
        )
        return changes_needed(policy, observed)

    # -- results ---------------------------------------------------------------------------
    def _finish(self, claim: Claim, outcome: Outcome, azure_operation_id: str | None) -> str:
        """Record the outcome (while the attempt's fencing token is current); returns the state
        written."""
        if outcome.state in ("lost", "abandoned"):
            return outcome.state  # the new owner (or the one after this process) decides
        now = utcnow()
        values: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
        charged = True
        if outcome.state == "released":
            # Handed back: the next claim takes it over at once and this attempt is refunded.
            values.update(lease_owner=self.worker_id, lease_expires_at=now - timedelta(seconds=1))
            values.update(state="running")
            attempt_outcome, charged = "released", False
        elif outcome.state == "retry" and (outcome.refund or claim.attempts < claim.max_attempts):
            values.update(
                state="queued",
                not_before=now + timedelta(seconds=outcome.delay_s),
                last_error=outcome.error,
            )
            attempt_outcome = "retry"
            if outcome.refund:
                values["attempts"] = claim.attempts - 1
                attempt_outcome, charged = "waited", False
            if not outcome.keep_azure_operation:
                values["azure_operation_id"] = None
        else:
            state = "failed" if outcome.state == "retry" else outcome.state
            values.update(state=state, finished_at=now, last_error=outcome.error)
            values["rollout_group"] = None
            attempt_outcome = state
        record = AttemptRecord(
            outcome=attempt_outcome,
            charged=charged,
            error=outcome.error,
            azure_status=outcome.azure_status,
            azure_code=outcome.azure_code,
            retry_after_s=outcome.retry_after_s,
            retry_at=values.get("not_before"),
            azure_operation_id=azure_operation_id,
        )
        try:
            with leases.write_transaction(self.rt) as uow:
                if outcome.snapshot is not None:
                    # Discovery may be recording this workspace: take turns (same lock order).
                    lock_workspace(uow.session, claim.workspace_id)
                finished = leases.finish(self.rt, claim, self.worker_id, uow, record, **values)
                if finished and outcome.snapshot is not None:
                    _observe(uow.session, claim, outcome.snapshot)
                uow.commit()
        except ServiceError as exc:
            # The lease will expire and another attempt re-reads Azure: nothing is lost.
            log.warning("could not record the outcome of operation %s: %s", claim.id, exc.detail)
            return "unrecorded"
        return str(values.get("state", "running")) if finished else "lost"


def _observe(session: Any, claim: Claim, snapshot: ServiceSnapshot) -> None:
    ep = session.scalar(
        select(Endpoint).where(
            Endpoint.workspace_id == claim.workspace_id, Endpoint.name == claim.endpoint_name
        )
    )
    if ep is None:
        return
    ep.state = snapshot.state
    ep.app_insights_enabled = snapshot.app_insights_enabled
    ep.data_collection_enabled = snapshot.data_collection_enabled
    ep.azure_updated_at = snapshot.updated_at or ep.azure_updated_at
    ep.observed_at = utcnow()
    ep.vanished_at = None
