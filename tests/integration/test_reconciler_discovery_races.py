"""Concurrent first discoveries of a workspace are idempotent (issue 10 item 9): parallel
``POST .../sync`` calls, and a sync racing the reconciler's discovery, all succeed (no 409, no
412), record each endpoint once and queue at most one operation per endpoint. Real concurrency
(threads, each with its own database connection) on SQLite and PostgreSQL, real azureml-core."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.models import Endpoint, Operation, WorkspaceSync
from service.db.session import Database
from service.services import discovery, policies
from service.worker.reconciler import Reconciler
from tests.support.api import ApiClient, World
from tests.support.reconcile import CLI, Wired, fast_runtime, wire

SERVICES = [f"svc-{i}" for i in range(6)]


def _fleet(
    world: World, settings: Settings, database: Database, emulator: EmulatorHandle, sandbox: Sandbox
) -> Wired:
    for name in SERVICES:
        sandbox.add_service(name, compute_type="AKS", app_insights_enabled=False)
    rt = fast_runtime(settings, database, emulator)
    w = wire(world, rt, sandbox)
    # a policy first, so that the first discovery also queues operations
    policies.put_policy(rt, CLI, w.tenant, None, None, {"app_insights": True}, None, max_attempts=3)
    # The listings take a while, so that the racers' database work overlaps.
    emulator.add_fault(
        "latency", "mms.services_list", subscription_id=sandbox.subscription_id, latency_s=0.3
    )
    return w


def _recorded(database: Database, w: Wired) -> tuple[Counter[str], Counter[str], int]:
    with database.unit_of_work() as uow:
        endpoints = Counter(
            uow.session.scalars(
                select(Endpoint.name).where(Endpoint.workspace_id == w.workspace_id)
            )
        )
        ops = Counter(
            uow.session.scalars(
                select(Operation.endpoint_name).where(Operation.workspace_id == w.workspace_id)
            )
        )
        syncs = uow.session.scalar(
            select(func.count())
            .select_from(WorkspaceSync)
            .where(WorkspaceSync.workspace_id == w.workspace_id)
        )
    return endpoints, ops, int(syncs or 0)


def _race(*calls: Any) -> list[Any]:
    """Run the calls at the same moment, each in its own thread; their results or errors."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - reported by the test's assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_three_parallel_first_syncs_all_succeed_and_record_everything_once(
    app: Flask,
    world: World,
    settings: Settings,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    w = _fleet(world, settings, database, emulator, sandbox)
    key = world.key("operator", w.tenant)
    path = f"/v1/tenants/{w.tenant}/workspaces/{w.workspace}/sync"

    def sync() -> tuple[int, Any]:
        with app.test_client() as client:
            r = ApiClient(client).post(path, key)
            return r.status_code, r.json

    answers = _race(sync, sync, sync)
    assert [a[0] if isinstance(a, tuple) else a for a in answers] == [200, 200, 200], answers
    assert all(a[1]["endpoints"] == len(SERVICES) for a in answers)
    # Each endpoint appeared in exactly one answer, and was queued by exactly one.
    appeared = Counter(n for a in answers for n in a[1]["appeared"])
    assert appeared == Counter(SERVICES)
    assert sum(len(a[1]["operations"]) for a in answers) == len(SERVICES)
    endpoints, ops, syncs = _recorded(database, w)
    assert endpoints == Counter(SERVICES)
    assert ops == Counter(SERVICES)
    assert syncs == 1


def test_a_sync_racing_the_reconcilers_discovery_both_succeed(
    world: World,
    settings: Settings,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    w = _fleet(world, settings, database, emulator, sandbox)
    # Each discovery also builds this runtime's azure-ai-ml clients (CPU-bound, seconds on a
    # loaded machine) beside the racers' listings: the 1 s call deadline is not what is tested.
    rt = fast_runtime(settings, database, emulator, call_timeout_s=5.0)
    rec = Reconciler(rt, "racing-worker", only_tenants={w.tenant_id})

    def tick() -> int:  # the workspace was never listed: the tick starts its discovery
        discoveries = rec.reconcile_once().discoveries
        rec.drain(30)
        return discoveries

    try:
        results = _race(
            lambda: discovery.sync_workspace(rt, CLI, w.tenant, w.workspace),
            lambda: discovery.sync_workspace(rt, CLI, w.tenant, w.workspace),
            tick,
        )
    finally:
        rec.close()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert results[2] == 1
    endpoints, ops, syncs = _recorded(database, w)
    assert endpoints == Counter(SERVICES)
    assert set(ops) == set(SERVICES)
    assert set(ops.values()) == {1} or all(
        op.state != "queued" for op in _ops(database, w)
    )  # the reconciler may already have run (and ended) some before another sync
    assert syncs == 1
    with database.unit_of_work() as uow:
        row = uow.session.get(WorkspaceSync, w.workspace_id)
        assert row is not None
        assert (row.last_error_code, row.last_error) == (None, None)


def _ops(database: Database, w: Wired) -> list[Operation]:
    with database.unit_of_work() as uow:
        rows = list(
            uow.session.scalars(select(Operation).where(Operation.workspace_id == w.workspace_id))
        )
        uow.session.expunge_all()
        return rows
