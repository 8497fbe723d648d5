"""The HTTPS front door: TLS trust, keep-alive, routing, request log and the Log Analytics gate."""

from __future__ import annotations

import http.client
import ssl

import certifi
import pytest
import requests

from emulator.testing import EmulatorHandle, Sandbox

LA_SCOPE = "https://api.loganalytics.io/.default"


def test_leaf_is_trusted_only_through_the_session_ca(emulator: EmulatorHandle) -> None:
    assert requests.get(f"{emulator.url}/_admin/health", timeout=5).json()["status"] == "ok"
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emulator.url}/_admin/health", timeout=5, verify=certifi.where())


def test_certificate_names_localhost_too(emulator: EmulatorHandle) -> None:
    url = emulator.url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{url}/_admin/health", timeout=5).status_code == 200


def test_every_instance_shares_the_session_ca(
    emulator: EmulatorHandle, fresh_emulator: EmulatorHandle
) -> None:
    assert fresh_emulator.ca_path == emulator.ca_path
    assert requests.get(f"{fresh_emulator.url}/_admin/health", timeout=5).status_code == 200


def test_connections_are_kept_alive(emulator: EmulatorHandle) -> None:
    context = ssl.create_default_context(cafile=str(emulator.ca_path))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", emulator.server.port, context=context, timeout=5
    )
    try:
        for _ in range(3):
            connection.request("GET", "/_admin/health")
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
            response.read()
        assert connection.sock is not None
    finally:
        connection.close()


def test_unknown_routes_are_json_404(emulator: EmulatorHandle) -> None:
    response = requests.get(f"{emulator.url}/no/such/route", timeout=5)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_request_log_names_route_identity_and_tenant(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    since = emulator.bookmark()
    token = sandbox.credential().get_token("https://management.azure.com/.default").token
    requests.get(
        f"{emulator.url}/subscriptions", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    entry = emulator.requests("arm.subscriptions", since=since, tenant_id=sandbox.tenant_id)[-1]
    assert entry.identity is not None
    assert entry.identity.startswith(f"{sandbox.tenant_id}/")
    assert (entry.method, entry.status, entry.fault) == ("GET", 200, None)
    assert entry.duration_ms > 0


def test_log_analytics_requires_a_log_analytics_token(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    url = f"{emulator.logs_endpoint}/workspaces/{sandbox.log_analytics_workspace_id}/query"
    anonymous = requests.post(url, json={"query": "AppRequests | take 1"}, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "InvalidTokenError"
    arm_token = sandbox.credential().get_token("https://management.azure.com/.default").token
    wrong_audience = requests.post(
        url,
        json={"query": "AppRequests"},
        headers={"Authorization": f"Bearer {arm_token}"},
        timeout=5,
    )
    assert wrong_audience.status_code == 401


def test_log_analytics_refuses_another_tenants_workspace(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    other = emulator.sandbox()
    token = sandbox.credential().get_token(LA_SCOPE).token
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{emulator.logs_endpoint}/workspaces/{other.log_analytics_workspace_id}/query"
    refused = requests.post(url, json={"query": "AppRequests | take 1"}, headers=headers, timeout=5)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "InsufficientAccessError"
    batch = {
        "requests": [
            {
                "id": "1",
                "workspace": other.log_analytics_workspace_id,
                "body": {"query": "AppRequests"},
            }
        ]
    }
    answered = requests.post(
        f"{emulator.logs_endpoint}/$batch", json=batch, headers=headers, timeout=5
    )
    assert answered.status_code == 200  # per entry: see test_la_fidelity's batch tests
    assert answered.json()["responses"][0]["status"] == 403
    resource = f"{emulator.logs_endpoint}{other.app_insights_resource_id}/query"
    assert (
        requests.post(resource, json={"query": "requests"}, headers=headers, timeout=5).status_code
        == 403
    )


def test_log_analytics_requests_reach_the_query_service(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    if emulator.state.log_analytics is None:
        pytest.skip("emulator.loganalytics is not part of this build")
    token = sandbox.credential().get_token(LA_SCOPE).token
    since = emulator.bookmark()
    url = f"{emulator.logs_endpoint}/workspaces/{sandbox.log_analytics_workspace_id}/query"
    response = requests.post(
        url, json={"query": "print 1"}, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert response.status_code not in (401, 403, 501)
    entry = emulator.requests("la.workspace_query", since=since)[-1]
    assert entry.identity is not None
    assert entry.identity.startswith(sandbox.tenant_id)


def test_a_log_analytics_batch_refuses_another_tenants_workspace_per_entry(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    other = emulator.sandbox()
    token = sandbox.credential().get_token(LA_SCOPE).token
    headers = {"Authorization": f"Bearer {token}"}
    mine = sandbox.log_analytics_workspace_id
    batch = {
        "requests": [
            {"id": "own", "workspace": mine, "body": {"query": "print n = 1"}},
            {"id": "foreign", "workspace": other.log_analytics_workspace_id,
             "body": {"query": "print n = 1"}},
            {"id": "cross", "workspace": mine,
             "body": {"query": "print n = 1", "workspaces": [other.log_analytics_workspace_id]}},
        ]
    }  # fmt: skip
    url = f"{emulator.logs_endpoint}/$batch"
    answered = requests.post(url, json=batch, headers=headers, timeout=5)
    assert answered.status_code == 200, answered.text
    statuses = {r["id"]: r["status"] for r in answered.json()["responses"]}
    assert statuses == {"own": 200, "foreign": 403, "cross": 403}
    for shape in ({"requests": 5}, {"requests": "abc"}, {"requests": None}, [1]):
        refused = requests.post(url, json=shape, headers=headers, timeout=5)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "BadArgumentError"
