"""Helpers for reconciler tests: a fast runtime, a tenant wired to an emulator sandbox, and
running the reconciler until a condition holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from emulator.testing import EmulatorHandle, Sandbox
from service.bootstrap import build_runtime, warm_imports
from service.config import ReconcilerSettings, Settings
from service.db.models import Operation, Tenant, Workspace
from service.db.session import Database
from service.domain.access import CLI_PRINCIPAL
from service.ports import MlTarget
from service.services import credentials
from service.services.context import CallContext
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.support.api import World, emulator_azure_settings
from tests.support.rows import operation_row

CLI = CallContext(CLI_PRINCIPAL)

# Everything short: the emulator answers in milliseconds and tests must stay fast.
FAST = ReconcilerSettings(
    interval_s=0.02,
    discovery_interval_s=3600,
    lease_s=4.0,
    subscription_writes_per_s=50,
    tenant_concurrency=10,
    worker_threads=8,
    max_attempts=4,
    retry_base_s=0.05,
    retry_max_s=2.0,
    call_timeout_s=1.0,
    operation_timeout_s=10,
    poll_interval_s=0.02,
    poll_max_interval_s=0.2,
)


def fast_runtime(
    settings: Settings, database: Database, emulator: EmulatorHandle, **overrides: float
) -> Runtime:
    """A runtime on the test database, aimed at ``emulator``, with fast reconciler settings,
    after the imports a worker process makes as it starts (``service.worker``: ``warm_imports``).
    Without them the first SDK call of the test process imported azureml-core inside its call
    deadline, which FAST's 1 s did not always cover on a loaded machine ("load workspace got
    no answer within 1 s", once in a full CI run, in whichever test came first in its order)."""
    from dataclasses import replace

    reconciler = replace(FAST, **overrides)
    if reconciler.call_timeout_s * 2 > reconciler.lease_s and "lease_s" not in overrides:
        # A longer call deadline needs a lease twice as long, as Settings.from_env requires: the
        # reconciler renews right before a write so that the lease outlasts the call.
        reconciler = replace(reconciler, lease_s=reconciler.call_timeout_s * 2)
    azure = emulator_azure_settings(emulator)
    warm_imports(azure.ca_bundle)
    return build_runtime(settings.with_overrides(azure=azure, reconciler=reconciler), database)


@pytest.fixture(name="rt")
def sdk_runtime(settings: Settings, database: Database, fresh_emulator: EmulatorHandle) -> Runtime:
    """``rt`` for a test module whose calls go through the real SDKs to a fresh emulator
    (imported there: ``from tests.support.reconcile import sdk_runtime``): FAST, with the 10 s
    call deadline an SDK call may need on a loaded machine (FAST's 1 s is for fakes)."""
    return fast_runtime(settings, database, fresh_emulator, call_timeout_s=10.0)


@dataclass(frozen=True)
class Wired:
    tenant: str
    workspace: str
    tenant_id: str
    workspace_id: str


def wire(world: World, rt: Runtime, box: Sandbox, *, secret: str | None = None) -> Wired:
    """A service tenant + credential + workspace for the sandbox's AML workspace."""
    tenant = world.tenant(entra_tenant_id=box.tenant_id)
    credentials.put_credential(
        rt,
        CLI,
        tenant,
        {
            "kind": "service_principal",
            "client_id": box.client_id,
            "client_secret": secret or box.client_secret,
        },
        None,
    )
    workspace = world.workspace(
        tenant,
        subscription_id=box.subscription_id,
        resource_group=box.resource_group,
        workspace_name=box.workspace_name,
    )
    with rt.uow() as uow:
        t = uow.session.scalars(select(Tenant).where(Tenant.slug == tenant)).one()
        w = uow.session.scalars(select(Workspace).where(Workspace.tenant_id == t.id)).one()
        return Wired(tenant, workspace, t.id, w.id)


def ml_target(rt: Runtime, workspace_id: str) -> MlTarget:
    """How the service reaches a registered workspace in Azure (its adapters' argument)."""
    from service.services.discovery import target_of

    with rt.uow() as uow:
        ws = uow.session.get(Workspace, workspace_id)
        assert ws is not None
        uow.session.expunge(ws)
    return target_of(rt, ws)


def operations_of(rt: Runtime, tenant_id: str) -> list[Operation]:
    with rt.uow() as uow:
        rows = uow.session.scalars(
            select(Operation).where(Operation.tenant_id == tenant_id).order_by(Operation.created_at)
        )
        ops = list(rows)
        uow.session.expunge_all()  # readable after the unit of work rolls back
        return ops


def settled(rt: Runtime, tenant_id: str) -> bool:
    return all(op.state not in ("queued", "running") for op in operations_of(rt, tenant_id))


def run_until(
    reconciler: Reconciler, condition: Callable[[], bool], *, timeout_s: float = 15.0
) -> None:
    """Tick until ``condition()`` holds (then wait for in-flight work), or fail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reconciler.reconcile_once()
        reconciler.drain(0.05)
        if condition():
            reconciler.drain(timeout_s)
            return
        time.sleep(0.02)
    raise AssertionError("the reconciler did not reach the expected state in time")


def settle_with_one_worker(rt: Runtime, tenant_id: str, worker_id: str = "w") -> None:
    """Run one reconciler worker on the tenant until its operations have settled."""
    from service.worker.reconciler import Reconciler

    worker = Reconciler(rt, worker_id, only_tenants={tenant_id})
    try:
        run_until(worker, lambda: settled(rt, tenant_id))
    finally:
        worker.close()


def add_policy(
    rt: Runtime, tenant: str, workspace: str | None = None, endpoint: str | None = None
) -> None:
    """A policy at the scope named (through the use case, as an operator would)."""
    from service.services import policies

    policies.put_policy(
        rt, CLI, tenant, workspace, endpoint, {"app_insights": True}, None, max_attempts=3
    )


def add_retention_policy(rt: Runtime, tenant: str, workspace: str | None = None) -> None:
    """A retention policy at the scope named (through the use case, as an operator would)."""
    from service.services import retention_policies

    storage = (
        "/subscriptions/0f6c2a1e-1b2c-4d3e-8f4a-5b6c7d8e9f01/resourceGroups/rg/providers/"
        "Microsoft.Storage/storageAccounts/keepsa"
    )
    retention_policies.put_retention_policy(
        rt, CLI, tenant, workspace, {"destination_resource_id": storage}, None, max_attempts=3
    )


def add_operation(db: Database, tenant: str, workspace: str, endpoint: str) -> str:
    """A queued operation for an endpoint; its id."""
    with db.unit_of_work() as uow:
        t = uow.session.scalars(select(Tenant).where(Tenant.slug == tenant)).one()
        w = uow.session.scalars(
            select(Workspace).where(Workspace.tenant_id == t.id, Workspace.slug == workspace)
        ).one()
        op = operation_row(w, endpoint)
        uow.session.add(op)
        uow.commit()
        return op.id
