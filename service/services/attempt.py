"""One attempt of an operation: the reconciler's decisions, run by a worker thread.

An attempt of an ``apply_policy`` operation:

1. if a previous attempt (maybe another worker's, before a crash) started an Azure operation,
   follow that one instead of writing again;
2. read the service; if it is mid-operation, wait; if it already matches the effective policy,
   succeed without writing (re-applying is idempotent anyway: PATCH replaces a value);
3. reserve a slot of the subscription's write budget, ``update(...)``, store the Azure
   operation id (lease-guarded), then leave the running operation to the worker's follower:
   the attempt ends its thread's work with :class:`Following`, and ``follow_step`` reads the
   service once per step (the worker runs a step when the next poll is due, in any free
   thread) until it is no longer mid-operation: the read that sees the end also confirms the
   outcome, and the operation itself is asked only when the service, at rest, still differs
   (did it fail, and why?). Azure's operations take minutes: a thread (and a place in the
   tenant's cap) held for all of it made the operation's duration, not Azure's write budget,
   bound how fast a fleet converged.

The worker (``service.worker.reconciler``) owns the lease the attempt runs under: the attempt
calls ``lease.keep()`` before every Azure call, ``lease.keep_for_write()`` right before a write
(THE fence: an attempt whose lease was taken over never sends one) and ``lease.wait()`` to
sleep. A write that got no answer in time may still be applied: the attempt keeps its lease and
waits for that call to end, then follows what it started.

Temporary failures are retried with backoff and jitter honouring Retry-After; reads are retried
in place when the wait is short; permanent failures end the operation ``failed``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from service.db.models import Workspace
from service.db.types import utcnow
from service.domain.policy import Observed, changes_needed
from service.domain.retry import RetryPolicy
from service.domain.states import AttemptEnd
from service.domain.targets import split_target
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    NotFound,
    ServiceError,
    WriteNotSent,
    WriteOutcomeUnknown,
    azure_answer,
    is_temporary,
    server_retry_after_s,
)
from service.ports import MlTarget, ServiceSnapshot
from service.services import leases, retention_apply
from service.services.azure_credentials import workspace_credential_spec
from service.services.db_writes import SlotTries
from service.services.discovery import target_of
from service.services.leases import Claim
from service.services.outcomes import Outcome
from service.services.planning import PolicyIndex
from service.services.rollouts import rollout_group, take_slot
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")
IN_PLACE_RETRY_MAX_S = 5.0  # a read is retried in the same attempt when the wait is this short
READ_TRIES = 4
# A service just written is not looked at sooner: an update rolls its instances (minutes in
# Azure; Learn: "Deploy and score a model by using an online endpoint"), so an earlier read finds
# it running for certain and only costs a call on both sides.
FIRST_LOOK_AFTER_S = 2.0
# A running operation is polled again after this share of the time it has been followed (at
# least OPERATION_POLL_INTERVAL_S, at most OPERATION_POLL_MAX_INTERVAL_S): its end is seen at
# most that share of its age late.
POLL_AGE_SHARE = 0.25


class Stopping(Exception):
    """The worker is stopping: hand the lease back."""


class LeaseLost(Exception):
    """The attempt's fencing token is no longer current (taken over, or cancelled)."""


class Abandon(Exception):
    """Stopping while a write of this attempt may still be sent: keep the lease until exit."""


class AttemptLease(Protocol):
    """The worker's hold on the operation an attempt runs (``service.worker.reconciler``).

    ``keep`` renews when due (always with ``now``, storing ``changes``), ``keep_for_write``
    renews so that the lease outlasts a write's call deadline, ``wait`` sleeps keeping it. They
    raise :class:`LeaseLost` once the lease is not the attempt's, ``wait`` :class:`Stopping`
    when the worker stops.
    """

    claim: Claim
    azure_operation_id: str | None

    def keep(self, *, now: bool = False, **changes: Any) -> None: ...

    def keep_for_write(self) -> None: ...

    def wait(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Following:
    """The attempt goes on without a thread: its Azure operation runs, and its worker polls it
    with :func:`follow_step` ``next_poll_s`` from now (keeping the lease meanwhile: a step comes
    at most a third of a lease after the last)."""

    target: MlTarget
    operation_id: str
    followed_at: float  # time.monotonic() when this attempt began following it
    next_poll_s: float


def run_attempt(
    rt: Runtime, claim: Claim, lease: AttemptLease, worker_id: str, stopping: threading.Event
) -> Outcome | Following:
    """Run one attempt of ``claim`` to its outcome, or until it only has an Azure operation to
    follow (never raises for a failure of the work)."""
    return _guarded(rt, claim, lease, worker_id, stopping, _Attempt.run)


def follow_step(
    rt: Runtime,
    claim: Claim,
    lease: AttemptLease,
    worker_id: str,
    stopping: threading.Event,
    following: Following,
) -> Outcome | Following:
    """One step of an attempt that follows its Azure operation: read its service once; the
    outcome when the operation ended (that read confirms it), else when to look again."""
    return _guarded(rt, claim, lease, worker_id, stopping, lambda attempt: attempt.step(following))


def _guarded(
    rt: Runtime,
    claim: Claim,
    lease: AttemptLease,
    worker_id: str,
    stopping: threading.Event,
    work: Callable[[_Attempt], Outcome | Following],
) -> Outcome | Following:
    retry = RetryPolicy(
        rt.settings.reconciler.retry_base_s,
        rt.settings.reconciler.retry_max_s,
        rt.settings.reconciler.max_attempts,
    )
    try:
        return work(_Attempt(rt, claim, lease, worker_id, stopping, retry))
    except Stopping:
        return Outcome(AttemptEnd.RELEASED, keep_azure_operation=True)
    except LeaseLost:
        return Outcome(AttemptEnd.LOST)
    except Abandon:
        return Outcome(AttemptEnd.ABANDONED)
    except ServiceError as exc:
        temporary = is_temporary(exc)
        retry_after = server_retry_after_s(exc)
        status, code = azure_answer(exc)
        # Keep any Azure operation id: the next attempt follows it instead of writing again.
        return Outcome(
            AttemptEnd.RETRY if temporary else AttemptEnd.FAILED,
            exc.detail[:1000],
            retry.delay_s(claim.attempts, retry_after),
            keep_azure_operation=True,
            azure_status=status,
            azure_code=code,
            retry_after_s=retry_after,
            throttled=temporary and status == 429,
        )
    except Exception as exc:
        log.exception("operation %s crashed", claim.id)
        return Outcome(AttemptEnd.FAILED, f"internal error ({type(exc).__name__})")


class _Attempt:
    def __init__(
        self,
        rt: Runtime,
        claim: Claim,
        lease: AttemptLease,
        worker_id: str,
        stopping: threading.Event,
        retry: RetryPolicy,
    ) -> None:
        self.rt = rt
        self.cfg = rt.settings.reconciler
        self.claim = claim
        self.lease = lease
        self.worker_id = worker_id
        self.stopping = stopping
        self.retry = retry

    def run(self) -> Outcome | Following:
        claim = self.claim
        if retention_apply.is_export_operation(claim):
            return self._export_attempt()
        ws, target, index = self._target()
        if claim.azure_operation_id:
            # A previous attempt started it: follow that one instead of writing again.
            followed = self._poll(target, claim.azure_operation_id, time.monotonic())
            if isinstance(followed, Following):
                self.lease.keep(now=True, following_since=utcnow())
            if followed is not None:
                return followed
        return self._apply(ws, target, index)

    def step(self, following: Following) -> Outcome | Following:
        followed = self._poll(following.target, following.operation_id, following.followed_at)
        if followed is not None:
            return followed
        # Azure no longer knows the operation and the service still differs: start over
        # (observe, then write if needed), in this thread and counted in the tenant's cap again.
        self.lease.keep(now=True, following_since=None)
        return self._apply(*self._target())

    def _apply(self, ws: Workspace, target: MlTarget, index: PolicyIndex) -> Outcome | Following:
        """Observe, and write what differs from the effective policy; then follow the write."""
        lease, name = self.lease, self.claim.endpoint_name
        online = split_target(name)
        if online is not None:
            # A v2 deployment waits for its online endpoint's update slot before reading it:
            # a deployment that waits reads nothing (it re-reads once it has the slot).
            waiting = self._rollout_slot(online[0], index)
            if waiting is not None:
                return waiting
        snapshot = self._read(lambda: self.rt.ml.get_service(target, name))
        if snapshot is None:
            return Outcome(AttemptEnd.CANCELLED, "the endpoint no longer exists in Azure")
        if snapshot.in_progress:
            # Someone's update (maybe ours, from an attempt that died before saving its id)
            # is running: writing now would collide. Look again shortly.
            return Outcome(
                AttemptEnd.RETRY,
                "an update is in progress on the service",
                self.cfg.poll_interval_s,
                refund=True,
                snapshot=snapshot,
            )
        changes = self._changes(snapshot, index)
        if not changes:
            return Outcome(AttemptEnd.SUCCEEDED, snapshot=snapshot)
        operation_id = self._write(ws, target, name, changes, snapshot.version)
        lease.azure_operation_id = operation_id
        lease.keep(
            now=True, azure_operation_id=operation_id, desired=changes, following_since=utcnow()
        )
        # Not looked at now: an operation just started has not ended (nor before a step must
        # renew the lease, a third of it).
        first_look_s = min(max(FIRST_LOOK_AFTER_S, self._next_poll_s(0.0)), self.cfg.lease_s / 3)
        return Following(target, operation_id, time.monotonic(), first_look_s)

    def _write(
        self,
        ws: Workspace,
        target: MlTarget,
        name: str,
        changes: dict[str, bool],
        version: str | None,
    ) -> str:
        """Send the update in a slot of the subscription's write budget; returns the Azure
        operation id. A write the adapter did not send because the read before it failed or
        ended after its slot (``WriteNotSent``) takes a new slot, after the read's Retry-After;
        ``WriteSlotMissed`` once SLOT_TRIES slots were reserved for it, late ones included; a
        read that failed READ_TRIES times is raised (the attempt is retried later), as a read
        retried in place would be. A write that got no answer in time is waited for
        (:meth:`_settle`)."""
        failed_reads = 0
        tries = SlotTries()  # every slot this write reserves, whichever way it was given up
        while True:
            # THE fence (keep_for_write): renewed with this attempt's token right before the
            # write, so an attempt that lost its lease (taken over, or cancelled) never sends one.
            slot = leases.take_write_slot(
                self.rt, ws.subscription_id, self.lease.wait, self.lease.keep_for_write, tries=tries
            )
            try:
                operation_id = self.rt.ml.start_update(
                    target,
                    name,
                    app_insights=changes.get("app_insights"),
                    model_data_collection=changes.get("model_data_collection"),
                    expected_version=version,
                    send_by=slot.send_by,
                )
            except WriteOutcomeUnknown as unanswered:
                return self._settle(unanswered, slot)
            except WriteNotSent as not_sent:
                leases.write_ended(self.rt, slot, sent=False)
                self.rt.meter.write_slot_missed(not_sent.reason)
                if not_sent.reason == "read_failed":
                    failed_reads += 1
                    if failed_reads >= READ_TRIES:
                        raise
                log.debug("operation %s: %s; taking another slot", self.claim.id, not_sent.detail)
                if not_sent.retry_after_s:  # Azure's, for the read: the next one waits it out
                    self.lease.wait(not_sent.retry_after_s)
                continue
            except BaseException:  # answered with an error, or it may have been sent
                leases.write_ended(self.rt, slot)
                raise
            leases.write_ended(self.rt, slot)
            return operation_id

    def _export_attempt(self) -> Outcome:
        """A retention (data export rule) operation: its own module does the work, waiting and
        fencing each write through this attempt's lease."""
        state, error = retention_apply.attempt(
            self.rt, self.claim, pause=self.lease.wait, fence=self.lease.keep_for_write
        )
        delay = self.retry.delay_s(self.claim.attempts) if state == AttemptEnd.RETRY else 0.0
        return Outcome(state, error, delay)

    def _settle(self, unanswered: WriteOutcomeUnknown, slot: leases.WriteSlot) -> str:
        """Wait for a write that got no answer in time to end, keeping the lease meanwhile: it
        may still reach Azure, so no other attempt may start, and it counts against its
        subscription's write budget until it ends. Returns the operation it started, or raises
        the error it ended with (the next attempt observes before writing again)."""
        claim_id = self.claim.id
        log.warning("operation %s: %s; waiting for it to end", claim_id, unanswered.detail)
        deadline = time.monotonic() + self.cfg.operation_timeout_s
        step = min(self.cfg.poll_interval_s, self.cfg.lease_s / 6)
        while True:
            try:
                leases.write_pending(self.rt, slot, 3 * step)
            except ServiceError as exc:  # the database, briefly: counted until its horizon
                log.warning("operation %s: could not count its write: %s", claim_id, exc.detail)
            try:
                operation_id = unanswered.settle(step)
            except BaseException:  # the call ended, with its error
                leases.write_ended(self.rt, slot)
                raise
            if operation_id is not None:
                leases.write_ended(self.rt, slot)
                return operation_id
            if time.monotonic() > deadline:
                raise AzureRejected(
                    "the update got no answer within "
                    f"{self.cfg.operation_timeout_s:g} s; whether Azure applied it is unknown"
                )
            if self.stopping.is_set():
                raise Abandon
            try:
                self.lease.keep()
            except LeaseLost:
                log.error("operation %s: lease lost while its write may still be sent", claim_id)
                raise
            except ServiceError as exc:  # the database, briefly: keep waiting and renewing
                log.warning("operation %s: could not renew the lease: %s", claim_id, exc.detail)

    def _poll(
        self, target: MlTarget, operation_id: str, followed_at: float
    ) -> Outcome | Following | None:
        """Follow an Azure operation one step by reading its service (the read that sees it at
        rest is also the confirming read: one call per step, not a poll and then a read). While
        the service is mid-operation, when to look again (:meth:`_next_poll_s`); at rest and as
        the policy wants, the outcome; at rest but still different, the operation says why: it
        failed, it ended and the service was changed since (go round again), or it has not
        shown on the service yet. None when Azure does not know the operation (then the attempt
        starts over). ``followed_at``: when this attempt began following it
        (``operation_timeout_s`` counts from there)."""
        name = self.claim.endpoint_name
        snapshot = self._read(lambda: self.rt.ml.get_service(target, name))
        if snapshot is None:
            return Outcome(AttemptEnd.CANCELLED, "the endpoint no longer exists in Azure")
        if not snapshot.in_progress:
            if not self._changes(snapshot):
                return Outcome(AttemptEnd.SUCCEEDED, snapshot=snapshot)
            try:
                status = self._read(lambda: self.rt.ml.operation_status(target, name, operation_id))
            except NotFound:
                return None
            if status.state == "failed":
                return Outcome(AttemptEnd.FAILED, f"the Azure operation failed: {status.error}")
            if status.state == "succeeded":
                # Changed again out of band while we worked: level-triggered, so go round again.
                return Outcome(
                    AttemptEnd.RETRY,
                    "the service still differs after the update",
                    self.retry.delay_s(self.claim.attempts),
                    snapshot=snapshot,
                )
        age = time.monotonic() - followed_at
        if age > self.cfg.operation_timeout_s:
            return Outcome(
                AttemptEnd.FAILED,
                f"the Azure operation did not finish within {self.cfg.operation_timeout_s:g} s",
            )
        return Following(target, operation_id, followed_at, self._next_poll_s(age))

    def _next_poll_s(self, age: float) -> float:
        """A short operation is polled every OPERATION_POLL_INTERVAL_S; a longer one every
        POLL_AGE_SHARE of the time it has been followed, up to OPERATION_POLL_MAX_INTERVAL_S:
        one that runs for minutes is read a score of times, not once every interval (each read
        is a call that nearly always finds it running), and its end is seen at most a quarter of
        its age, or the max interval, late. Never more than a third of a lease: each step renews
        the lease when a third has passed, so it is renewed at least every two thirds."""
        cfg = self.cfg
        return min(
            max(cfg.poll_interval_s, age * POLL_AGE_SHARE), cfg.poll_max_interval_s, cfg.lease_s / 3
        )

    def _rollout_slot(self, online_endpoint: str, index: PolicyIndex) -> Outcome | None:
        """An online deployment waits for a parallel-update slot of its online endpoint (the
        policy's ``max_parallel_updates``: its change rolls instances); None when it may go on."""
        claim = self.claim
        limit = index.effective(claim.workspace_id, claim.endpoint_name).parallel_updates
        group = rollout_group(claim.workspace_id, online_endpoint)
        slot = take_slot(self.rt, claim, self.worker_id, group, limit)
        if slot == "taken":
            return None
        if slot == "lost":
            raise LeaseLost  # fenced like every state change: taken over, or cancelled
        return Outcome(
            AttemptEnd.RETRY,
            f"waiting: {limit} deployment(s) of online endpoint '{online_endpoint}' "
            "are being updated (max_parallel_updates)",
            self.cfg.poll_interval_s,
            refund=True,
        )

    def _read(self, call: Callable[[], T]) -> T:
        """A read, retried in place on temporary errors whose wait is short."""
        for attempt in range(1, READ_TRIES + 1):
            self.lease.keep()
            try:
                return call()
            except ServiceError as exc:
                if not is_temporary(exc) or attempt == READ_TRIES:
                    raise
                delay = self.retry.delay_s(attempt, server_retry_after_s(exc))
                if delay > IN_PLACE_RETRY_MAX_S:
                    raise
                self.lease.wait(delay)
        raise AzureCallFailed("unreachable")  # pragma: no cover - the loop returns or raises

    def _target(self) -> tuple[Workspace, MlTarget, PolicyIndex]:
        """The workspace, how to reach it (the tenant's credential as stored now), and the
        tenant's policies for the decision (and the slot's limit): two statements of one
        read-only unit (on PostgreSQL each sees its own snapshot, in autocommit)."""
        with self.rt.uow(read_only=True) as uow:
            found = workspace_credential_spec(self.rt, uow, self.claim.workspace_id)
            if found is None:
                raise AzureRejected("the workspace was deleted")
            ws, spec = found
            uow.session.expunge(ws)
            index = PolicyIndex.load(uow.session, self.claim.tenant_id)
        return ws, target_of(self.rt, ws, spec), index

    def _policies(self) -> PolicyIndex:
        with self.rt.uow(read_only=True) as uow:
            return PolicyIndex.load(uow.session, self.claim.tenant_id)

    def _changes(
        self, snapshot: ServiceSnapshot, index: PolicyIndex | None = None
    ) -> dict[str, bool]:
        """What still differs from the endpoint's effective policy *now* (level-triggered):
        ``index`` loaded by this attempt moments ago, else loaded again."""
        claim = self.claim
        policy = (index or self._policies()).effective(claim.workspace_id, claim.endpoint_name)
        observed = Observed(
            snapshot.compute_type, snapshot.app_insights_enabled, snapshot.data_collection_enabled
        )
        return changes_needed(policy, observed)
