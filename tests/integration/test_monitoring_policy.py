"""Monitoring policy end to end: the API, the reconciler and real azureml-core against the emulator.

Scope resolution, enforce vs audit, drift correction, vanished endpoints, policy before discovery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.config import Settings
from service.db.session import Database
from service.services.runtime import Runtime
from service.worker.reconciler import Reconciler
from tests.api.helpers import Fingerprint, assert_problem
from tests.support.api import ApiClient, World
from tests.support.reconcile import Wired, fast_runtime, operations_of, run_until, settled, wire


@pytest.fixture
def rt(settings: Settings, database: Database, emulator: EmulatorHandle) -> Runtime:
    return fast_runtime(settings, database, emulator)


@pytest.fixture
def reconciler(rt: Runtime, wired: Wired) -> Iterator[Reconciler]:
    # Only this test's tenant: other tests' operations share the session database.
    rec = Reconciler(rt, "test-worker", only_tenants={wired.tenant_id})
    yield rec
    rec.close()


@pytest.fixture
def operator(world: World, wired: Wired) -> str:
    return world.key("operator", wired.tenant)


@pytest.fixture
def wired(world: World, rt: Runtime, sandbox: Sandbox) -> Wired:
    return wire(world, rt, sandbox)


def _paths(w: Wired) -> tuple[str, str]:
    tenant = f"/v1/tenants/{w.tenant}"
    return tenant, f"{tenant}/workspaces/{w.workspace}"


def _sync(api: ApiClient, w: Wired, key: str) -> dict[str, Any]:
    r = api.post(f"{_paths(w)[1]}/sync", key)
    assert r.status_code == 200, r.get_data(as_text=True)
    return dict(r.json)


def _compliance(api: ApiClient, w: Wired, key: str) -> dict[str, Any]:
    r = api.get(f"{_paths(w)[0]}/compliance", key)
    assert r.status_code == 200, r.get_data(as_text=True)
    return dict(r.json)


def test_policy_scopes_resolve_field_by_field_and_enforce_mode_applies_them(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("aks-off", compute_type="AKS", app_insights_enabled=False)
    sandbox.add_service("aci-off", compute_type="ACI", app_insights_enabled=False)
    sandbox.add_service("aks-keep", compute_type="AKS", app_insights_enabled=False)
    tenant, ws = _paths(wired)
    assert _sync(api, wired, operator)["endpoints"] == 3
    assert _compliance(api, wired, operator)["totals"]["compliant"] == 3

    r = api.put(f"{tenant}/policy", operator, json={"app_insights": True})
    assert r.status_code == 202, r.get_data(as_text=True)
    assert sorted(op["endpoint"] for op in r.json["operations"]) == [
        "aci-off",
        "aks-keep",
        "aks-off",
    ]
    # The endpoint override wins over the tenant default for its field only.
    r = api.put(f"{ws}/endpoints/aks-keep/policy", operator, json={"app_insights": False})
    assert r.status_code == 202
    r = api.put(f"{ws}/policy", operator, json={"model_data_collection": True})
    assert r.status_code == 202

    ep = api.get(f"{ws}/endpoints/aks-keep", operator).json["monitoring"]
    assert ep["desired"]["app_insights"] == {"value": False, "source": "endpoint"}
    assert ep["desired"]["model_data_collection"] == {"value": True, "source": "workspace"}
    assert ep["desired"]["mode"] == {"value": "enforce", "source": "default"}
    assert ep["compliance"] == "pending"

    run_until(reconciler, lambda: settled(rt, wired.tenant_id))

    assert sandbox.service("aks-off")["appInsightsEnabled"] is True
    assert sandbox.service("aks-off")["dataCollection"]["storageEnabled"] is True
    assert sandbox.service("aci-off")["appInsightsEnabled"] is True
    assert sandbox.service("aks-keep")["appInsightsEnabled"] is False
    assert sandbox.service("aks-keep")["dataCollection"]["storageEnabled"] is True
    assert {op.state for op in operations_of(rt, wired.tenant_id)} == {"succeeded"}
    report = _compliance(api, wired, operator)
    # The workspace asks for data collection, which ACI web services do not have.
    assert (report["totals"]["compliant"], report["totals"]["unsupported"]) == (2, 1)
    assert [(o["endpoint"], o["compliance"]) for o in report["workspaces"][0]["offenders"]] == [
        ("aci-off", "unsupported")
    ]


def test_audit_mode_reports_drift_and_changes_nothing_until_an_operator_applies(
    api: ApiClient,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("watched", compute_type="AKS", app_insights_enabled=False)
    tenant, ws = _paths(wired)
    _sync(api, wired, operator)
    r = api.put(f"{tenant}/policy", operator, json={"app_insights": True, "mode": "audit"})
    assert r.status_code == 202
    assert r.json["operations"] == []
    since = emulator.bookmark()
    for _ in range(3):
        reconciler.reconcile_once()
        reconciler.drain(2)
    patches = emulator.requests(
        "mms.service_patch", since=since, subscription_id=sandbox.subscription_id
    )
    assert patches == []
    offenders = _compliance(api, wired, operator)["workspaces"][0]["offenders"]
    assert [(o["endpoint"], o["compliance"]) for o in offenders] == [("watched", "drifted")]

    r = api.post(f"{ws}/endpoints/watched/apply", operator)
    assert r.status_code == 202
    (op,) = r.json["operations"]
    assert op["cause"] == "manual"
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert api.get(f"/v1/operations/{op['id']}", operator).json["state"] == "succeeded"
    assert sandbox.service("watched")["appInsightsEnabled"] is True


def test_out_of_band_drift_is_corrected_after_the_next_discovery(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("flipped", compute_type="ACI", app_insights_enabled=True)
    tenant, _ = _paths(wired)
    _sync(api, wired, operator)
    assert (
        api.put(f"{tenant}/policy", operator, json={"app_insights": True}).json["operations"] == []
    )

    sandbox.set_service_property("flipped", "/appInsightsEnabled", False)  # someone in the portal
    found = _sync(api, wired, operator)
    assert len(found["operations"]) == 1
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert sandbox.service("flipped")["appInsightsEnabled"] is True
    (op,) = operations_of(rt, wired.tenant_id)
    assert (op.cause, op.state, op.desired) == ("drift", "succeeded", {"app_insights": True})


def test_vanished_endpoints_are_marked_and_leave_the_compliance_report(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str
) -> None:
    sandbox.add_service("stays", compute_type="AKS")
    sandbox.add_service("goes", compute_type="AKS")
    _, ws = _paths(wired)
    _sync(api, wired, operator)
    assert sandbox.remove_service("goes")
    result = _sync(api, wired, operator)
    assert (result["endpoints"], result["vanished"]) == (1, ["goes"])
    listed = api.get(f"{ws}/endpoints", operator, query_string={"include_vanished": "true"}).json
    vanished = {e["name"]: e["vanished_at"] is not None for e in listed["items"]}
    assert vanished == {"stays": False, "goes": True}
    assert _compliance(api, wired, operator)["totals"]["compliant"] == 1


def test_a_policy_for_an_endpoint_not_yet_discovered_applies_when_it_appears(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    _, ws = _paths(wired)
    r = api.put(f"{ws}/endpoints/later/policy", operator, json={"app_insights": True})
    assert r.status_code == 202
    assert r.json["policy"]["endpoint"] == "later"
    offenders = _compliance(api, wired, operator)["workspaces"][0]["offenders"]
    assert [(o["endpoint"], o["compliance"]) for o in offenders] == [("later", "unknown")]

    sandbox.add_service("later", compute_type="ACI", app_insights_enabled=False)
    assert len(_sync(api, wired, operator)["operations"]) == 1
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert sandbox.service("later")["appInsightsEnabled"] is True


def test_a_policy_for_an_undiscovered_endpoint_is_stored_with_a_warning_and_shown_unknown(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str
) -> None:
    sandbox.add_service("known", compute_type="AKS", app_insights_enabled=True)
    _, ws = _paths(wired)
    _sync(api, wired, operator)
    r = api.put(f"{ws}/endpoints/knwon/policy", operator, json={"app_insights": True})
    assert r.status_code == 202, r.get_data(as_text=True)
    assert r.json["operations"] == []
    (warning,) = r.json["warnings"]
    assert warning["code"] == "endpoint_not_discovered"
    assert "'knwon'" in warning["message"]
    assert "did not find" in warning["message"]
    # Stored all the same: it applies if discovery finds the endpoint later.
    assert api.get(f"{ws}/endpoints/knwon/policy", operator).json["app_insights"] is True
    offenders = _compliance(api, wired, operator)["workspaces"][0]["offenders"]
    assert [(o["endpoint"], o["compliance"]) for o in offenders] == [("knwon", "unknown")]
    assert "did not find this endpoint" in offenders[0]["reason"]
    # A discovered endpoint gets no warning.
    r = api.put(f"{ws}/endpoints/known/policy", operator, json={"app_insights": True})
    assert (r.status_code, r.json["warnings"]) == (202, [])


def test_a_policy_for_a_vanished_endpoint_warns_that_it_vanished(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str
) -> None:
    sandbox.add_service("gone", compute_type="AKS")
    _, ws = _paths(wired)
    _sync(api, wired, operator)
    assert sandbox.remove_service("gone")
    _sync(api, wired, operator)
    r = api.put(f"{ws}/endpoints/gone/policy", operator, json={"app_insights": True})
    assert r.status_code == 202
    assert "vanished" in r.json["warnings"][0]["message"]
    (offender,) = _compliance(api, wired, operator)["workspaces"][0]["offenders"]
    assert (offender["endpoint"], offender["compliance"]) == ("gone", "unknown")
    assert "vanished" in offender["reason"]


def test_data_collection_asked_of_aci_is_unsupported_and_only_supported_settings_are_queued(
    api: ApiClient,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("aci", compute_type="ACI", app_insights_enabled=False)
    sandbox.add_service("aks", compute_type="AKS", app_insights_enabled=True)
    tenant, ws = _paths(wired)
    _sync(api, wired, operator)
    r = api.put(
        f"{tenant}/policy", operator, json={"app_insights": True, "model_data_collection": True}
    )
    assert r.status_code == 202
    queued = {op["endpoint"]: op["desired"] for op in r.json["operations"]}
    assert queued == {"aci": {"app_insights": True}, "aks": {"model_data_collection": True}}

    run_until(reconciler, lambda: settled(rt, wired.tenant_id))
    assert sandbox.service("aci")["appInsightsEnabled"] is True
    report = _compliance(api, wired, operator)
    assert (report["totals"]["compliant"], report["totals"]["unsupported"]) == (1, 1)
    (offender,) = report["workspaces"][0]["offenders"]
    assert (offender["endpoint"], offender["compliance"]) == ("aci", "unsupported")
    assert "not available on ACI" in offender["reason"]
    view = api.get(f"{ws}/endpoints/aci", operator).json["monitoring"]
    assert (view["compliance"], view["reason"]) == ("unsupported", offender["reason"])
    # Nothing more is ever queued for it: an apply finds nothing to do.
    assert api.post(f"{ws}/endpoints/aci/apply", operator).json["operations"] == []


def test_data_collection_demanded_of_an_aci_endpoint_is_refused_and_nothing_changes(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str, database: Database
) -> None:
    sandbox.add_service("small", compute_type="ACI")
    _, ws = _paths(wired)
    _sync(api, wired, operator)
    before = Fingerprint.of(database)
    r = api.put(f"{ws}/endpoints/small/policy", operator, json={"model_data_collection": True})
    assert_problem(r, 400, "validation_failed")
    r = api.put(f"{ws}/endpoints/small/policy", operator, json={"app_insights": True, "x": 1})
    assert_problem(r, 400)
    r = api.put(f"{ws}/endpoints/small/policy", operator, json={"mode": "sometimes"})
    assert_problem(r, 400)
    assert Fingerprint.of(database) == before


def test_policy_writes_honour_etags_and_delete_falls_back_to_the_wider_scope(
    api: ApiClient, sandbox: Sandbox, wired: Wired, operator: str
) -> None:
    sandbox.add_service("svc", compute_type="AKS", app_insights_enabled=True)
    tenant, ws = _paths(wired)
    _sync(api, wired, operator)
    api.put(f"{tenant}/policy", operator, json={"app_insights": True})
    put = api.put(f"{ws}/policy", operator, json={"mode": "audit"})
    etag = put.headers["ETag"]
    assert_problem(
        api.put(f"{ws}/policy", operator, json={"mode": "enforce"}, headers={"If-Match": '"99"'}),
        412,
    )
    assert api.get(f"{ws}/policy", operator).json["mode"] == "audit"
    assert api.delete(f"{ws}/policy", operator, headers={"If-Match": etag}).status_code == 202
    assert_problem(api.get(f"{ws}/policy", operator), 404)
    desired = api.get(f"{ws}/endpoints/svc", operator).json["monitoring"]["desired"]
    assert desired["mode"] == {"value": "enforce", "source": "default"}
    assert desired["app_insights"] == {"value": True, "source": "tenant"}


def test_container_logs_come_from_the_service(
    api: ApiClient, sandbox: Sandbox, wired: Wired, world: World
) -> None:
    sandbox.add_service("chatty", compute_type="AKS", logs="one\ntwo\nthree\n")
    reader = world.key("reader", wired.tenant)
    _sync(api, wired, world.key("operator", wired.tenant))
    _, ws = _paths(wired)
    r = api.get(f"{ws}/endpoints/chatty/container-logs", reader, query_string={"tail": "2"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.json == {"endpoint": "chatty", "tail": 2, "content": "two\nthree\n"}
    assert_problem(api.get(f"{ws}/endpoints/nope/container-logs", reader), 404)


def test_an_operation_shows_each_attempt_with_azures_answer_and_the_retry_after_honoured(
    api: ApiClient,
    emulator: EmulatorHandle,
    sandbox: Sandbox,
    wired: Wired,
    operator: str,
    rt: Runtime,
    reconciler: Reconciler,
) -> None:
    sandbox.add_service("throttled", compute_type="AKS", app_insights_enabled=False)
    tenant, _ = _paths(wired)
    _sync(api, wired, operator)
    emulator.add_fault(
        "throttle",
        "mms.service_patch",
        subscription_id=sandbox.subscription_id,
        retry_after_s=1,
        count=1,
    )
    r = api.put(f"{tenant}/policy", operator, json={"app_insights": True})
    (queued,) = r.json["operations"]
    run_until(reconciler, lambda: settled(rt, wired.tenant_id))

    op = api.get(f"/v1/operations/{queued['id']}", operator).json
    assert (op["state"], op["attempts"]) == ("succeeded", 1)  # the 429 was a wait
    first, second = op["history"]
    assert (first["fencing_token"], second["fencing_token"]) == (1, 2)
    assert first["worker"] == second["worker"] == "test-worker"
    assert (first["outcome"], first["charged"]) == ("waited", False)
    assert (first["azure_status"], first["azure_code"]) == (429, "TooManyRequests")
    assert first["retry_after_s"] == 1
    assert first["retry_at"] >= first["finished_at"]
    assert second["started_at"] >= first["retry_at"]  # Retry-After honoured
    assert (second["outcome"], second["azure_status"], second["error"]) == ("succeeded", None, None)
    assert second["azure_operation_id"] == op["azure_operation_id"]
    # Lists stay light: the history is on the single operation only.
    listed = api.get(f"/v1/operations?tenant={wired.tenant}", operator).json["items"]
    assert all("history" not in item for item in listed)
