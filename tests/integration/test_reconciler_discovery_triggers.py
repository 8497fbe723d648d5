"""Endpoints appear as soon as they can (issue 15 item 3): when a tenant's credential becomes
usable (a delegated sign-in succeeds, a service principal is stored or verified) and when a
workspace is registered, the reconciler discovers on its next tick: no manual sync, no waiting
for ``DISCOVERY_INTERVAL_S`` (an hour here). The request itself makes no Azure call."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.models import Tenant, TenantCredential, Workspace, WorkspaceSync
from service.db.session import Database
from service.db.types import utcnow
from service.errors import ServiceError
from service.services import discovery
from service.services.discovery_due import discover_soon
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.support.api import ApiClient, World, new_guid
from tests.support.reconcile import fast_runtime, run_until


@pytest.fixture
def rt(settings: Settings, database: Database, emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, emulator)


@pytest.fixture
def reconciler(rt: Runtime) -> Iterator[Reconciler]:
    rec = Reconciler(rt, "trigger-worker", only_tenants=set())  # scoped by each test
    yield rec
    rec.close()


def _register(world: World, box: Sandbox) -> tuple[str, str, str, str]:
    """A tenant and its workspace (no credential yet): slugs and ids."""
    return _register_workspace_only(world, world.tenant(entra_tenant_id=box.tenant_id), box)


def _endpoints(api: ApiClient, key: str, tenant: str, workspace: str) -> list[str]:
    r = api.get(f"/v1/tenants/{tenant}/workspaces/{workspace}/endpoints", key)
    assert r.status_code == 200, r.json
    return sorted(e["name"] for e in r.json["items"])


def _tick(reconciler: Reconciler) -> None:
    reconciler.reconcile_once()
    reconciler.drain(15)


def _next_sync_in_s(database: Database, workspace_id: str) -> float:
    with database.unit_of_work() as uow:
        row = uow.session.get(WorkspaceSync, workspace_id)
        assert row is not None
        return (row.next_sync_at - utcnow()).total_seconds()


def test_endpoints_appear_after_a_delegated_sign_in_without_a_sync(
    api: ApiClient,
    world: World,
    admin_key: str,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("svc-a", compute_type="AKS", app_insights_enabled=False)
    tenant, workspace, tenant_id, workspace_id = _register(world, sandbox)
    assert reconciler.only_tenants is not None
    reconciler.only_tenants.add(tenant_id)
    app = emulator.state.add_public_client(sandbox.tenant_id)
    username = f"ops-{new_guid()[:8]}@contoso.example"
    emulator.state.add_user(sandbox.tenant_id, username)
    r = api.put(
        f"/v1/tenants/{tenant}/credential",
        admin_key,
        json={"kind": "delegated", "client_id": app.client_id},
    )
    assert r.status_code == 201, r.json

    _tick(reconciler)  # nobody signed in: discovery fails and is not due for an hour
    assert _next_sync_in_s(database, workspace_id) > 600
    assert _endpoints(api, admin_key, tenant, workspace) == []

    start = api.post(f"/v1/tenants/{tenant}/credential/device-logins", admin_key)
    assert start.status_code == 202, start.json
    since = emulator.bookmark()
    emulator.approve_device_code(start.json["user_code"], username)
    deadline = time.monotonic() + 10
    while api.get(start.headers["Location"], admin_key).json["state"] == "pending":
        assert time.monotonic() < deadline, "the sign-in did not complete"
        time.sleep(0.1)
    # The sign-in itself made no Azure ML call: discovery is the reconciler's.
    assert emulator.requests("mms.", since=since, subscription_id=sandbox.subscription_id) == []

    run_until(reconciler, lambda: bool(_endpoints(api, admin_key, tenant, workspace)), timeout_s=20)
    assert _endpoints(api, admin_key, tenant, workspace) == ["svc-a"]


def test_endpoints_appear_once_a_working_service_principal_replaces_a_rejected_one(
    api: ApiClient,
    world: World,
    admin_key: str,
    database: Database,
    sandbox: Sandbox,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("svc-b", compute_type="ACI", app_insights_enabled=False)
    tenant, workspace, tenant_id, workspace_id = _register(world, sandbox)
    assert reconciler.only_tenants is not None
    reconciler.only_tenants.add(tenant_id)
    path = f"/v1/tenants/{tenant}/credential"
    body = {"kind": "service_principal", "client_id": sandbox.client_id}
    r = api.put(path, admin_key, json={**body, "client_secret": "wrong-secret-value"})
    assert r.status_code == 201, r.json
    _tick(reconciler)
    assert _next_sync_in_s(database, workspace_id) > 600  # rejected: not due for an hour
    assert _endpoints(api, admin_key, tenant, workspace) == []

    r = api.put(path, admin_key, json={**body, "client_secret": sandbox.client_secret})
    assert r.status_code == 200, r.json
    assert _next_sync_in_s(database, workspace_id) <= 0
    run_until(reconciler, lambda: bool(_endpoints(api, admin_key, tenant, workspace)), timeout_s=20)
    assert _endpoints(api, admin_key, tenant, workspace) == ["svc-b"]


def test_a_credential_verified_usable_again_makes_discovery_due(
    api: ApiClient, world: World, admin_key: str, database: Database, sandbox: Sandbox
) -> None:
    tenant, _, tenant_id, workspace_id = _register(world, sandbox)
    r = api.put(
        f"/v1/tenants/{tenant}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert r.status_code == 201, r.json
    with database.unit_of_work() as uow:  # as after a failed listing with a rejected credential
        uow.session.add(
            WorkspaceSync(workspace_id=workspace_id, next_sync_at=utcnow() + timedelta(hours=1))
        )
        uow.session.execute(
            update(TenantCredential)
            .where(TenantCredential.tenant_id == tenant_id)
            .values(status="rejected")
        )
        uow.commit()
    v = api.post(f"/v1/tenants/{tenant}/credential/verify", admin_key)
    assert v.status_code == 200, v.json
    assert _next_sync_in_s(database, workspace_id) <= 0
    # Verifying an already usable credential again does not list anything again.
    with database.unit_of_work() as uow:
        uow.session.execute(
            update(WorkspaceSync)
            .where(WorkspaceSync.workspace_id == workspace_id)
            .values(next_sync_at=utcnow() + timedelta(hours=1))
        )
        uow.commit()
    assert api.post(f"/v1/tenants/{tenant}/credential/verify", admin_key).status_code == 200
    assert _next_sync_in_s(database, workspace_id) > 600


def test_a_registered_workspace_is_discovered_on_the_next_tick(
    api: ApiClient,
    world: World,
    admin_key: str,
    sandbox: Sandbox,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("svc-c", compute_type="AKS", app_insights_enabled=True)
    tenant = world.tenant(entra_tenant_id=sandbox.tenant_id)
    r = api.put(
        f"/v1/tenants/{tenant}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert r.status_code == 201, r.json
    _, workspace, tenant_id, _ = _register_workspace_only(world, tenant, sandbox)
    assert reconciler.only_tenants is not None
    reconciler.only_tenants.add(tenant_id)
    _tick(reconciler)
    assert _endpoints(api, admin_key, tenant, workspace) == ["svc-c"]


def _register_workspace_only(world: World, tenant: str, box: Sandbox) -> tuple[str, str, str, str]:
    workspace = world.workspace(
        tenant,
        subscription_id=box.subscription_id,
        resource_group=box.resource_group,
        workspace_name=box.workspace_name,
    )
    with world.db.unit_of_work() as uow:
        t = uow.session.scalars(select(Tenant).where(Tenant.slug == tenant)).one()
        w = uow.session.scalars(select(Workspace).where(Workspace.tenant_id == t.id)).one()
        return tenant, workspace, t.id, w.id


def test_a_listing_that_fails_while_discovery_was_made_due_leaves_it_due(
    api: ApiClient,
    world: World,
    admin_key: str,
    rt: Runtime,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    """The credential became usable while a listing with the old one was failing: the failure
    must not push the next discovery an interval away."""
    tenant, _, tenant_id, workspace_id = _register(world, sandbox)
    r = api.put(
        f"/v1/tenants/{tenant}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
    )
    assert r.status_code == 201, r.json
    with database.unit_of_work() as uow:
        uow.session.add(
            WorkspaceSync(workspace_id=workspace_id, next_sync_at=utcnow() + timedelta(hours=1))
        )
        uow.commit()
    sub = sandbox.subscription_id
    emulator.add_fault("latency", "mms.services_list", subscription_id=sub, latency_s=1.0, count=1)
    emulator.add_fault("status", "mms.services_list", subscription_id=sub, status=400, count=1)
    failed: list[BaseException] = []

    def listing() -> None:
        try:
            discovery.discover(rt, workspace_id)
        except ServiceError as exc:
            failed.append(exc)

    thread = threading.Thread(target=listing)
    thread.start()
    time.sleep(0.3)
    with database.unit_of_work() as uow:
        discover_soon(uow.session, tenant_id)
        uow.commit()
    thread.join(30)
    assert failed  # a permanent failure: normally not retried for an hour
    assert _next_sync_in_s(database, workspace_id) <= 0
