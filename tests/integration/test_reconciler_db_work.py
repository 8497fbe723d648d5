"""How much the reconciler asks the database (a busy worker's ticks, an attempt's reads) and how
soon its loop claims what became claimable.

At 1,000 targets on PostgreSQL (``bench/reconcile_converge.py``) the database client and server
were about a third of the CPU a target costs; these pin the transactions that were cut.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select

from service.db.models import Endpoint, Operation, OperationAttempt, Policy, Tenant
from service.services.planning import PolicyIndex
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.integration.test_reconciler_fencing import (  # noqa: F401 - fixtures used by name
    HandLease,
    _claim_of,
    _queue,
    _queued,
    _settle_with_one_worker,
    attempt_to_its_end,
    fake_ml_port,
    fake_ml_runtime,
)
from tests.support.api import CLI, World
from tests.support.fake_ml import FakeMl
from tests.support.reconcile import operations_of, settled


@contextmanager
def _transactions(rt: Runtime) -> Iterator[list[list[str]]]:
    """The statements of every transaction begun on ``rt``'s engine meanwhile, in order."""
    engine = rt.database.engine
    seen: list[list[str]] = []
    current = threading.local()

    def begin(conn: Any) -> None:
        current.statements = []
        seen.append(current.statements)

    def execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements = getattr(current, "statements", None)
        if statements is not None:
            statements.append(statement)

    event.listen(engine, "begin", begin)
    event.listen(engine, "before_cursor_execute", execute)
    try:
        yield seen
    finally:
        event.remove(engine, "begin", begin)
        event.remove(engine, "before_cursor_execute", execute)


def _reads(transaction: list[str], table: str) -> bool:
    return any(f"FROM {table}" in s or f"JOIN {table} " in s for s in transaction)


def test_an_attempt_reads_its_workspace_policies_and_credential_in_one_unit_of_two_statements(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """The tenant's credential, read fresh by every attempt, comes with the workspace and the
    tenant's policies. Before, it was a transaction of its own (two statements, and on
    PostgreSQL the pool's ping before each): ~1.6 transactions per target in a P3 run. And two
    statements, not four: the workspace, its tenant and the tenant's credential joined (each
    statement of the ORM cost ~0.15-0.2 ms of CPU beyond its round trip; the unit took 1.55 ms
    of CPU with four, 0.79 with two, and the statements built once)."""
    q = _queued(world, rt, fake)
    claim = _claim_of(rt, q.operation_id)
    with _transactions(rt) as seen:
        outcome = attempt_to_its_end(rt, claim, HandLease(claim))
    assert outcome.state == "succeeded", outcome.error
    assert fake.writes == [("svc", {"app_insights": True})]
    with_credential = [t for t in seen if _reads(t, "tenant_credentials")]
    assert len(with_credential) == 1  # read fresh, once
    (reading,) = with_credential
    assert _reads(reading, "workspaces")
    assert _reads(reading, "policies")
    assert len(reading) == 2, reading
    joined = next(s for s in reading if "tenant_credentials" in s)
    assert "FROM workspaces JOIN tenants" in joined
    assert _reads([s for s in reading if s is not joined], "policies")


def test_a_tenant_s_policy_index_sees_the_session_s_unflushed_policies(rt: Runtime) -> None:
    """``PolicyIndex.load`` reads below the ORM (issue 16) but still sees what the session holds
    and has not flushed, as ``Session.execute``'s autoflush did: a policy written in the same
    unit as a plan is planned with."""
    with rt.uow() as uow:  # rolled back: never committed
        tenant = Tenant(slug=f"idx-{uuid.uuid4().hex[:8]}", display_name="t", entra_tenant_id="x")
        uow.session.add(tenant)
        uow.flush()
        uow.session.add(
            Policy(tenant_id=tenant.id, scope="tenant", scope_key="tenant", app_insights=True)
        )
        index = PolicyIndex.load(uow.session, tenant.id)
    assert index.tenant is not None
    assert index.tenant.app_insights is True


def test_an_attempt_for_a_tenant_whose_credential_was_removed_fails_saying_so(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """The joined read tells a missing credential from a missing workspace: the attempt ends
    with the tenant's credential error, as the separate reads did, and writes nothing."""
    from service.services import credentials

    q = _queued(world, rt, fake)
    claim = _claim_of(rt, q.operation_id)
    with rt.uow() as uow:
        slug = uow.session.get(Tenant, q.tenant_id).slug  # type: ignore[union-attr]
    credentials.delete_credential(rt, CLI, slug, None)
    outcome = attempt_to_its_end(rt, claim, HandLease(claim))
    assert outcome.error is not None
    assert "has no Azure credential configured" in outcome.error
    assert fake.writes == []


def test_an_attempt_records_what_it_saw_with_azure_s_time_of_the_last_change(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """The observation an attempt records as it ends (one UPDATE built once, ``outcomes``)
    carries what it saw and Azure's own time of the service's last change: the update's, which
    only the attempt's last read has seen."""
    q = _queued(world, rt, fake)
    changed = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    fake.update_time = changed
    _settle_with_one_worker(rt, q.tenant_id)
    (op,) = operations_of(rt, q.tenant_id)
    assert op.state == "succeeded"
    with rt.uow() as uow:
        ep = uow.session.scalars(
            select(Endpoint).where(Endpoint.tenant_id == q.tenant_id, Endpoint.name == "svc")
        ).one()
        assert (ep.state, ep.app_insights_enabled) == ("Healthy", True)
        assert ep.azure_updated_at == changed
        assert ep.observed_at is not None
        assert ep.vanished_at is None


def test_a_busy_worker_looks_for_due_discoveries_and_its_lag_once_a_second(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """A worker that claimed something ticks again after 50 ms. Its other questions (which
    workspaces' discovery is due, the lag gauge's oldest due operation) were asked on every
    tick: two transactions each time, ~2 per target in a P3 run on two workers. Now at most
    once a second (HOUSEKEEPING_S), and again once the second has passed."""
    from dataclasses import replace

    from service.worker.reconciler import HOUSEKEEPING_S

    q = _queued(world, rt, fake)
    cfg = replace(rt.settings.reconciler, interval_s=5.0)  # the busy pace is what is tested
    rt = replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})

    def counts(seen: list[list[str]]) -> tuple[int, int]:
        statements = [s for t in seen for s in t]
        due = sum("workspace_syncs.next_sync_at IS NULL" in s for s in statements)
        lag = sum("min(operations.created_at)" in s for s in statements)
        return due, lag

    try:
        with _transactions(rt) as seen:
            started = time.monotonic()
            for _ in range(10):
                worker.reconcile_once()
            elapsed = time.monotonic() - started
            first = counts(seen)
            time.sleep(HOUSEKEEPING_S + 0.05)  # past both deadlines, each set during a tick
            worker.reconcile_once()
            second = counts(seen)
    finally:
        worker.close()
    # Ten ticks in less than a second ask once (10 each before); a slow machine may have let
    # a second pass meanwhile.
    most = 1 + int(elapsed / HOUSEKEEPING_S)
    assert 1 <= first[0] <= most, (first, elapsed)
    assert 1 <= first[1] <= most, (first, elapsed)
    assert second == (first[0] + 1, first[1] + 1)


def test_a_worker_claims_the_place_an_attempt_freed_at_once_not_at_its_next_tick(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """Two operations of one tenant whose cap is 1: the second can start only once the first
    ended. Before, the tick that found the tenant at its cap made the loop sleep
    RECONCILER_INTERVAL_S (2 s by default; 3 s here) and the freed place waited for it; now an
    attempt that ends wakes the loop."""
    from dataclasses import replace

    q = _queued(world, rt, fake)
    with rt.uow() as uow:
        first = uow.session.get(Operation, q.operation_id)
        assert first is not None
        workspace_id = first.workspace_id
    _queue(rt, fake, q.tenant_id, workspace_id, "svc2")
    fake.running_polls = 5  # the first attempt outlasts the busy loop's 50 ms pause
    cfg = replace(rt.settings.reconciler, interval_s=3.0, tenant_concurrency=1)
    rt = replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})
    stop = threading.Event()
    loop = threading.Thread(target=worker.run, args=(stop,))
    loop.start()
    try:
        deadline = time.monotonic() + 10
        while not settled(rt, q.tenant_id) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        loop.join(10)
    assert not loop.is_alive()
    ops = sorted(operations_of(rt, q.tenant_id), key=lambda op: op.finished_at or op.created_at)
    assert [op.state for op in ops] == ["succeeded", "succeeded"]
    with rt.uow() as uow:
        times = {
            a.operation_id: (a.started_at, a.finished_at)
            for a in uow.session.scalars(
                select(OperationAttempt).where(
                    OperationAttempt.operation_id.in_([op.id for op in ops])
                )
            )
        }
    ended, started = times[ops[0].id][1], times[ops[1].id][0]
    assert ended is not None
    assert started is not None
    assert (started - ended).total_seconds() < 1.0  # ~3 s before


def test_a_loaded_worker_claims_freed_threads_together_not_one_round_each(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """Under load threads free up one at a time, and the loop, woken by each attempt's end,
    made a claim round for each: two reads and a write transaction of four statements per
    tenant, for ~1.2 operations a round in a P3 run (PostgreSQL's statement log). Now a lone
    free thread waits up to CLAIM_GATHER_S for an eighth of the pool to be free; a worker with
    that many free (at low load, most of them) claims at once, as before."""
    from dataclasses import replace

    from service.worker.reconciler import CLAIM_GATHER_S

    q = _queued(world, rt, fake)
    cfg = replace(rt.settings.reconciler, worker_threads=16, interval_s=5.0)
    rt = replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})
    claims: list[int] = []
    # 15 of its 16 threads busy: one free, the batch is two.
    busy = {f"busy-{i}": Future() for i in range(15)}  # type: ignore[var-annotated]
    worker._in_flight.update(busy)
    worker._next_due_check = time.monotonic() + 3600  # no discovery takes the free thread
    try:
        with _transactions(rt) as seen:
            worker.reconcile_once()
            claims.append(sum(_locks_tenant(t) for t in seen))
            stop = threading.Event()
            started = time.monotonic()
            worker._pause(stop, 5.0)  # returns when the lone thread has waited long enough
            waited = time.monotonic() - started
            worker.reconcile_once()
            claims.append(sum(_locks_tenant(t) for t in seen))
    finally:
        for future in busy.values():
            future.set_result(None)
        worker.close()
    assert claims[0] == 0  # one free thread of 16: no claim round yet
    assert CLAIM_GATHER_S / 2 <= waited <= CLAIM_GATHER_S + 0.5, waited  # not the 5 s pause
    assert claims[1] == 1  # then it is claimed for


def test_a_worker_with_an_eighth_of_its_threads_free_claims_at_once(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """The batch gathers only while few threads are free: with two of 16 free, the tick claims."""
    from dataclasses import replace

    q = _queued(world, rt, fake)
    cfg = replace(rt.settings.reconciler, worker_threads=16, interval_s=5.0)
    rt = replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})
    busy = {f"busy-{i}": Future() for i in range(14)}  # type: ignore[var-annotated]
    worker._in_flight.update(busy)
    worker._next_due_check = time.monotonic() + 3600  # no discovery takes the free thread
    try:
        with _transactions(rt) as seen:
            report = worker.reconcile_once()
            locked = sum(_locks_tenant(t) for t in seen)
    finally:
        for future in busy.values():
            future.set_result(None)
        worker.close()
    assert locked == 1
    assert report.claimed == 1


def _locks_tenant(transaction: list[str]) -> bool:
    """A claim's write transaction: it locks its tenant's row first (``FOR UPDATE`` on
    PostgreSQL; SQLite's transaction is the lock)."""
    return any(
        s.strip().split("\n", 1)[0].strip() == "SELECT tenants.id" and "WHERE tenants.id =" in s
        for s in transaction
    )
