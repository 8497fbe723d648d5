"""AML model management v1 service documents: their shape, operations, and JSON-patch rules.

Service documents carry every key azureml-core's `AksWebservice`/`AciWebservice._initialize`
reads, with values (not nulls) so they also validate against modelManagement.json. A patch is
checked here (`validate_patch`) and applied (`apply_patch`) when its operation succeeds.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from emulator.state import Workspace

# A service's `properties` (ServiceResponseBase.properties in modelManagement.json): "The
# service property dictionary. Properties are immutable." - a string map a patch may not
# `replace` or `remove` in. `add` is how azureml-core's update() sends its tracking info (git
# branch, commit, dirty flag), whose values change between releases of the caller; the spec is
# silent on adding an existing key, so RFC 6902 applies: `add` sets the member.
_PROPERTIES_PREFIX = "/properties/"
_SUB_OPERATIONS = {"Service_Update": "ServiceUpdate", "Service_RegenerateKeys": "RegenerateKeys"}
KEY_TYPES = ("Primary", "Secondary")


class PatchError(Exception):
    """A rejected PATCH: carries the HTTP status and MMS error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def service_document(
    workspace: Workspace,
    name: str,
    *,
    compute_type: Literal["AKS", "ACI"],
    app_insights_enabled: bool,
    state: str,
    collect_model_data: bool,
    description: str,
    tags: dict[str, str],
    created: float,
) -> dict[str, Any]:
    """A service as MMS returns it with `expand=true`."""
    doc: dict[str, Any] = {
        "id": name,
        "name": name,
        "description": description,
        "kvTags": dict(tags),
        "properties": {"hasInferenceSchema": "False", "hasHttps": "False"},
        "state": state,
        "createdTime": iso(created),
        "updatedTime": iso(created),
        "computeType": compute_type,
        "deploymentType": "HttpRealtimeEndpoint",
        "imageId": f"{name}:1",
        "models": [],
        "appInsightsEnabled": app_insights_enabled,
        "authEnabled": compute_type == "AKS",
        "dataCollection": {"eventHubEnabled": False, "storageEnabled": collect_model_data},
    }
    host = uuid.uuid5(uuid.NAMESPACE_URL, f"{workspace.workspace_id}/{name}").hex[:12]
    if compute_type == "AKS":
        doc.update(
            computeName="aks-inference",
            namespace=f"azureml-{workspace.name.lower()}",
            containerResourceRequirements={
                "cpu": 0.5,
                "cpuLimit": 1.0,
                "memoryInGB": 1.0,
                "memoryInGBLimit": 2.0,
                "gpu": 0,
            },
            autoScaler={
                "autoscaleEnabled": True,
                "minReplicas": 1,
                "maxReplicas": 3,
                "refreshPeriodInSeconds": 1,
                "targetUtilization": 70,
            },
            livenessProbeRequirements={
                "failureThreshold": 3,
                "successThreshold": 1,
                "timeoutSeconds": 2,
                "periodSeconds": 10,
                "initialDelaySeconds": 310,
            },
            maxConcurrentRequestsPerContainer=1,
            maxQueueWaitMs=500,
            numReplicas=1,
            scoringTimeoutMs=60000,
            aadAuthEnabled=False,
            scoringUri=f"http://{host}.aks.example/api/v1/service/{name}/score",
            swaggerUri=f"http://{host}.aks.example/api/v1/service/{name}/swagger.json",
            deploymentStatus={"desiredReplicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
        )
    else:
        doc.update(
            containerResourceRequirements={"cpu": 0.1, "memoryInGB": 0.5},
            location=workspace.location,
            scoringUri=f"http://{host}.{workspace.location}.azurecontainer.io/score",
            swaggerUri=f"http://{host}.{workspace.location}.azurecontainer.io/swagger.json",
            publicIp="20.50.0.1",
            publicFqdn=f"{host}.{workspace.location}.azurecontainer.io",
            cname="",
            sslEnabled=False,
            sslCertificate="",
            sslKey="",
        )
    if state in ("Failed", "Unhealthy"):
        doc["error"] = {
            "code": "ServiceUnhealthy",
            "statusCode": 500,
            "message": "Container crashed.",
            "details": [],
        }
    return doc


@dataclass
class Operation:
    """An MMS async operation (service update)."""

    id: str
    workspace_key: tuple[str, str, str]
    service_name: str
    resource_location: str
    ops: list[dict[str, Any]]
    created: float
    duration_s: float
    failure: str | None
    state: str = "Running"
    end_time: float | None = None
    operation_type: str = "Service_Update"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operationType": self.operation_type,
            "state": self.state,
            "createdTime": iso(self.created),
            "resourceLocation": self.resource_location,
            "operationDetails": {
                "subOperationType": _SUB_OPERATIONS.get(self.operation_type, "ServiceUpdate"),
                "subOperationState": self.state,
            },
        }
        if self.end_time is not None:
            body["endTime"] = iso(self.end_time)
        if self.state == "Failed":
            body["error"] = {
                "code": "ServiceUpdateFailed",
                "statusCode": 500,
                "message": self.failure or "Service update failed.",
                "details": [],
            }
        return body


def validate_patch(document: dict[str, Any], ops: Any) -> list[dict[str, Any]]:
    if not isinstance(ops, list):
        raise PatchError(
            400, "BadRequest", "The patch document must be a JSON array of operations."
        )
    if not ops:
        # Services_Patch takes "The payload that is used to patch the Service" (an array of
        # JsonPatchOperation); an empty one would start an operation that changes nothing.
        raise PatchError(400, "BadRequest", "The patch document must contain an operation.")
    effective = []
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError(400, "BadRequest", f"Invalid patch operation: {op!r}")
        if op["path"].startswith(_PROPERTIES_PREFIX):
            _check_property_op(document, op)
        effective.append(op)
    try:
        apply_patch(copy.deepcopy(document), effective)
    except (KeyError, TypeError, ValueError) as exc:
        raise PatchError(400, "BadRequest", f"Invalid patch: {exc}") from exc
    return effective


def _check_property_op(document: dict[str, Any], op: dict[str, Any]) -> None:
    """Properties take only `add` of a string value (see _PROPERTIES_PREFIX)."""
    key = op["path"][len(_PROPERTIES_PREFIX) :]
    if op.get("op") != "add" or not key or "/" in key:
        raise PatchError(400, "BadRequest", f"Service properties are immutable: {op['path']}")
    if not isinstance(op.get("value"), str):
        raise PatchError(400, "BadRequest", f"{op['path']} must be a string")


def apply_patch(document: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    """Apply JSON-patch replace/add/remove; replace keeps the existing value's JSON type."""
    for op in ops:
        *parents, leaf = [
            part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]
        ]
        target: Any = document
        for part in parents:
            target = target[part]
        if not isinstance(target, dict):
            raise TypeError(f"{op['path']} does not address an object member")
        kind = op.get("op")
        if kind == "replace":
            if leaf not in target:
                raise KeyError(f"{op['path']} does not exist")
            _check_type(op["path"], target[leaf], op.get("value"))
            target[leaf] = op.get("value")
        elif kind == "add":
            target[leaf] = op.get("value")
        elif kind == "remove":
            del target[leaf]
        else:
            raise ValueError(f"unsupported op {kind!r}")


def _check_type(path: str, old: Any, new: Any) -> None:
    if old is None:
        return
    if isinstance(old, bool) != isinstance(new, bool):
        raise TypeError(f"{path} expects {type(old).__name__}, got {new!r}")
    if isinstance(old, int | float) and not isinstance(new, int | float):
        raise TypeError(f"{path} expects a number, got {new!r}")


def default_logs(name: str) -> str:
    lines = [
        f"2024-01-01T00:00:00,000 | root | INFO | Starting up app insights client ({name})",
        "2024-01-01T00:00:00,100 | root | INFO | Starting up request id generator",
        "2024-01-01T00:00:00,200 | root | INFO | Starting up app insight hooks",
        "2024-01-01T00:00:01,000 | root | INFO | Invoking user's init function",
        "2024-01-01T00:00:02,000 | root | INFO | Users's init has completed successfully",
        "2024-01-01T00:00:02,100 | root | INFO | Scoring timeout found from os.environ: 60000 ms",
    ]
    return "\n".join(lines) + "\n"
