"""Resource Manager: subscriptions, workspaces, tenant isolation and token-bucket throttling."""

from __future__ import annotations

import pytest
import requests

from emulator.testing import EmulatorHandle, Sandbox
from tests.emulator.conftest import aml_workspace

ARM_SCOPE = "https://management.azure.com/.default"


def _headers(box: Sandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {box.credential().get_token(ARM_SCOPE).token}"}


def test_subscriptions_list_only_the_callers_tenant(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    other = emulator.sandbox()
    response = requests.get(
        f"{emulator.url}/subscriptions?api-version=2022-12-01", headers=_headers(sandbox), timeout=5
    )
    assert response.status_code == 200
    ids = [s["subscriptionId"] for s in response.json()["value"]]
    assert ids == [sandbox.subscription_id]
    assert other.subscription_id not in ids
    assert int(response.headers["x-ms-ratelimit-remaining-tenant-reads"]) > 0


def test_workspace_resource_links_discovery_and_app_insights(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    url = f"{emulator.url}{sandbox.workspace.arm_id}?api-version=2023-04-01"
    response = requests.get(url, headers=_headers(sandbox), timeout=5)
    body = response.json()
    assert (response.status_code, body["location"]) == (200, "westeurope")
    assert body["properties"]["discoveryUrl"] == f"{emulator.url}/discovery"
    assert body["properties"]["applicationInsights"] == sandbox.app_insights_resource_id
    assert "x-ms-ratelimit-remaining-subscription-reads" in response.headers
    discovery = requests.get(body["properties"]["discoveryUrl"], timeout=5).json()
    assert {
        "api",
        "experimentation",
        "history",
        "hyperdrive",
        "modelmanagement",
        "studio",
    } <= discovery.keys()


def test_another_tenants_subscription_is_refused(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    other = emulator.sandbox()
    url = f"{emulator.url}{other.workspace.arm_id}?api-version=2023-04-01"
    response = requests.get(url, headers=_headers(sandbox), timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "AuthenticationFailed"), ("Bearer not-a-jwt", "InvalidAuthenticationToken")],
)
def test_missing_or_invalid_token_is_401(
    emulator: EmulatorHandle, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{emulator.url}/subscriptions", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code


def test_missing_workspace_raises_in_azureml_core(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    from azureml.core import Workspace
    from azureml.exceptions import ProjectSystemException

    from service.adapters.azureml_auth import token_credential_authentication

    auth = token_credential_authentication(
        sandbox.credential(), resource_manager_url=emulator.arm_endpoint
    )
    with pytest.raises(ProjectSystemException):
        Workspace(sandbox.subscription_id, sandbox.resource_group, "no-such-workspace", auth=auth)


def test_read_throttling_answers_429_with_retry_after(fresh_emulator: EmulatorHandle) -> None:
    fresh_emulator.set_limits(arm_throttle={"enabled": True, "read_burst": 3, "read_rate": 0.5})
    box = fresh_emulator.sandbox()
    headers = _headers(box)
    url = f"{fresh_emulator.url}/subscriptions/{box.subscription_id}"
    remaining = [
        requests.get(url, headers=headers, timeout=5).headers[
            "x-ms-ratelimit-remaining-subscription-reads"
        ]
        for _ in range(3)
    ]
    assert remaining == ["2", "1", "0"]
    throttled = requests.get(url, headers=headers, timeout=5)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert int(throttled.headers["Retry-After"]) >= 1
    assert throttled.headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"


def test_buckets_are_per_principal(fresh_emulator: EmulatorHandle) -> None:
    fresh_emulator.set_limits(arm_throttle={"enabled": True, "read_burst": 1, "read_rate": 0.01})
    box = fresh_emulator.sandbox()
    second = fresh_emulator.state.add_service_principal(box.tenant_id, secret="second-secret")
    url = f"{fresh_emulator.url}/subscriptions/{box.subscription_id}"
    assert requests.get(url, headers=_headers(box), timeout=5).status_code == 200
    assert requests.get(url, headers=_headers(box), timeout=5).status_code == 429
    from azure.identity import ClientSecretCredential

    other = ClientSecretCredential(
        box.tenant_id,
        second.client_id,
        "second-secret",
        authority=fresh_emulator.authority,
        disable_instance_discovery=True,
    )
    token = other.get_token(ARM_SCOPE).token
    assert (
        requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
        == 200
    )


def test_mms_writes_spend_the_subscription_write_bucket(fresh_emulator: EmulatorHandle) -> None:
    from azureml.core.webservice import Webservice
    from azureml.exceptions import WebserviceException

    fresh_emulator.set_limits(arm_throttle={"enabled": True, "write_burst": 2, "write_rate": 0.01})
    box = fresh_emulator.sandbox()
    for name in ("w-0", "w-1", "w-2"):
        box.add_service(name, compute_type="ACI")
    ws = aml_workspace(fresh_emulator, box)
    Webservice(ws, "w-0").update(enable_app_insights=True)
    Webservice(ws, "w-1").update(enable_app_insights=True)
    with pytest.raises(WebserviceException, match="429"):
        Webservice(ws, "w-2").update(enable_app_insights=True)
    assert box.service("w-2")["appInsightsEnabled"] is False
    assert fresh_emulator.state.throttle.max_writes_per_second(box.subscription_id) == 2


def test_each_subscription_names_its_own_tenant_as_the_sdk_reads_it() -> None:
    """ARM's Subscription resource carries `tenantId`: the fleet's tenant of that subscription,
    read through azure-mgmt-resource (whose models are generated from ARM's spec)."""
    import uuid

    from azure.identity import ClientSecretCredential
    from azure.mgmt.resource import SubscriptionClient

    from emulator.fleet import apply_fleet
    from emulator.testing import run_emulator

    tenants = [str(uuid.uuid4()) for _ in range(2)]
    subscriptions = {t: [str(uuid.uuid4()) for _ in range(2)] for t in tenants}
    fleet = {
        "tenants": [
            {
                "id": t,
                "name": f"fleet-{i}",
                "service_principals": [
                    {"client_id": str(uuid.uuid5(uuid.NAMESPACE_URL, t)), "secret": f"s-{i}"}
                ],
                "subscriptions": [{"id": s, "name": f"sub-{s[:4]}"} for s in subscriptions[t]],
            }
            for i, t in enumerate(tenants)
        ]
    }
    with run_emulator() as emu:
        apply_fleet(emu.state, fleet)
        for i, t in enumerate(tenants):
            credential = ClientSecretCredential(
                t,
                str(uuid.uuid5(uuid.NAMESPACE_URL, t)),
                f"s-{i}",
                authority=emu.authority,
                disable_instance_discovery=True,
                connection_verify=str(emu.ca_path),
            )
            with SubscriptionClient(
                credential,
                base_url=emu.arm_endpoint,
                credential_scopes=[ARM_SCOPE],
                connection_verify=str(emu.ca_path),
            ) as client:
                listed = {s.subscription_id: s.tenant_id for s in client.subscriptions.list()}
                assert listed == dict.fromkeys(subscriptions[t], t)
                for sub in subscriptions[t]:
                    got = client.subscriptions.get(sub)
                    assert (got.subscription_id, got.tenant_id, got.state) == (sub, t, "Enabled")
                    assert got.id == f"/subscriptions/{sub}"
