"""/metrics reflects the work: log queries by tenant, Azure calls, cache/coalescing, operations,
and the reconciler's sweeps (prometheus-client, read through the API's own /metrics)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.models import Tenant
from service.db.session import Database
from service.services import audit_queue
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.integration.log_support import wire
from tests.support.api import ApiClient, World
from tests.support.reconcile import add_policy, fast_runtime, operations_of, run_until, settled
from tests.support.reconcile import wire as wire_ml


@pytest.fixture(autouse=True)
def _no_pending_query_audit(runtime: Runtime) -> Iterator[None]:
    yield
    audit_queue.flush(runtime)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and ",".join(sorted((match.group(1) or "").split(","))).strip(",") == wanted:
            return float(match.group(2))
    return 0.0


def test_a_log_query_is_counted_for_its_tenant_and_as_an_azure_call(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, runtime: Runtime
) -> None:
    wired = wire(api, world, admin_key, sandbox)
    before = api.get("/metrics").get_data(as_text=True)
    body = {"query": "AppRequests | take 3", "timespan": "P7D"}
    r = api.post(f"{wired.base}/logs/query", admin_key, json=body)
    assert r.status_code == 200, r.json
    after = api.get("/metrics").get_data(as_text=True)
    with runtime.uow() as uow:
        tenant_id = uow.session.scalar(select(Tenant.id).where(Tenant.slug == wired.tenant))
    for name, labels in (
        ("amlcp_log_queries_total", {"tenant": tenant_id, "outcome": "success"}),
        ("amlcp_azure_calls_total", {"service": "log_analytics", "outcome": "ok"}),
        ("amlcp_log_query_cache_total", {"result": "azure"}),
    ):
        assert sample(after, name, **labels) == sample(before, name, **labels) + 1, name
    assert sample(after, "amlcp_azure_call_duration_seconds_count", service="log_analytics") > 0


def test_reconcile_sweeps_azure_ml_calls_and_operations_show_in_metrics(
    api: ApiClient,
    world: World,
    settings: Settings,
    database: Database,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
) -> None:
    rt = fast_runtime(settings, database, emulator)
    wired_ws = wire_ml(world, rt, sandbox)
    sandbox.add_service("metered", compute_type="ACI", app_insights_enabled=False)
    add_policy(rt, wired_ws.tenant)
    before = api.get("/metrics").get_data(as_text=True)
    reconciler = Reconciler(rt, only_tenants={wired_ws.tenant_id})
    try:
        run_until(
            reconciler,
            lambda: bool(operations_of(rt, wired_ws.tenant_id)) and settled(rt, wired_ws.tenant_id),
        )
    finally:
        reconciler.close()
    after = api.get("/metrics").get_data(as_text=True)
    sweeps = "amlcp_reconcile_sweep_duration_seconds_count"
    assert sample(after, sweeps) > sample(before, sweeps)
    calls = {"service": "azureml", "outcome": "ok"}
    assert sample(after, "amlcp_azure_calls_total", **calls) > sample(
        before, "amlcp_azure_calls_total", **calls
    )
    assert sample(after, "amlcp_operations", state="succeeded") >= 1
    assert "amlcp_reconcile_lag_seconds" in after


def test_the_request_id_reaches_azure_as_the_client_request_id(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, emulator: EmulatorHandle
) -> None:
    wired = wire(api, world, admin_key, sandbox)
    mark = emulator.bookmark()
    body = {"query": "AppRequests | take 1", "timespan": "P7D"}
    r = api.post(
        f"{wired.base}/logs/query", admin_key, json=body, headers={"X-Request-ID": "corr-7f3a"}
    )
    assert r.status_code == 200, r.json
    (query,) = [e for e in emulator.requests("la.", since=mark) if e.method == "POST"]
    assert query.client_request_id == "corr-7f3a"
