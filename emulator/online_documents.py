"""The ARM documents of online endpoints and deployments (2023-04-01-preview, mfe.json) as the
emulator's catalog (``online_catalog``) creates them."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from emulator.state import Workspace

ComputeType = Literal["Managed", "Kubernetes"]


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def endpoint_document(
    workspace: Workspace, name: str, *, compute_type: ComputeType, created: float
) -> dict[str, Any]:
    """An online endpoint as ARM returns it (OnlineEndpointTrackedResource)."""
    arm_id = f"{workspace.arm_id}/onlineEndpoints/{name}"
    host = uuid.uuid5(uuid.NAMESPACE_URL, arm_id).hex[:5]
    region = workspace.location
    doc = {
        "id": arm_id,
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "location": region,
        "tags": {},
        "kind": "Managed" if compute_type == "Managed" else "K8S",
        "identity": {
            "type": "SystemAssigned",
            "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, arm_id + "#identity")),
            "tenantId": str(uuid.uuid5(uuid.NAMESPACE_URL, workspace.subscription_id)),
        },
        "systemData": system_data(created),
        "properties": {
            "authMode": "Key",
            "description": None,
            "properties": {},
            "scoringUri": f"https://{name}.{region}.inference.ml.azure.com/score",
            "swaggerUri": f"https://{name}.{region}.inference.ml.azure.com/swagger.json",
            "traffic": {},
            "mirrorTraffic": {},
            "provisioningState": "Succeeded",
            "publicNetworkAccess": "Enabled",
            "compute": (
                None if compute_type == "Managed" else f"{workspace.arm_id}/computes/k8s-{host}"
            ),
        },
    }
    return doc


def deployment_document(
    workspace: Workspace,
    endpoint: str,
    name: str,
    *,
    compute_type: ComputeType,
    app_insights_enabled: bool,
    data_collector: dict[str, Any] | None,
    created: float,
    environment_variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A deployment as ARM returns it (OnlineDeploymentTrackedResource)."""
    ws = workspace.arm_id
    props: dict[str, Any] = {
        "endpointComputeType": compute_type,
        "description": None,
        "properties": {},
        "environmentVariables": dict(environment_variables or {}),
        "codeConfiguration": {
            "codeId": f"{ws}/codes/{endpoint}-code/versions/1",
            "scoringScript": "score.py",
        },
        "environmentId": f"{ws}/environments/{endpoint}-env/versions/1",
        "model": f"{ws}/models/{endpoint}-model/versions/1",
        "appInsightsEnabled": app_insights_enabled,
        "dataCollector": copy.deepcopy(data_collector),
        "egressPublicNetworkAccess": "Enabled",
        "instanceType": "Standard_DS3_v2",
        "livenessProbe": _probe(),
        "readinessProbe": _probe(),
        "requestSettings": {
            "maxConcurrentRequestsPerInstance": 1,
            "maxQueueWait": "PT0.5S",
            "requestTimeout": "PT5S",
        },
        "scaleSettings": {"scaleType": "Default"},
        "provisioningState": "Succeeded",
    }
    if compute_type == "Kubernetes":
        props["containerResourceRequirements"] = {
            "containerResourceRequests": {"cpu": "0.5", "memory": "1Gi", "gpu": None},
            "containerResourceLimits": {"cpu": "1", "memory": "2Gi", "gpu": None},
        }
    return {
        "id": f"{ws}/onlineEndpoints/{endpoint}/deployments/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": workspace.location,
        "tags": {},
        "kind": "Managed" if compute_type == "Managed" else "K8S",
        "sku": {"name": "Default", "tier": "Standard", "capacity": 1},
        "systemData": system_data(created),
        "properties": props,
    }


def _probe() -> dict[str, Any]:
    return {
        "failureThreshold": 30,
        "successThreshold": 1,
        "timeout": "PT2S",
        "period": "PT10S",
        "initialDelay": "PT10S",
    }


def system_data(at: float) -> dict[str, Any]:
    return {
        "createdAt": iso(at),
        "createdBy": "fleet@emulator",
        "createdByType": "User",
        "lastModifiedAt": iso(at),
        "lastModifiedBy": "fleet@emulator",
        "lastModifiedByType": "User",
    }


def default_logs(name: str) -> str:
    lines = [
        f"2024-01-01T00:00:00,000 | azureml-inference-server | INFO | Starting deployment {name}",
        "2024-01-01T00:00:00,500 | azureml-inference-server | INFO | Found user script score.py",
        "2024-01-01T00:00:01,000 | azureml-inference-server | INFO | Invoking user's init function",
        "2024-01-01T00:00:02,000 | azureml-inference-server | INFO | Init completed",
        "2024-01-01T00:00:02,100 | azureml-inference-server | INFO | Listening on port 31311",
    ]
    return "\n".join(lines) + "\n"
