"""AML online endpoints and deployments (SDK v2) as ARM resources: the in-memory catalog.

Documents follow `OnlineEndpointTrackedResource` / `OnlineDeploymentTrackedResource` of
machinelearningservices 2023-04-01-preview (mfe.json). A deployment PUT replaces the whole
deployment and is long-running: the caller gets the new operation at once (`od:{workspace
id}:{guid}`, as Azure names them), the deployment shows `provisioningState: Updating` with its
old properties until the operation ends, then the new properties (Succeeded) or the old ones
with `provisioningState: Failed` (an injected failure). Every change of the deployment's
definition rolls its instances (`instanceGeneration` in the container logs tells).
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from emulator.online_documents import (
    ComputeType,
    default_logs,
    deployment_document,
    endpoint_document,
    iso,
)

if TYPE_CHECKING:
    from emulator.state import Workspace

FINAL_STATES = ("Succeeded", "Failed", "Canceled")


class OnlineError(Exception):
    """A refused request: HTTP status, ARM error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class DeploymentOperation:
    """One long-running deployment operation (the `mfeOperationsStatus` resource)."""

    id: str
    subscription_id: str
    location: str
    key: tuple[tuple[str, str, str], str, str]  # (workspace key, endpoint, deployment)
    new_document: dict[str, Any] | None  # None: a delete
    created: float
    duration_s: float
    failure: str | None
    status: str = "InProgress"
    end_time: float | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": (
                f"/subscriptions/{self.subscription_id}/providers/Microsoft.MachineLearningServices"
                f"/locations/{self.location}/mfeOperationsStatus/{self.id}"
            ),
            "name": self.id,
            "startTime": iso(self.created),
            "percentComplete": 100.0 if self.status in FINAL_STATES else 0.0,
            # The recording shows "Updating" while the operation runs.
            "status": "Updating" if self.status == "InProgress" else self.status,
        }
        if self.end_time is not None:
            body["endTime"] = iso(self.end_time)
        if self.status == "Failed":
            body["error"] = {
                "code": "DeploymentFailed",
                "message": self.failure or "The deployment update failed.",
                "details": [],
            }
        return body


@dataclass
class _Deployment:
    document: dict[str, Any]
    logs: str
    pending: DeploymentOperation | None = None
    instance_generation: int = 1


@dataclass
class OnlineCatalog:
    """Every online endpoint and deployment of every workspace. Knobs are plain attributes."""

    lock: threading.RLock
    operation_duration_s: float = 0.0
    page_size: int = 100
    _endpoints: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    _deployments: dict[tuple[tuple[str, str, str], str], dict[str, _Deployment]] = field(
        default_factory=dict
    )
    _operations: dict[str, DeploymentOperation] = field(default_factory=dict)
    _failures: deque[str] = field(default_factory=deque)
    writes: int = 0  # accepted deployment PUTs (tests count them)

    # -- seeding -------------------------------------------------------------------------
    def add_endpoint(
        self, workspace: Workspace, name: str, *, compute_type: ComputeType = "Managed"
    ) -> dict[str, Any]:
        doc = endpoint_document(workspace, name, compute_type=compute_type, created=time.time())
        with self.lock:
            self._endpoints.setdefault(workspace.key, {})[name] = doc
        return copy.deepcopy(doc)

    def add_deployment(
        self,
        workspace: Workspace,
        endpoint: str,
        name: str,
        *,
        app_insights_enabled: bool = False,
        data_collector: dict[str, Any] | None = None,
        traffic: int = 100,
        logs: str | None = None,
        environment_variables: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            ep = self._endpoints.get(workspace.key, {}).get(endpoint)
            if ep is None:
                raise KeyError(f"no online endpoint {endpoint!r} in workspace {workspace.name}")
            compute: ComputeType = "Managed" if ep["kind"] == "Managed" else "Kubernetes"
            doc = deployment_document(
                workspace,
                endpoint,
                name,
                compute_type=compute,
                app_insights_enabled=app_insights_enabled,
                data_collector=data_collector,
                created=time.time(),
                environment_variables=environment_variables,
            )
            self._deployments.setdefault((workspace.key, endpoint), {})[name] = _Deployment(
                doc, logs if logs is not None else default_logs(name)
            )
            ep["properties"]["traffic"][name] = traffic
            return copy.deepcopy(doc)

    # -- reads (settle due operations first) ---------------------------------------------
    def list_endpoints(self, workspace: Workspace) -> list[dict[str, Any]]:
        with self.lock:
            found = self._endpoints.get(workspace.key, {})
            return [copy.deepcopy(found[n]) for n in sorted(found)]

    def get_endpoint(self, workspace: Workspace, name: str) -> dict[str, Any] | None:
        with self.lock:
            doc = self._endpoints.get(workspace.key, {}).get(name)
            return copy.deepcopy(doc) if doc else None

    def list_deployments(self, workspace: Workspace, endpoint: str) -> list[dict[str, Any]]:
        with self.lock:
            found = self._deployments.get((workspace.key, endpoint), {})
            return [copy.deepcopy(self._settled(found[n]).document) for n in sorted(found)]

    def get_deployment(
        self, workspace: Workspace, endpoint: str, name: str
    ) -> dict[str, Any] | None:
        with self.lock:
            record = self._record(workspace, endpoint, name)
            return copy.deepcopy(record.document) if record else None

    def logs(self, workspace: Workspace, endpoint: str, name: str) -> tuple[str, int] | None:
        with self.lock:
            record = self._record(workspace, endpoint, name)
            return (record.logs, record.instance_generation) if record else None

    def operation(self, operation_id: str) -> DeploymentOperation | None:
        with self.lock:
            op = self._operations.get(operation_id)
            if op is None:
                return None
            workspace_key, endpoint, name = op.key
            record = self._deployments.get((workspace_key, endpoint), {}).get(name)
            if record is not None:
                self._settled(record)
            elif op.status == "InProgress" and op.new_document is None:
                op.status, op.end_time = "Succeeded", time.time()
            return copy.copy(op)

    # -- writes ---------------------------------------------------------------------------
    def start_put(
        self, workspace: Workspace, endpoint: str, name: str, document: dict[str, Any]
    ) -> tuple[DeploymentOperation, bool]:
        """Start replacing (or creating) a deployment with a validated body.

        Returns the operation and whether the deployment is new (201) or replaced (200).
        """
        with self.lock:
            if self._endpoints.get(workspace.key, {}).get(endpoint) is None:
                raise OnlineError(
                    404, "ResourceNotFound", f"Online endpoint {endpoint} was not found."
                )
            record = self._record(workspace, endpoint, name)
            if record is not None and record.pending is not None:
                raise OnlineError(
                    409,
                    "Conflict",
                    f"Deployment {name} has an operation in progress: {record.pending.id}.",
                )
            if record is not None:
                old_type = record.document["properties"]["endpointComputeType"]
                if document["properties"]["endpointComputeType"] != old_type:
                    raise OnlineError(
                        400, "UserError", "endpointComputeType cannot be changed on update."
                    )
            created = record is None
            if created:
                record = _Deployment(copy.deepcopy(document), default_logs(name))
                record.document["properties"]["provisioningState"] = "Creating"
                self._deployments.setdefault((workspace.key, endpoint), {})[name] = record
            op = self._new_operation(workspace, endpoint, name, document)
            record.pending = op
            if not created:
                record.document["properties"]["provisioningState"] = "Updating"
            self.writes += 1
            return copy.copy(op), created

    def start_delete(self, workspace: Workspace, endpoint: str, name: str) -> DeploymentOperation:
        with self.lock:
            record = self._record(workspace, endpoint, name)
            if record is None:
                raise OnlineError(404, "ResourceNotFound", f"Deployment {name} was not found.")
            del self._deployments[(workspace.key, endpoint)][name]
            ep = self._endpoints.get(workspace.key, {}).get(endpoint)
            if ep is not None:
                ep["properties"]["traffic"].pop(name, None)
            op = self._new_operation(workspace, endpoint, name, None)
            op.duration_s = 0.0
            return copy.copy(op)

    def fail_next_operations(self, count: int = 1, message: str = "Deployment failed.") -> None:
        """Make the next `count` deployment PUTs end Failed (the deployment keeps its spec)."""
        with self.lock:
            self._failures.extend([message] * count)

    def set_property(
        self, workspace: Workspace, endpoint: str, name: str, key: str, value: Any
    ) -> None:
        """Change one deployment property now, as someone in the portal would (out of band)."""
        with self.lock:
            record = self._record(workspace, endpoint, name)
            if record is None:
                raise KeyError(f"no deployment {endpoint}/{name} in workspace {workspace.name}")
            record.document["properties"][key] = copy.deepcopy(value)
            record.document["systemData"]["lastModifiedAt"] = iso(time.time())
            record.instance_generation += 1

    def remove_deployment(self, workspace: Workspace, endpoint: str, name: str) -> bool:
        with self.lock:
            return self._deployments.get((workspace.key, endpoint), {}).pop(name, None) is not None

    # -- helpers --------------------------------------------------------------------------
    def _new_operation(
        self, workspace: Workspace, endpoint: str, name: str, document: dict[str, Any] | None
    ) -> DeploymentOperation:
        op = DeploymentOperation(
            id=f"od:{workspace.workspace_id}:{uuid.uuid4()}",
            subscription_id=workspace.subscription_id,
            location=workspace.location,
            key=(workspace.key, endpoint, name),
            new_document=copy.deepcopy(document) if document is not None else None,
            created=time.time(),
            duration_s=self.operation_duration_s,
            failure=self._failures.popleft() if self._failures and document else None,
        )
        self._operations[op.id] = op
        return op

    def _record(self, workspace: Workspace, endpoint: str, name: str) -> _Deployment | None:
        record = self._deployments.get((workspace.key, endpoint), {}).get(name)
        return self._settled(record) if record is not None else None

    def _settled(self, record: _Deployment) -> _Deployment:
        op = record.pending
        now = time.time()
        if op is None or now < op.created + op.duration_s:
            return record
        props = record.document["properties"]
        if op.failure is None and op.new_document is not None:
            new = copy.deepcopy(op.new_document)
            new["properties"]["provisioningState"] = "Succeeded"
            new["systemData"] = {**record.document["systemData"], "lastModifiedAt": iso(now)}
            if new != record.document:
                record.instance_generation += 1  # a changed definition rolls the instances
            record.document = new
            op.status = "Succeeded"
        else:
            props["provisioningState"] = "Failed"
            op.status = "Failed"
        op.end_time = now
        record.pending = None
        return record
