"""The reconcile loop: level-triggered, idempotent ``reconcile_once()``.

Each tick: poll due device sign-ins, start discovery of due workspaces (which queues drift
corrections; looked for at most once a second while busy), then lease due operations up to the
free threads and the tenants' caps, and run each as one attempt (``service.services.attempt``,
the decisions) in a thread pool.

Never two attempts of one operation in flight:
- each attempt holds a fencing token (``Claim.fence``); every state change it makes is
  conditional on the token, so an attempt whose lease was taken over cannot write anything;
- the lease is renewed (fenced) before every Azure call once a third of it has passed, while
  waiting, and always right before a write: a stale attempt never sends one;
- a tick never claims an operation this worker still runs an attempt of;
- a write that got no answer in time may still be applied (its call goes on in the background):
  the attempt keeps its lease and waits for that call to end, then follows what it started;
  nothing else is written to the service meanwhile, and every attempt observes before writing.

Following without a thread: once an attempt's Azure operation runs, the attempt hands it to
this worker (``Following``) and its thread is free; the worker runs a step of it
(``follow_step``: one poll, renewing the lease when due) in any free thread when its next poll
is due, before claiming new work, until it ends and is recorded. Meanwhile the operation stays
``running`` under the attempt's lease and fencing token, but holds no place in its tenant's
cap (``operations.following_since``): Azure's operations take minutes, and a thread held for
each made their duration, not the write budget, bound a fleet's convergence. A worker that
stops hands its followed operations back (``released``); one that crashes loses their leases,
and the next claim takes them over and follows the Azure operation the attempt stored.

How attempts are charged against ``max_attempts`` (crashes are not): see
``service.services.leases``. Loops wait on ``stop.wait(interval)``, so stopping is prompt.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.domain.states import AttemptEnd, Recorded
from service.errors import AzureCallFailed, ServiceError
from service.metrics import RECONCILE_LAG, RECONCILE_SWEEP
from service.services import leases, retention
from service.services.attempt import Following, LeaseLost, Stopping, follow_step, run_attempt
from service.services.device_logins import poll_due_device_logins
from service.services.discovery import discover, due_workspaces
from service.services.leases import Claim
from service.services.operations_stats import oldest_due_age_s
from service.services.outcomes import Outcome, record_outcome
from service.services.runtime import Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")
# While busy a worker ticks every 50 ms. What each tick also asks the database besides claiming
# (which workspaces' discovery is due, the lag gauge's oldest due operation) changes on a scale
# of seconds to minutes: asked at most this often (or every RECONCILER_INTERVAL_S, if shorter).
HOUSEKEEPING_S = 1.0
# How often a pausing loop looks whether it should stop (it wakes at once when an attempt ends).
STOP_CHECK_S = 0.1
# Under load, threads free up one at a time, and claiming for each as it ended made a claim
# round (two reads, then a write transaction of four statements per tenant) per attempt or so.
# A worker now claims once an eighth of its threads is free, or once a free thread has waited
# this long: at low load (most threads free) it claims at once, as before.
CLAIM_GATHER_S = 0.2


@dataclass
class TickReport:
    discoveries: int = 0
    claimed: int = 0
    in_flight: int = 0  # attempts and follow steps running in threads
    following: int = 0  # operations followed without a thread
    steps: int = 0  # follow steps started by this tick
    finished: dict[Recorded, int] = field(default_factory=dict)  # attempts ended, by result


class _Lease:
    """One attempt's hold on its operation, renewed with its fencing token.

    ``keep()`` renews when a third of the lease has passed since the last renewal (call it before
    every Azure call: a call lasts at most half a lease), ``keep(now=True)`` always (before a
    write); ``wait()`` sleeps while keeping it. Raises ``LeaseLost`` once it is not ours.
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
            raise LeaseLost
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
        """Sleep ``seconds`` keeping the lease; ``Stopping`` when the worker stops."""
        deadline = time.monotonic() + seconds
        while True:
            self.keep()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._rec.stopping.wait(min(left, self._rec.cfg.lease_s / 3)):
                raise Stopping


@dataclass
class _Followed:
    """An attempt waiting for its Azure operation (its next step's time is in ``_due``)."""

    claim: Claim
    lease: _Lease
    following: Following


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
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(self.cfg.worker_threads, thread_name_prefix="reconcile")
        self._in_flight: dict[str, Future[Recorded]] = {}  # attempts and follow steps
        # Under _lock (pool threads add to them): the followed operations, and their due times
        # as a heap of (due, sequence, operation id).
        self._following: dict[str, _Followed] = {}
        self._due: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._discovering: dict[str, Future[None]] = {}
        self._finished: dict[Recorded, int] = {}
        self._lock = threading.Lock()
        self._next_sign_in_poll = 0.0
        self._housekeeping_s = min(HOUSEKEEPING_S, self.cfg.interval_s)
        self._next_due_check = 0.0
        self._next_lag_read = 0.0
        # Set when an attempt (its thread and its tenant's place are free) or a discovery (it may
        # have queued corrections) of this worker ended.
        self._work_ended = threading.Event()
        self._claim_batch = max(1, self.cfg.worker_threads // 8)
        self._free_since: float | None = None  # since when a thread is free and unclaimed

    def reconcile_once(self) -> TickReport:
        """One tick; returns at once (operations keep running in the pool)."""
        started = time.perf_counter()
        try:
            return self._tick()
        finally:
            RECONCILE_SWEEP.observe(time.perf_counter() - started)
            if time.monotonic() >= self._next_lag_read:
                self._next_lag_read = time.monotonic() + self._housekeeping_s
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
        if time.monotonic() >= self._next_due_check:
            self._next_due_check = time.monotonic() + self._housekeeping_s
            self._start_due_discoveries(report)
        # Steps of followed operations first: they end work already started.
        report.steps = self._start_due_steps()
        free = self._free_threads()
        if not self._claim_now(free):
            free = 0  # a lone free thread waits for company (CLAIM_GATHER_S)
        # Never claim what an attempt of ours still runs or follows, even when its lease looks
        # expired (a claim would start a second attempt beside it and lose track of the first).
        with self._lock:
            exclude = set(self._in_flight) | set(self._following)
        for claim in leases.claim(
            self.rt,
            self.worker_id,
            free,
            only_tenants=self.only_tenants,
            exclude=exclude,
        ):
            self._in_flight[claim.id] = self._submit(self._run, claim)
            report.claimed += 1
        report.in_flight = len(self._in_flight)
        with self._lock:
            report.following = len(self._following)
            report.finished, self._finished = self._finished, {}
        return report

    def _free_threads(self) -> int:
        return self.cfg.worker_threads - len(self._in_flight) - len(self._discovering)

    def _claim_now(self, free: int) -> bool:
        """Whether this tick claims for its ``free`` threads: when they are at least
        ``_claim_batch``, or one of them has waited ``CLAIM_GATHER_S`` (see there)."""
        if free <= 0:
            self._free_since = None
            return False
        now = time.monotonic()
        if self._free_since is None:
            self._free_since = now
        if free >= self._claim_batch or now - self._free_since >= CLAIM_GATHER_S:
            self._free_since = None
            return True
        return False

    def _gathering_for(self) -> float:
        """Seconds until free threads that wait for company are claimed for (inf: none wait)."""
        if self._free_since is None:
            return float("inf")
        return max(0.0, self._free_since + CLAIM_GATHER_S - time.monotonic())

    def _start_due_steps(self) -> int:
        """Start the follow steps that are due, soonest due first, in the free threads."""
        self._reap()
        free = self._free_threads()
        now = time.monotonic()
        started: list[_Followed] = []
        with self._lock:
            while self._due and self._due[0][0] <= now and len(started) < free:
                due, _, op_id = heapq.heappop(self._due)
                if op_id in self._in_flight:
                    # The attempt that handed it over has not quite returned: next time.
                    heapq.heappush(self._due, (due, next(self._sequence), op_id))
                    break
                followed = self._following.pop(op_id, None)
                if followed is not None:
                    started.append(followed)
        for followed in started:
            self._in_flight[followed.claim.id] = self._submit(self._step, followed, wake=False)
        return len(started)

    def _next_step_in(self) -> float:
        """Seconds until the next follow step is due (inf: none, or no free thread for it; an
        attempt that ends wakes the loop)."""
        if self._free_threads() <= 0:
            return float("inf")
        with self._lock:
            if not self._due:
                return float("inf")
            return max(0.0, self._due[0][0] - time.monotonic())

    def _submit(self, work: Callable[[Any], T], arg: Any, *, wake: bool = True) -> Future[T]:
        """Run ``work(arg)`` in the pool; its end wakes the loop (``_pause``) if ``wake``.
        A follow step's does not: it held no place in a tenant's cap, only a thread, and the
        loop's next tick comes soon enough for that (steps end far more often than attempts,
        and each tick asks the database for claims)."""
        future = self._pool.submit(work, arg)
        if wake:
            future.add_done_callback(lambda _: self._work_ended.set())
        return future

    def _start_due_discoveries(self, report: TickReport) -> None:
        slots = max(0, self.cfg.worker_threads - len(self._in_flight))
        for ws_id in due_workspaces(self.rt, limit=max(1, slots), only_tenants=self.only_tenants):
            if ws_id not in self._discovering:
                self._discovering[ws_id] = self._submit(self._discover, ws_id)
                report.discoveries += 1

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; then hand back what is in flight and return."""
        while not stop.is_set():
            try:
                report = self.reconcile_once()
                busy = report.claimed or report.discoveries
            except ServiceError as exc:  # e.g. the database is briefly unavailable
                log.warning("reconcile tick failed: %s", exc.detail)
                busy = False
            self._pause(stop, 0.05 if busy else self.cfg.interval_s)
        self.close()

    def _pause(self, stop: threading.Event, seconds: float) -> None:
        """Wait ``seconds`` between ticks, starting follow steps as they fall due, or less:
        until an attempt or a discovery of this worker ends (the next tick claims the attempt's
        thread and its tenant's place, or what the discovery queued, at once; before, a worker
        whose last tick found every tenant at its cap left the place free for
        RECONCILER_INTERVAL_S) or ``stop`` is set (looked at every STOP_CHECK_S)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            self._start_due_steps()
            left = min(deadline - time.monotonic(), self._gathering_for())
            if left <= 0:
                return
            if self._work_ended.wait(min(left, STOP_CHECK_S, self._next_step_in())):
                self._work_ended.clear()  # work ending after this: the coming tick sees it
                return

    def drain(self, timeout_s: float | None = None) -> None:
        """Wait for everything in flight, followed operations included (their steps run as
        they fall due), claiming nothing new (tests and benchmarks)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            pending: list[Future[Any]] = [*self._in_flight.values(), *self._discovering.values()]
            wait(pending, timeout=left)
            self._reap()
            with self._lock:
                following = bool(self._following)
            if not following or (deadline is not None and time.monotonic() >= deadline):
                return
            if not self._start_due_steps():
                nap = min(self._next_step_in(), STOP_CHECK_S)
                if deadline is not None:
                    nap = min(nap, max(0.0, deadline - time.monotonic()))
                time.sleep(nap)

    def close(self) -> None:
        """Graceful stop: attempts hand their leases back at their next wait, then return;
        followed operations are handed back too (another worker takes them over at once)."""
        self.stopping.set()
        self._pool.shutdown(wait=True)
        self._reap()
        with self._lock:
            followed, self._following, self._due = list(self._following.values()), {}, []
        for f in followed:
            released = Outcome(AttemptEnd.RELEASED, keep_azure_operation=True)
            record_outcome(self.rt, f.claim, self.worker_id, released, f.lease.azure_operation_id)

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

    def _run(self, claim: Claim) -> Recorded:
        lease = _Lease(self, claim)
        return self._end(
            claim, lease, run_attempt(self.rt, claim, lease, self.worker_id, self.stopping)
        )

    def _step(self, followed: _Followed) -> Recorded:
        claim, lease = followed.claim, followed.lease
        result = follow_step(
            self.rt, claim, lease, self.worker_id, self.stopping, followed.following
        )
        return self._end(claim, lease, result)

    def _end(self, claim: Claim, lease: _Lease, result: Outcome | Following) -> Recorded:
        """Record how the attempt ended, or keep following its Azure operation."""
        if isinstance(result, Following):
            due = time.monotonic() + result.next_poll_s
            with self._lock:
                self._following[claim.id] = _Followed(claim, lease, result)
                heapq.heappush(self._due, (due, next(self._sequence), claim.id))
            return Recorded.RUNNING
        recorded = record_outcome(self.rt, claim, self.worker_id, result, lease.azure_operation_id)
        with self._lock:
            self._finished[recorded] = self._finished.get(recorded, 0) + 1
        return recorded
