"""Following an Azure operation without a thread: the attempt that started it frees its thread
and its place in the tenant's cap; the worker reads the service in steps, renewing its lease,
until the update ends (the operation is asked only when the service comes to rest still
different); a worker that stops hands it back, and the next follows it without writing again."""

from __future__ import annotations

import dataclasses
import time

from service.db.models import Operation
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.integration.test_metrics import sample
from tests.integration.test_reconciler_fencing import (  # noqa: F401 - fixtures used by name
    LEASE_S,
    _queue,
    _queued,
    _settle_with_one_worker,
    fake_ml_port,
    fake_ml_runtime,
)
from tests.integration.test_reconciler_fencing import _attempts as attempts_of
from tests.support.api import ApiClient, World
from tests.support.fake_ml import FakeMl
from tests.support.reconcile import operations_of, run_until, settled

FOLLOWED = "amlcp_operations_following"
FOREVER = 10**9  # polls that answer "running" until the test lets the operations end


def _with(rt: Runtime, **changes: float) -> Runtime:
    cfg = dataclasses.replace(rt.settings.reconciler, **changes)
    return dataclasses.replace(rt, settings=rt.settings.with_overrides(reconciler=cfg))


def _attempts(rt: Runtime, operation_id: str) -> list[tuple[str | None, bool]]:
    """How each attempt of the operation ended, and whether it was charged, in order."""
    return [(a.outcome, a.charged) for a in attempts_of(rt.database, operation_id)]


def _tick_for(worker: Reconciler, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.reconcile_once()
        time.sleep(0.02)


def test_an_operation_azure_runs_holds_neither_a_thread_nor_a_place_in_the_tenant_cap(
    world: World, rt: Runtime, fake: FakeMl, api: ApiClient, admin_key: str
) -> None:
    """One thread, a cap of one: three services are written while the first's Azure operation
    still runs. Before, the attempt polled its operation in its thread until it ended, holding
    the tenant's only place: one write until then, and a fleet converged at the pace of Azure's
    operations (minutes each), not of its write budget."""
    q = _queued(world, rt, fake)
    rt = _with(rt, tenant_concurrency=1, worker_threads=1)
    others = [_queue(rt, fake, q.tenant_id, _workspace_of(rt, q.operation_id), n) for n in "ab"]
    fake.running_polls = FOREVER
    worker = Reconciler(rt, "w", only_tenants={q.tenant_id})
    try:
        _tick_for(worker, 1.5)
        assert sorted(name for name, _ in fake.writes) == ["a", "b", "svc"]
        ops = operations_of(rt, q.tenant_id)
        assert {op.state for op in ops} == {"running"}  # the API still says so: no flapping
        assert all(op.following_since is not None for op in ops)
        assert sample(api.get("/metrics").get_data(as_text=True), FOLLOWED) == 3
        shown = api.get(f"/v1/operations/{q.operation_id}", admin_key).json
        assert (shown["state"], bool(shown["following_since"])) == ("running", True)
        polls = len(fake.poll_times)
        assert polls >= 3  # each is polled, in steps
        fake.running_polls = 0
        run_until(worker, lambda: settled(rt, q.tenant_id))
    finally:
        worker.close()
    ops = operations_of(rt, q.tenant_id)
    assert {(op.state, op.attempts, op.following_since) for op in ops} == {("succeeded", 1, None)}
    for op_id in [q.operation_id, *others]:
        assert _attempts(rt, op_id) == [("succeeded", True)]  # one attempt, through its steps
    assert len(fake.writes) == 3
    assert sample(api.get("/metrics").get_data(as_text=True), FOLLOWED) == 0
    shown = api.get(f"/v1/operations/{q.operation_id}", admin_key).json
    assert (shown["state"], shown["following_since"]) == ("succeeded", None)


def test_the_steps_of_a_followed_operation_keep_its_lease(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """An Azure operation that runs for three leases: the worker's steps renew the lease, so a
    second worker ticking all along never takes the operation over (nor writes again)."""
    q = _queued(world, rt, fake)
    rt = _with(rt, poll_interval_s=0.5, poll_max_interval_s=5.0)  # a step per third of a lease
    fake.running_polls = FOREVER
    first = Reconciler(rt, "first", only_tenants={q.tenant_id})
    second = Reconciler(rt, "second", only_tenants={q.tenant_id})
    claimed_by_second = 0
    try:
        deadline = time.monotonic() + 3 * LEASE_S
        while time.monotonic() < deadline:
            first.reconcile_once()
            claimed_by_second += second.reconcile_once().claimed
            time.sleep(0.02)
        fake.running_polls = 0
        run_until(first, lambda: settled(rt, q.tenant_id))
    finally:
        first.close()
        second.close()
    assert claimed_by_second == 0
    gaps = [b - a for a, b in zip(fake.poll_times, fake.poll_times[1:], strict=False)]
    assert len(gaps) >= 6  # three leases, a step at most every third of one
    assert max(gaps) < LEASE_S  # (and late by the loaded machine's scheduling)
    assert fake.writes == [("svc", {"app_insights": True})]
    assert _attempts(rt, q.operation_id) == [("succeeded", True)]


def test_a_stopping_worker_hands_back_what_it_follows_and_the_next_follows_it_without_writing(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    q = _queued(world, rt, fake)
    fake.running_polls = FOREVER
    first = Reconciler(rt, "first", only_tenants={q.tenant_id})
    try:
        _tick_for(first, 0.5)
        (op,) = operations_of(rt, q.tenant_id)
        assert op.following_since is not None
    finally:
        first.close()
    (op,) = operations_of(rt, q.tenant_id)
    assert (op.state, op.following_since) == ("running", None)
    assert op.azure_operation_id is not None  # kept: the next attempt follows it
    fake.running_polls = 2
    _settle_with_one_worker(rt, q.tenant_id)  # another worker
    (op,) = operations_of(rt, q.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 1)
    assert fake.writes == [("svc", {"app_insights": True})]  # written once
    assert _attempts(rt, q.operation_id) == [("released", False), ("succeeded", True)]


def _workspace_of(rt: Runtime, operation_id: str) -> str:
    with rt.uow() as uow:
        op = uow.session.get(Operation, operation_id)
        assert op is not None
        return op.workspace_id


def test_a_followed_update_ends_with_the_read_that_sees_the_service_at_rest(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """Each step reads the service; the read that finds it at rest and as the policy wants is
    the confirmation: the operation is never asked (before, a poll, then a confirming read)."""
    q = _queued(world, rt, fake)
    fake.running_polls = 2
    _settle_with_one_worker(rt, q.tenant_id)
    (op,) = operations_of(rt, q.tenant_id)
    assert (op.state, op.last_error) == ("succeeded", None)
    assert fake.operation_polls == 0
    assert len(fake.poll_times) == 3  # two reads mid-update, then the one at rest
    assert fake.writes == [("svc", {"app_insights": True})]


def test_a_failed_update_is_told_by_its_operation_once_the_service_is_at_rest(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    q = _queued(world, rt, fake, max_attempts=1)
    fake.failing_updates = 1
    _settle_with_one_worker(rt, q.tenant_id)
    (op,) = operations_of(rt, q.tenant_id)
    assert op.state == "failed"
    assert op.last_error == "the Azure operation failed: the update failed: quota exceeded"
    assert fake.operation_polls == 1
    assert fake.writes == [("svc", {"app_insights": True})]  # not written again


def test_a_service_changed_back_while_its_update_ran_goes_round_again(
    world: World, rt: Runtime, fake: FakeMl
) -> None:
    """At rest but still different, and the operation succeeded: someone changed the service
    since. Level-triggered: the next attempt writes again."""
    q = _queued(world, rt, fake)
    fake.changed_after_update = 1
    _settle_with_one_worker(rt, q.tenant_id)
    (op,) = operations_of(rt, q.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 2)
    assert fake.operation_polls == 1
    assert fake.writes == [("svc", {"app_insights": True})] * 2
    assert [a.error for a in attempts_of(rt.database, q.operation_id)] == [
        "the service still differs after the update",
        None,
    ]
