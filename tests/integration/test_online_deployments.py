"""Online deployments (SDK v2) governed like web services: discovery, both monitoring fields,
endpoint-scope policy with deployment overrides, the lost-update guard, failed operations,
429 + Retry-After and the parallel-update limit. Real azure-ai-ml against a private emulator."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.adapters.azure_calls import LIST_RETRY_WAIT_S
from service.config import Settings
from service.db.session import Database
from service.errors import AzureCallFailed, WriteNotSent
from service.services import compliance, discovery, endpoints, policies
from service.services.pagination import PageRequest
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.support.api import World
from tests.support.reconcile import (
    CLI,
    Wired,
    fast_runtime,
    ml_target,
    operations_of,
    run_until,
    sdk_runtime,  # noqa: F401 - the `rt` fixture
    settled,
    wire,
)

USER_COLLECTIONS = {
    "collections": {
        "request": {"dataCollectionMode": "Enabled", "samplingRate": 0.5},
        "custom_features": {"dataCollectionMode": "Enabled"},
    },
    "rollingRate": "Day",
}


@pytest.fixture
def box(fresh_emulator: EmulatorHandle) -> Sandbox:
    box = fresh_emulator.sandbox()
    box.add_online_endpoint("churn", compute_type="Managed")
    box.add_online_deployment("churn", "blue", traffic=90)
    box.add_online_deployment("churn", "green", traffic=10, data_collector=USER_COLLECTIONS)
    box.add_online_endpoint("fraud", compute_type="Kubernetes")
    box.add_online_deployment("fraud", "main", app_insights_enabled=True)
    box.add_service("legacy", compute_type="ACI", app_insights_enabled=False)
    return box


@pytest.fixture
def wired(world: World, rt: Runtime, box: Sandbox) -> Wired:
    return wire(world, rt, box)


@pytest.fixture
def reconciler(rt: Runtime, wired: Wired) -> Iterator[Reconciler]:
    rec = Reconciler(rt, "online-worker", only_tenants={wired.tenant_id})
    yield rec
    rec.close()


def _put_policy(rt: Runtime, w: Wired, data: dict[str, Any], endpoint: str | None = None) -> Any:
    change, _ = policies.put_policy(
        rt,
        CLI,
        w.tenant,
        w.workspace if endpoint else None,
        endpoint,
        data,
        None,
        max_attempts=4,
    )
    return change


def _targets(rt: Runtime, w: Wired) -> dict[str, Any]:
    page = endpoints.list_endpoints(rt, CLI, w.tenant, w.workspace, PageRequest(200, None))
    return {e.name: e for e in page.items}


def _offenders(rt: Runtime, w: Wired) -> dict[str, tuple[str | None, str, str | None]]:
    report = compliance.tenant_compliance(rt, CLI, w.tenant)
    return {
        o.endpoint: (o.kind, o.compliance.value, o.reason)
        for ws in report.workspaces
        for o in ws.offenders
    }


def test_discovery_lists_web_services_and_every_online_deployment_with_its_kind(
    rt: Runtime, wired: Wired, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.state.online.page_size = 1  # every list is paged: nextLink is followed
    result = discovery.discover(rt, wired.workspace_id)
    assert result.appeared == ["churn.blue", "churn.green", "fraud.main", "legacy"]
    targets = _targets(rt, wired)
    assert {n: t.kind for n, t in targets.items()} == {
        "churn.blue": "managed_online",
        "churn.green": "managed_online",
        "fraud.main": "kubernetes_online",
        "legacy": "aci",
    }
    blue = targets["churn.blue"]
    assert (blue.online_endpoint, blue.deployment, blue.compute_type) == (
        "churn",
        "blue",
        "Managed",
    )
    assert blue.rolls_instances
    assert not targets["legacy"].rolls_instances
    assert targets["fraud.main"].app_insights_enabled is True
    # green collects request payloads and custom data, not model inputs/outputs: not "enabled".
    assert targets["churn.green"].data_collection_enabled is False
    # Every list (endpoints and deployments, all pages) through the SDK's ARM client, at the
    # api-version azure-ai-ml sends for online deployments.
    listed = [
        *fresh_emulator.requests("arm.online_endpoints_list"),
        *fresh_emulator.requests("arm.online_deployments_list"),
    ]
    assert len(listed) > 3
    assert all("api-version=2023-04-01-preview" in e.query for e in listed)


def test_a_list_page_that_met_a_server_error_is_read_again_in_place(
    rt: Runtime, wired: Wired, fresh_emulator: EmulatorHandle
) -> None:
    fresh_emulator.add_fault("status", "arm.online_deployments_list", status=500, count=1)
    fresh_emulator.add_fault("status", "mms.services_list", status=503, count=1)
    result = discovery.discover(rt, wired.workspace_id)  # one discovery, not a failed one
    assert result.appeared == ["churn.blue", "churn.green", "fraud.main", "legacy"]
    lists = fresh_emulator.requests("arm.online_deployments_list")
    # The endpoints' lists run at once: the one that met the 500 is read again, after the wait.
    failed = next(e for e in lists if e.status == 500)
    again = [e for e in lists if e.path == failed.path]
    assert [e.status for e in again] == [500, 200]
    assert again[1].time - failed.time >= LIST_RETRY_WAIT_S
    assert [e.status for e in fresh_emulator.requests("mms.services_list")] == [503, 200]


def test_the_deployments_of_each_online_endpoint_are_listed_at_once_not_one_after_another(
    rt: Runtime, wired: Wired, fresh_emulator: EmulatorHandle
) -> None:
    # Each list of deployments answers after 0.3 s: one after another, a workspace of N online
    # endpoints took N round trips before its discovery could record.
    fresh_emulator.add_fault("latency", "arm.online_deployments_list", latency_s=0.3)
    result = discovery.discover(rt, wired.workspace_id)
    assert result.appeared == ["churn.blue", "churn.green", "fraud.main", "legacy"]
    lists = fresh_emulator.requests("arm.online_deployments_list")
    assert sorted(e.path.split("/")[-2] for e in lists) == ["churn", "fraud"]
    assert all(e.status == 200 for e in lists)
    spans = [(e.time - e.duration_ms / 1000, e.time) for e in lists]
    # Every one began before any ended: they ran together (in turn, none would overlap).
    assert max(start for start, _ in spans) < min(end for _, end in spans)


def test_an_endpoint_policy_governs_all_its_deployments_and_a_deployment_overrides_it(
    rt: Runtime, wired: Wired, box: Sandbox, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    change = _put_policy(rt, wired, {"app_insights": True, "model_data_collection": True}, "churn")
    assert sorted(op.endpoint for op in change.operations) == ["churn.blue", "churn.green"]
    assert all(
        op.rolls_instances and op.target_kind == "managed_online" for op in change.operations
    )
    _put_policy(rt, wired, {"model_data_collection": False}, "churn.green")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert [op.state for op in operations_of(rt, wired.tenant_id)] == ["succeeded", "succeeded"]

    blue = box.online_deployment("churn", "blue")["properties"]
    assert blue["appInsightsEnabled"] is True
    assert blue["dataCollector"]["collections"] == {
        "model_inputs": {"dataCollectionMode": "Enabled"},
        "model_outputs": {"dataCollectionMode": "Enabled"},
    }
    green = box.online_deployment("churn", "green")["properties"]
    assert green["appInsightsEnabled"] is True
    # The deployment override keeps data collection off; the user's own collections stay.
    assert green["dataCollector"]["collections"]["request"] == {
        "dataCollectionMode": "Enabled",
        "samplingRate": 0.5,
    }
    assert green["dataCollector"]["collections"]["custom_features"]["dataCollectionMode"] == (
        "Enabled"
    )
    assert green["dataCollector"]["rollingRate"] == "Day"
    targets = _targets(rt, wired)
    desired = targets["churn.green"].monitoring.desired
    assert desired["app_insights"] == {"value": True, "source": "endpoint"}
    assert desired["model_data_collection"] == {"value": False, "source": "deployment"}
    assert "churn.blue" not in _offenders(rt, wired)  # compliant
    # fraud.main is governed by nobody: untouched.
    assert box.online_deployment("fraud", "main")["properties"]["dataCollector"] is None


def test_both_fields_are_switched_off_again_and_drift_is_corrected(
    rt: Runtime, wired: Wired, box: Sandbox, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    _put_policy(rt, wired, {"app_insights": True, "model_data_collection": True}, "fraud")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert box.online_deployment("fraud", "main")["properties"]["dataCollector"] is not None
    _put_policy(rt, wired, {"app_insights": False, "model_data_collection": False}, "fraud")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    props = box.online_deployment("fraud", "main")["properties"]
    assert props["appInsightsEnabled"] is False
    assert {c["dataCollectionMode"] for c in props["dataCollector"]["collections"].values()} == {
        "Disabled"
    }
    # Someone switches App Insights back on in the portal: the next sweep corrects it.
    box.set_online_deployment_property("fraud", "main", "appInsightsEnabled", True)
    result = discovery.discover(rt, wired.workspace_id)
    assert len(result.operations) == 1
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert box.online_deployment("fraud", "main")["properties"]["appInsightsEnabled"] is False
    assert _offenders(rt, wired).get("fraud.main") is None


def test_a_change_made_between_read_and_write_is_not_overwritten(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    target = ml_target(rt, wired.workspace_id)
    decided_on = rt.ml.get_service(target, "churn.blue")
    assert decided_on is not None
    assert decided_on.version is not None
    # Someone changes the deployment after our read: our PUT would write their change back.
    box.set_online_deployment_property("churn", "blue", "environmentVariables", {"WORKERS": "4"})
    with pytest.raises(AzureCallFailed, match="changed in Azure since it was read"):
        rt.ml.start_update(
            target, "churn.blue", app_insights=True, expected_version=decided_on.version
        )
    assert fresh_emulator.requests("arm.online_deployment_put") == []
    # Through the reconciler: it reads again, writes once, and both changes hold.
    _put_policy(rt, wired, {"app_insights": True}, "churn.blue")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    props = box.online_deployment("churn", "blue")["properties"]
    assert props["appInsightsEnabled"] is True
    assert props["environmentVariables"] == {"WORKERS": "4"}
    assert len(fresh_emulator.requests("arm.online_deployment_put")) == 1


def test_a_failed_deployment_operation_fails_the_operation_with_azures_error(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.state.online.fail_next_operations(1, "Not enough quota for Standard_DS3_v2")
    _put_policy(rt, wired, {"app_insights": True}, "churn.blue")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    (op,) = operations_of(rt, wired.tenant_id)
    assert op.state == "failed"
    assert "Not enough quota" in (op.last_error or "")
    # Followed by reading the deployment; at rest and still off, its operation was asked why.
    assert len(fresh_emulator.requests("arm.mfe_operation")) == 1
    assert len(fresh_emulator.requests("arm.online_deployment_put")) == 1
    assert box.online_deployment("churn", "blue")["properties"]["appInsightsEnabled"] is False
    assert _offenders(rt, wired)["churn.blue"][1] == "failed"


def test_a_throttled_put_is_retried_no_earlier_than_retry_after(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.add_fault("throttle", "arm.online_deployment_put", retry_after_s=1, count=1)
    _put_policy(rt, wired, {"app_insights": True}, "churn.blue")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    (op,) = operations_of(rt, wired.tenant_id)
    assert (op.state, op.attempts) == ("succeeded", 1)  # a 429 is a wait: not charged
    first, second = fresh_emulator.requests("arm.online_deployment_put")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0
    assert box.online_deployment("churn", "blue")["properties"]["appInsightsEnabled"] is True


def test_one_deployment_of_an_endpoint_is_updated_at_a_time_by_default(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.state.online.operation_duration_s = 0.3
    _put_policy(rt, wired, {"app_insights": True}, "churn")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert [op.state for op in operations_of(rt, wired.tenant_id)] == ["succeeded", "succeeded"]
    puts = fresh_emulator.requests("arm.online_deployment_put")
    assert len(puts) == 2
    # The second PUT starts only after the first operation was seen finished (by a read of its
    # deployment at rest).
    first = _operations(fresh_emulator)[0]
    first_seen_done = min(
        r.time
        for r in fresh_emulator.requests("arm.online_deployment_get")
        if r.path.split("?")[0].endswith(f"/deployments/{first.key[2]}")
        and r.time >= (first.end_time or first.created)
    )
    assert puts[1].time > first_seen_done
    assert _max_parallel_puts(fresh_emulator) == 1


def test_a_deployment_waiting_for_its_update_slot_does_not_read_the_deployment(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.state.online.operation_duration_s = 1.0
    _put_policy(rt, wired, {"app_insights": True}, "churn")
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert [op.state for op in operations_of(rt, wired.tenant_id)] == ["succeeded", "succeeded"]
    # Each deployment: the decision's read, the guard's read before its PUT, the read that saw
    # the update end (the first look, a third of the 4 s test lease after the PUT, comes after
    # the 1 s operation). The one that waited for the other's slot read nothing while it waited.
    assert len(fresh_emulator.requests("arm.online_deployment_get")) == 6
    assert fresh_emulator.requests("arm.mfe_operation") == []  # the reads told all


def test_max_parallel_updates_lets_more_deployments_update_together(
    rt: Runtime, wired: Wired, box: Sandbox, fresh_emulator: EmulatorHandle, reconciler: Reconciler
) -> None:
    discovery.discover(rt, wired.workspace_id)
    fresh_emulator.state.online.operation_duration_s = 0.5
    change = _put_policy(rt, wired, {"app_insights": True, "max_parallel_updates": 2}, "churn")
    assert change.policy.max_parallel_updates == 2
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert _max_parallel_puts(fresh_emulator) == 2


def _operations(emulator: EmulatorHandle) -> list[Any]:
    return sorted(emulator.state.online._operations.values(), key=lambda o: o.created)


def _max_parallel_puts(emulator: EmulatorHandle) -> int:
    """The most deployment operations of one endpoint running at the same time."""
    spans = sorted(
        (o.created, o.end_time or o.created) for o in emulator.state.online._operations.values()
    )
    most = 0
    for start, _ in spans:
        most = max(most, sum(1 for s, e in spans if s <= start < e or s == start))
    return most


def test_a_deployment_put_without_an_answer_in_time_keeps_its_lease_and_is_never_sent_twice(
    world: World, settings: Settings, database: Database, fresh_emulator: EmulatorHandle
) -> None:
    """The PUT is answered three call deadlines late (longer than a lease): it may have been
    applied, so the attempt keeps its lease until it is answered, then follows the operation it
    started. Another worker ticking all along starts no attempt and nothing is PUT again."""
    box = fresh_emulator.sandbox()
    box.add_online_endpoint("late", compute_type="Managed")
    box.add_online_deployment("late", "blue")
    rt = fast_runtime(settings, database, fresh_emulator, call_timeout_s=2.0)
    w = wire(world, rt, box)
    discovery.discover(rt, w.workspace_id)
    _put_policy(rt, w, {"app_insights": True}, "late")
    fresh_emulator.add_fault(
        "latency", "arm.online_deployment_put", latency_s=6.0, count=1, tenant_id=box.tenant_id
    )
    first = Reconciler(rt, "first", only_tenants={w.tenant_id})
    second = Reconciler(rt, "second", only_tenants={w.tenant_id})
    claimed_by_second = 0
    try:
        first.reconcile_once()
        deadline = time.monotonic() + 60
        while not settled(rt, w.tenant_id) and time.monotonic() < deadline:
            first.reconcile_once()
            claimed_by_second += second.reconcile_once().claimed
            time.sleep(0.05)
        first.drain(10)
        second.drain(10)
    finally:
        first.close()
        second.close()
    (op,) = operations_of(rt, w.tenant_id)
    assert (op.state, op.attempts, op.last_error) == ("succeeded", 1, None)
    assert claimed_by_second == 0
    puts = fresh_emulator.requests("arm.online_deployment_put")
    assert [e.status for e in puts] == [200]
    assert box.online_deployment("late", "blue")["properties"]["appInsightsEnabled"] is True


def test_a_throttled_read_before_the_write_is_retried_in_place_not_with_a_new_attempt(
    rt: Runtime, wired: Wired, fresh_emulator: EmulatorHandle
) -> None:
    target = ml_target(rt, wired.workspace_id)
    seen = rt.ml.get_service(target, "churn.blue")
    assert seen is not None
    fresh_emulator.add_fault("throttle", "arm.online_deployment_get", retry_after_s=1, count=1)
    rt.ml.start_update(target, "churn.blue", app_insights=True, expected_version=seen.version)
    *_, throttled, fresh = fresh_emulator.requests("arm.online_deployment_get")
    assert (throttled.status, fresh.status) == (429, 200)
    assert fresh.time - throttled.time >= 1.0  # Azure's Retry-After
    assert len(fresh_emulator.requests("arm.online_deployment_put")) == 1


def test_a_paced_write_whose_guard_read_is_throttled_sends_no_put(
    rt: Runtime, wired: Wired, fresh_emulator: EmulatorHandle
) -> None:
    """With a write slot (``send_by``) the guard read is not retried inside the write: no PUT,
    Azure's Retry-After goes back to the attempt (it waits it out and takes a new slot)."""
    target = ml_target(rt, wired.workspace_id)
    seen = rt.ml.get_service(target, "churn.blue")
    assert seen is not None
    fresh_emulator.add_fault("throttle", "arm.online_deployment_get", retry_after_s=1, count=1)

    def update() -> str:
        return rt.ml.start_update(
            target,
            "churn.blue",
            app_insights=True,
            expected_version=seen.version,
            send_by=time.time() + 1,
        )

    with pytest.raises(WriteNotSent) as not_sent:
        update()
    assert not_sent.value.retry_after_s == 1
    assert fresh_emulator.requests("arm.online_deployment_get")[-1].status == 429
    assert fresh_emulator.requests("arm.online_deployment_put") == []
    time.sleep(1)
    update()
    assert len(fresh_emulator.requests("arm.online_deployment_put")) == 1
