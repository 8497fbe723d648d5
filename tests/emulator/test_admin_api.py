"""The /_admin HTTP API: faults, request log, device codes, drift, limits and stats."""

from __future__ import annotations

import msal
import requests

from emulator.testing import EmulatorHandle


def _admin(emulator: EmulatorHandle, method: str, path: str, **kwargs: object) -> requests.Response:
    return requests.request(method, f"{emulator.url}/_admin{path}", timeout=5, **kwargs)  # type: ignore[arg-type]


def test_faults_can_be_added_listed_and_cleared(fresh_emulator: EmulatorHandle) -> None:
    created = _admin(
        fresh_emulator,
        "POST",
        "/faults",
        json={"kind": "status", "route": "arm.discovery", "status": 503, "count": 1},
    )
    assert created.status_code == 201
    assert [f["id"] for f in _admin(fresh_emulator, "GET", "/faults").json()["value"]] == [
        created.json()["id"]
    ]
    assert requests.get(f"{fresh_emulator.url}/discovery", timeout=5).status_code == 503
    assert requests.get(f"{fresh_emulator.url}/discovery", timeout=5).status_code == 200
    _admin(fresh_emulator, "POST", "/faults", json={"kind": "latency", "latency_s": 0.01})
    assert _admin(fresh_emulator, "DELETE", "/faults").json() == {"removed": 1}


def test_bad_fault_definitions_are_rejected(fresh_emulator: EmulatorHandle) -> None:
    assert _admin(fresh_emulator, "POST", "/faults", json={"kind": "explode"}).status_code == 400
    assert (
        _admin(
            fresh_emulator, "POST", "/faults", json={"kind": "status", "colour": "red"}
        ).status_code
        == 400
    )
    assert _admin(fresh_emulator, "DELETE", "/faults/999").status_code == 404


def test_request_log_is_filterable(fresh_emulator: EmulatorHandle) -> None:
    requests.get(f"{fresh_emulator.url}/discovery", timeout=5)
    entries = _admin(fresh_emulator, "GET", "/requests", params={"route": "arm.discovery"}).json()[
        "value"
    ]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [("GET", "/discovery", 200)]
    assert {"duration_ms", "identity", "query", "route", "fault", "seq"} <= entries[0].keys()
    assert _admin(fresh_emulator, "DELETE", "/requests").status_code == 204
    assert (
        _admin(fresh_emulator, "GET", "/requests", params={"route": "arm."}).json()["value"] == []
    )


def test_device_code_approval_over_http(fresh_emulator: EmulatorHandle) -> None:
    state = fresh_emulator.state
    tenant = state.add_tenant()
    app = state.add_public_client(tenant.id)
    state.add_user(tenant.id, "dana@contoso.example")
    pca = msal.PublicClientApplication(
        app.client_id, authority=f"{fresh_emulator.url}/{tenant.id}", instance_discovery=False
    )
    flow = pca.initiate_device_flow(scopes=["https://api.loganalytics.io/.default"])
    pending = _admin(fresh_emulator, "GET", "/device-codes").json()["value"]
    assert [p["user_code"] for p in pending] == [flow["user_code"]]
    body = {"user_code": flow["user_code"], "username": "dana@contoso.example"}
    assert _admin(fresh_emulator, "POST", "/device-codes/approve", json=body).status_code == 204
    assert "access_token" in pca.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
    assert (
        _admin(
            fresh_emulator, "POST", "/device-codes/approve", json=body | {"user_code": "NOPE"}
        ).status_code
        == 400
    )


def test_device_login_page_approves_a_code(fresh_emulator: EmulatorHandle) -> None:
    state = fresh_emulator.state
    tenant = state.add_tenant()
    app = state.add_public_client(tenant.id)
    state.add_user(tenant.id, "erin@contoso.example")
    pca = msal.PublicClientApplication(
        app.client_id, authority=f"{fresh_emulator.url}/{tenant.id}", instance_discovery=False
    )
    flow = pca.initiate_device_flow(scopes=["https://api.loganalytics.io/.default"])
    page = requests.get(flow["verification_uri"], timeout=5)
    assert flow["user_code"] in page.text
    approved = requests.post(
        flow["verification_uri"],
        data={"user_code": flow["user_code"], "username": "erin@contoso.example"},
        timeout=5,
    )
    assert approved.status_code == 200
    assert "approved" in approved.text


def test_service_property_flip_and_limits(fresh_emulator: EmulatorHandle) -> None:
    box = fresh_emulator.sandbox()
    box.add_service("portal-flip", compute_type="AKS", app_insights_enabled=True)
    body = {
        "subscription_id": box.subscription_id,
        "resource_group": box.resource_group,
        "workspace": box.workspace_name,
        "service": "portal-flip",
        "path": "/appInsightsEnabled",
        "value": False,
    }
    assert _admin(fresh_emulator, "POST", "/services/property", json=body).status_code == 204
    assert box.service("portal-flip")["appInsightsEnabled"] is False
    assert (
        _admin(
            fresh_emulator, "POST", "/services/property", json=body | {"value": "yes"}
        ).status_code
        == 400
    )

    limits = _admin(
        fresh_emulator,
        "PUT",
        "/limits",
        json={"arm_throttle": {"enabled": True, "read_burst": 5}, "mms": {"page_size": 7}},
    )
    assert limits.json()["arm_throttle"]["read_burst"] == 5
    assert fresh_emulator.state.services.page_size == 7
    assert _admin(fresh_emulator, "PUT", "/limits", json={"cosmic": {}}).status_code == 400


def test_fail_next_operations_and_write_stats(fresh_emulator: EmulatorHandle) -> None:
    box = fresh_emulator.sandbox()
    box.add_service("ops", compute_type="ACI")
    assert (
        _admin(
            fresh_emulator, "POST", "/operations/fail-next", json={"count": 1, "message": "nope"}
        ).status_code
        == 204
    )
    token = box.credential().get_token("https://management.azure.com/.default").token
    ws = box.workspace
    m = (
        f"{fresh_emulator.url}/modelmanagement/v1.0/subscriptions/{ws.subscription_id}/resourceGroups/"
        f"{ws.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/{ws.name}"
    )
    patch = requests.patch(
        f"{m}/services/ops",
        json=[{"op": "replace", "path": "/appInsightsEnabled", "value": True}],
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert patch.status_code == 202
    op = requests.get(
        patch.headers["Operation-Location"], headers={"Authorization": f"Bearer {token}"}, timeout=5
    ).json()
    assert (op["state"], op["error"]["message"]) == ("Failed", "nope")
    stats = _admin(fresh_emulator, "GET", "/stats/arm-writes").json()
    assert stats["maxWritesPerSecond"] == {box.subscription_id.lower(): 1}


def test_log_analytics_limits_are_read_and_changed_through_the_admin_api(
    fresh_emulator: EmulatorHandle,
) -> None:
    before = _admin(fresh_emulator, "GET", "/limits").json()["log_analytics"]
    assert before["max_concurrent_per_identity"] == 5
    changed = _admin(
        fresh_emulator, "PUT", "/limits", json={"log_analytics": {"rate_limit": 7, "latency_s": 0}}
    )
    assert changed.status_code == 200
    assert changed.json()["log_analytics"]["rate_limit"] == 7
    assert fresh_emulator.state.log_analytics.limits.rate_limit == 7
    bad = _admin(fresh_emulator, "PUT", "/limits", json={"log_analytics": {"colour": 1}})
    assert bad.status_code == 400
    assert fresh_emulator.state.log_analytics.limits.rate_limit == 7


def test_a_canned_log_analytics_response_is_served_then_cleared(
    fresh_emulator: EmulatorHandle,
) -> None:
    box = fresh_emulator.sandbox()
    path = f"/workspaces/{box.log_analytics_workspace_id}/query"
    canned = {"tables": [{"name": "PrimaryResult", "columns": [], "rows": []}]}
    assert (
        _admin(
            fresh_emulator,
            "POST",
            "/log-analytics/canned-responses",
            json={"path": path, "status": 200, "body": canned},
        ).status_code
        == 204
    )
    token = box.credential().get_token("https://api.loganalytics.io/.default").token
    query = {"query": "AppRequests | take 1"}
    headers = {"Authorization": f"Bearer {token}"}
    served = requests.post(f"{fresh_emulator.url}/v1{path}", json=query, headers=headers, timeout=5)
    assert served.json() == canned
    assert _admin(fresh_emulator, "DELETE", "/log-analytics/canned-responses").status_code == 204
    live = requests.post(f"{fresh_emulator.url}/v1{path}", json=query, headers=headers, timeout=5)
    assert live.json() != canned
    stats = _admin(fresh_emulator, "GET", "/stats/log-analytics").json()
    assert stats["queries"] >= 1
    rejected = _admin(
        fresh_emulator, "POST", "/log-analytics/canned-responses", json={"status": 200}
    )
    assert rejected.status_code == 400
