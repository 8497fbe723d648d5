"""SDK v2 deployments through the HTTP API: kinds in the endpoint list and compliance, the
online-endpoint policy scope, the parallel-update limit's validation, and container logs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.session import Database
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.api.helpers import assert_problem
from tests.support.api import ApiClient, World
from tests.support.reconcile import Wired, fast_runtime, run_until, settled, wire


@pytest.fixture
def rt(settings: Settings, database: Database, emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, emulator, call_timeout_s=10.0)


@pytest.fixture
def wired(world: World, rt: Runtime, sandbox: Sandbox) -> Wired:
    sandbox.add_online_endpoint("score", compute_type="Kubernetes")
    sandbox.add_online_deployment("score", "blue", logs="booting\nready\nserving\n")
    sandbox.add_service("old-aks", compute_type="AKS")
    return wire(world, rt, sandbox)


@pytest.fixture
def reconciler(rt: Runtime, wired: Wired) -> Iterator[Reconciler]:
    rec = Reconciler(rt, "online-api-worker", only_tenants={wired.tenant_id})
    yield rec
    rec.close()


def test_v2_deployments_are_listed_governed_and_logged_through_the_api(
    api: ApiClient, world: World, wired: Wired, rt: Runtime, reconciler: Reconciler
) -> None:
    operator = world.key("operator", wired.tenant)
    ws = f"/v1/tenants/{wired.tenant}/workspaces/{wired.workspace}"
    assert api.post(f"{ws}/sync", operator).status_code == 200
    listed = {e["name"]: e for e in api.get(f"{ws}/endpoints", operator).json["items"]}
    assert {n: e["kind"] for n, e in listed.items()} == {
        "old-aks": "aks",
        "score.blue": "kubernetes_online",
    }
    assert listed["score.blue"]["online_endpoint"] == "score"

    bad = api.put(f"{ws}/endpoints/score/policy", operator, json={"max_parallel_updates": 0})
    assert_problem(bad, 400)
    r = api.put(
        f"{ws}/endpoints/score/policy",
        operator,
        json={"app_insights": True, "model_data_collection": True, "max_parallel_updates": 2},
    )
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.json["policy"]["max_parallel_updates"] == 2
    (op,) = r.json["operations"]
    assert (op["endpoint"], op["target_kind"], op["rolls_instances"]) == (
        "score.blue",
        "kubernetes_online",
        True,
    )
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    got = api.get(f"{ws}/endpoints/score.blue", operator).json
    assert (got["app_insights_enabled"], got["data_collection_enabled"]) == (True, True)
    assert got["monitoring"]["desired"]["max_parallel_updates"] == {
        "value": 2,
        "source": "endpoint",
    }
    report = api.get(f"/v1/tenants/{wired.tenant}/compliance", operator).json
    assert report["totals"]["compliant"] == 2
    # The policy on the online endpoint's own name governs its deployments: it names something
    # live, not an endpoint still to be discovered.
    assert report["totals"]["unknown"] == 0, report
    assert report["workspaces"][0]["offenders"] == []

    logs = api.get(f"{ws}/endpoints/score.blue/container-logs?tail=2", operator)
    assert logs.status_code == 200, logs.get_data(as_text=True)
    assert logs.json["content"] == "ready\nserving\n"
