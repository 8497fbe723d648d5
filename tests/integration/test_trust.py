"""Trust (issue 10, items 1 and 6; issue 15, item 5): whose Azure a tenant's credential reaches.

The confused deputy, end to end through the service's real SDKs (azure-identity, azureml-core,
azure-monitor-query, azure-mgmt-resource) against the emulator: the service's own identity can
reach Contoso, and a Fabrikam admin tries to use it. Every step is refused, and the emulator's
request log shows no call for Contoso's resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from sqlalchemy import select

from emulator.testing import EmulatorHandle, Sandbox
from service.adapters.identity import AzureIdentity
from service.adapters.tenant_credentials import TenantBoundCredential
from service.config import Settings
from service.db.models import Operation, Tenant
from service.db.session import Database
from service.errors import WrongTenantToken
from service.ports import CredentialSpec
from service.services import audit_queue
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.api.helpers import Fingerprint
from tests.integration.log_support import wire
from tests.support.api import ApiClient, World, new_guid, unique
from tests.support.reconcile import fast_runtime, run_until, settled


@pytest.fixture(autouse=True)
def _no_pending_query_audit(runtime: Runtime) -> Iterator[None]:
    yield
    audit_queue.flush(runtime)


def allow_host_identity(monkeypatch: pytest.MonkeyPatch, runtime: Runtime, *slugs: str) -> None:
    """The operator names tenants in HOST_IDENTITY_TENANTS (the runtime reads it per call)."""
    allowed = runtime.settings.host_identity_tenants | frozenset(slugs)
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.with_overrides(host_identity_tenants=allowed)
    )


def host_identity_is(monkeypatch: pytest.MonkeyPatch, box: Sandbox) -> None:
    """The service's ambient identity (environment credential) is ``box``'s service principal."""
    monkeypatch.setenv("AZURE_TENANT_ID", box.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", box.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", box.client_secret)


def put_host_identity(api: ApiClient, key: str, tenant: str) -> Any:
    return api.put(f"/v1/tenants/{tenant}/credential", key, json={"kind": "host_identity"})


def touching(emulator: EmulatorHandle, since: int, box: Sandbox) -> list[Any]:
    """Requests since ``since`` that reached ``box``'s resources (not its Entra token endpoint:
    the service must obtain a token to read whose it is)."""
    marks = {box.subscription_id.lower(), (box.log_analytics_workspace_id or "").lower()}
    return [
        e
        for e in emulator.requests(since=since)
        if not e.route.startswith("entra.")
        and (
            e.tenant_id == box.tenant_id
            or e.subscription_id in marks
            or any(m and m in e.path.lower() for m in marks)
        )
    ]


def problem_code(response: Any) -> str:
    body = response.get_json(silent=True) or {}
    return str(body.get("code") or (body.get("error") or {}).get("code"))


# -- the reproduced scenario ---------------------------------------------------------------------
def test_a_tenant_admin_cannot_act_with_the_services_identity_on_another_tenants_azure(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    settings: Settings,
    database: Database,
    emulator: EmulatorHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contoso, fabrikam = emulator.sandbox(prefix="contoso"), emulator.sandbox(prefix="fabrikam")
    for name in ("ep-0", "ep-1", "ep-2"):
        contoso.add_service(name, compute_type="AKS", app_insights_enabled=True)
    host_identity_is(monkeypatch, contoso)  # the service's own identity reaches Contoso
    fab = world.tenant(entra_tenant_id=fabrikam.tenant_id)
    fab_admin, fab_reader = world.key("admin", fab), world.key("reader", fab)
    mark = emulator.bookmark()

    # 1. A Fabrikam admin cannot choose the service's identity, nor re-point Fabrikam at
    #    Contoso's Entra tenant; neither can a global admin for a tenant nobody allow-listed.
    before = Fingerprint.of(database)
    refused = put_host_identity(api, fab_admin, fab)
    assert (refused.status_code, problem_code(refused)) == (403, "host_identity_not_allowed")
    repoint = api.patch(
        f"/v1/tenants/{fab}", fab_admin, json={"entra_tenant_id": contoso.tenant_id}
    )
    assert repoint.status_code == 403
    refused = put_host_identity(api, admin_key, fab)
    assert (refused.status_code, problem_code(refused)) == (403, "host_identity_not_allowed")
    assert Fingerprint.of(database) == before

    # 2. Misconfigured on purpose: the operator names Fabrikam and a global admin sets it. The
    #    host identity's tokens are Contoso's: none of them is ever used.
    allow_host_identity(monkeypatch, runtime, fab)
    assert put_host_identity(api, admin_key, fab).status_code == 201
    verify = api.post(f"/v1/tenants/{fab}/credential/verify", fab_admin)
    assert (verify.status_code, problem_code(verify)) == (424, "wrong_tenant_token")

    # 3. Registering Contoso's workspace under Fabrikam.
    body = {
        "slug": unique("w"),
        "subscription_id": contoso.subscription_id,
        "resource_group": contoso.resource_group,
        "workspace_name": contoso.workspace_name,
    }
    before = Fingerprint.of(database)
    register = api.post(f"/v1/tenants/{fab}/workspaces", fab_admin, json=body)
    assert (register.status_code, problem_code(register)) == (424, "wrong_tenant_token")
    assert Fingerprint.of(database) == before

    # 4. A registration that predates these checks: every use of it is refused.
    ws = world.workspace(
        fab,
        subscription_id=contoso.subscription_id,
        resource_group=contoso.resource_group,
        workspace_name=contoso.workspace_name,
        log_analytics_workspace_id=contoso.log_analytics_workspace_id,
        app_insights_resource_id=contoso.app_insights_resource_id,
    )
    world.endpoints(fab, ws, ["ep-0", "ep-1", "ep-2"])
    base = f"/v1/tenants/{fab}/workspaces/{ws}"
    steps = {
        "sync": api.post(f"{base}/sync", fab_admin),
        "container logs": api.get(
            f"{base}/endpoints/ep-0/container-logs", fab_reader, query_string={"tail": "5"}
        ),
        "log query": api.post(
            f"{base}/logs/query", fab_reader, json={"query": "AppRequests | take 5"}
        ),
        "telemetry view": api.get(f"{base}/endpoints/ep-0/telemetry/requests", fab_reader),
        "compat query": api.call(
            "POST",
            f"/loganalytics/v1/workspaces/{contoso.log_analytics_workspace_id}/query",
            fab_reader,
            validate=False,
            json={"query": "AppRequests | take 5"},
        ),
    }
    for step, response in steps.items():
        assert response.status_code == 424, (step, response.get_data(as_text=True))
        assert "wrong_tenant_token" in response.get_data(as_text=True) or (
            "another Entra tenant" in response.get_data(as_text=True)
        ), step

    # 5. A policy that would turn App Insights off on Contoso's endpoints: the reconciler fails
    #    its operations without a call, and Contoso's services are untouched.
    policy = api.put(f"/v1/tenants/{fab}/policy", fab_admin, json={"app_insights": False})
    assert policy.status_code == 202, policy.get_data(as_text=True)
    worker_rt = fast_runtime(
        settings.with_overrides(host_identity_tenants={fab}), database, emulator
    )
    with runtime.uow() as uow:
        fab_id = uow.session.scalars(select(Tenant.id).where(Tenant.slug == fab)).one()
    reconciler = Reconciler(worker_rt, unique("trust-worker"), only_tenants={fab_id})
    try:
        run_until(reconciler, lambda: settled(worker_rt, fab_id))
    finally:
        reconciler.close()
    with runtime.uow() as uow:
        ops = uow.session.scalars(select(Operation).where(Operation.tenant_id == fab_id)).all()
        assert ops
        assert {op.state for op in ops} == {"failed"}
        assert all("Entra tenant" in (op.last_error or "") for op in ops)
    for name in ("ep-0", "ep-1", "ep-2"):
        assert contoso.service(name)["appInsightsEnabled"] is True

    # Not one request reached Contoso's subscription, workspace or logs.
    assert touching(emulator, mark, contoso) == []


# -- host identity: who may choose it ------------------------------------------------------------
def test_only_a_global_admin_may_choose_host_identity_and_only_for_named_tenants(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    database: Database,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host_identity_is(monkeypatch, sandbox)
    named, unnamed = world.tenant(entra_tenant_id=sandbox.tenant_id), world.tenant()
    named_admin = world.key("admin", named)
    allow_host_identity(monkeypatch, runtime, named)
    before = Fingerprint.of(database)
    for key, tenant in (
        (named_admin, named),  # its own admin, even for a named tenant
        (admin_key, unnamed),  # a global admin, for a tenant nobody named
    ):
        r = put_host_identity(api, key, tenant)
        assert (r.status_code, problem_code(r)) == (403, "host_identity_not_allowed")
    assert Fingerprint.of(database) == before

    assert put_host_identity(api, admin_key, named).status_code == 201
    v = api.post(f"/v1/tenants/{named}/credential/verify", admin_key)
    assert v.status_code == 200, v.get_json()
    assert v.get_json()["identity"]["tenant_id"] == sandbox.tenant_id

    # Taken off the list later: the stored credential stops working at once.
    monkeypatch.setattr(
        runtime, "settings", runtime.settings.with_overrides(host_identity_tenants=frozenset())
    )
    v = api.post(f"/v1/tenants/{named}/credential/verify", admin_key)
    assert (v.status_code, problem_code(v)) == (403, "host_identity_not_allowed")


def test_a_tenant_admin_cannot_change_its_entra_tenant_but_a_global_admin_can(
    api: ApiClient, world: World, admin_key: str, database: Database
) -> None:
    tenant = world.tenant()
    tenant_admin = world.key("admin", tenant)
    before = Fingerprint.of(database)
    r = api.patch(f"/v1/tenants/{tenant}", tenant_admin, json={"entra_tenant_id": new_guid()})
    assert r.status_code == 403
    assert Fingerprint.of(database) == before
    same = api.get(f"/v1/tenants/{tenant}", admin_key).get_json()["entra_tenant_id"]
    unchanged = api.patch(f"/v1/tenants/{tenant}", tenant_admin, json={"entra_tenant_id": same})
    assert unchanged.status_code == 200
    moved = new_guid()
    r = api.patch(f"/v1/tenants/{tenant}", admin_key, json={"entra_tenant_id": moved})
    assert r.status_code == 200
    assert r.get_json()["entra_tenant_id"] == moved


def test_verify_without_an_identity_on_the_host_says_so_without_asking_entra(
    api: ApiClient,
    world: World,
    admin_key: str,
    runtime: Runtime,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)
    tenant = world.tenant(entra_tenant_id=sandbox.tenant_id)
    allow_host_identity(monkeypatch, runtime, tenant)
    assert put_host_identity(api, admin_key, tenant).status_code == 201
    mark = emulator.bookmark()
    v = api.post(f"/v1/tenants/{tenant}/credential/verify", admin_key)
    assert (v.status_code, problem_code(v)) == (424, "no_host_identity")
    assert "no Azure identity is available on this host" in v.get_json()["detail"]
    assert emulator.requests("entra.", since=mark) == []
    cred = api.get(f"/v1/tenants/{tenant}/credential", admin_key).get_json()
    assert cred["status"] == "no_host_identity"


# -- wrong-tenant tokens -------------------------------------------------------------------------
class _FixedToken:
    """A TokenCredential double (a port fake, not an SDK class) handing out one token."""

    def __init__(self, claims: dict[str, Any]) -> None:
        import jwt

        self.token = jwt.encode(claims, "k" * 32, algorithm="HS256")
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken(self.token, 4_102_444_800)


def test_a_token_is_handed_out_only_when_its_tid_is_the_tenants_entra_tenant() -> None:
    ours, theirs = new_guid(), new_guid()
    assert TenantBoundCredential(_FixedToken({"tid": ours}), ours.upper()).get_token("s").token
    for claims in ({"tid": theirs}, {}, {"tid": ""}):
        with pytest.raises(WrongTenantToken):
            TenantBoundCredential(_FixedToken(claims), ours).get_token("s")
    opaque = _FixedToken({"tid": ours})
    opaque.token = "not-a-jwt"
    with pytest.raises(WrongTenantToken):
        TenantBoundCredential(opaque, ours).get_token("s")


def test_a_token_accepted_once_does_not_let_a_later_token_of_another_tenant_through() -> None:
    ours, theirs = new_guid(), new_guid()
    inner = _FixedToken({"tid": ours})
    bound = TenantBoundCredential(inner, ours)
    first = inner.token
    assert [bound.get_token("s").token for _ in range(3)] == [first] * 3
    inner.token = _FixedToken({"tid": theirs}).token  # e.g. refreshed from a changed secret
    with pytest.raises(WrongTenantToken):
        bound.get_token("s")
    for n in range(2 * TenantBoundCredential.REMEMBERED):  # many refreshes of our own
        inner.token = _FixedToken({"tid": ours, "n": n}).token
        assert bound.get_token("s").token == inner.token
    inner.token = first
    assert bound.get_token("s").token == first  # forgotten, so decoded again: still ours


@pytest.mark.parametrize("kind", ["service_principal", "delegated", "host_identity"])
def test_every_credential_kind_is_bound_to_the_tenants_entra_tenant(
    settings: Settings, sandbox: Sandbox, kind: str
) -> None:
    class _NoStore:
        def load(self) -> tuple[str | None, int]:
            return None, 0

    spec = CredentialSpec(
        tenant_key=new_guid(),
        fingerprint="f",
        entra_tenant_id=sandbox.tenant_id,  # msal reads its authority's metadata at once
        kind=kind,
        client_id=new_guid(),
        client_secret="s" if kind == "service_principal" else None,
        cache_store=_NoStore() if kind == "delegated" else None,  # type: ignore[arg-type]
    )
    credential = AzureIdentity(settings.azure).credential(spec)
    assert isinstance(credential, TenantBoundCredential)


def test_a_workspace_registers_only_in_a_subscription_of_the_tenants_entra_tenant(
    api: ApiClient,
    world: World,
    admin_key: str,
    database: Database,
    emulator: EmulatorHandle,
) -> None:
    contoso, fabrikam = emulator.sandbox(prefix="contoso"), emulator.sandbox(prefix="fabrikam")
    fab = world.azure_tenant(fabrikam)  # Fabrikam's own, working service principal
    fab_admin = world.key("admin", fab)
    bare = world.tenant(entra_tenant_id=fabrikam.tenant_id)  # no credential at all

    def body(box: Sandbox) -> dict[str, str]:
        return {
            "slug": unique("w"),
            "subscription_id": box.subscription_id,
            "resource_group": box.resource_group,
            "workspace_name": box.workspace_name,
        }

    mark = emulator.bookmark()
    before = Fingerprint.of(database)
    foreign = api.post(f"/v1/tenants/{fab}/workspaces", fab_admin, json=body(contoso))
    assert (foreign.status_code, problem_code(foreign)) == (424, "subscription_not_in_tenant")
    assert contoso.subscription_id not in foreign.get_data(as_text=True) or (
        "cannot reach" in foreign.get_json()["detail"]
    )
    assert Fingerprint.of(database) == before
    assert touching(emulator, mark, contoso) == []  # asked by listing Fabrikam's own

    unknown = api.post(
        f"/v1/tenants/{fab}/workspaces",
        fab_admin,
        json={**body(fabrikam), "subscription_id": new_guid()},
    )
    assert (unknown.status_code, problem_code(unknown)) == (424, "subscription_not_in_tenant")

    missing = api.post(f"/v1/tenants/{bare}/workspaces", admin_key, json=body(fabrikam))
    assert (missing.status_code, problem_code(missing)) == (409, "credential_missing")
    assert Fingerprint.of(database) == before

    own = api.post(f"/v1/tenants/{fab}/workspaces", fab_admin, json=body(fabrikam))
    assert own.status_code == 201, own.get_data(as_text=True)
    listed = emulator.requests("arm.subscriptions", since=mark)
    assert listed
    assert {e.tenant_id for e in listed} == {fabrikam.tenant_id}


# -- issue 10 item 6: a rejected credential is 424 on every log route ----------------------------
def test_a_rejected_credential_is_424_credential_rejected_on_every_log_route(
    api: ApiClient, world: World, admin_key: str, runtime: Runtime, emulator: EmulatorHandle
) -> None:
    box = emulator.sandbox()
    wired = wire(api, world, admin_key, box)
    put = api.put(  # the secret was rotated in Entra; a wrong one is stored here
        f"/v1/tenants/{wired.tenant}/credential",
        admin_key,
        json={"kind": "service_principal", "client_id": box.client_id, "client_secret": "wrong"},
    )
    assert put.status_code == 200, put.get_data(as_text=True)
    endpoint = f"{wired.base}/endpoints/scorer-a"
    routes = {
        "logs/query": api.post(
            f"{wired.base}/logs/query", wired.reader, json={"query": "AppRequests | take 1"}
        ),
        **{
            f"telemetry/{view}": api.get(f"{endpoint}/telemetry/{view}", wired.reader)
            for view in ("requests", "dependencies", "exceptions", "traces")
        },
    }
    for route, r in routes.items():
        assert (r.status_code, problem_code(r)) == (424, "credential_rejected"), (
            route,
            r.get_data(as_text=True),
        )
        assert "Retry-After" not in r.headers, route
    compat = api.call(
        "POST",
        f"/loganalytics/v1/workspaces/{box.log_analytics_workspace_id}/query",
        wired.reader,
        validate=False,
        json={"query": "AppRequests | take 1"},
    )
    assert compat.status_code == 424, compat.get_data(as_text=True)
