"""AML web services of every workspace, and their async operations (the MMS model).

A PATCH is validated at once and applied only when its operation succeeds: after
`operation_duration_s` (0 = on the next read), or never if it was told to fail.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from emulator.mms_documents import (
    KEY_TYPES,
    Operation,
    PatchError,
    apply_patch,
    default_logs,
    iso,
    service_document,
    validate_patch,
)

if TYPE_CHECKING:
    from emulator.state import Workspace

TOKEN_LIFETIME_S = 3600


def _new_key() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class _Record:
    document: dict[str, Any]
    logs: str
    pending: Operation | None = None
    state_before: str = "Healthy"
    keys: dict[str, str] = field(
        default_factory=lambda: {"primaryKey": _new_key(), "secondaryKey": _new_key()}
    )


@dataclass
class ServiceCatalog:
    """All web services of all workspaces, and their operations. Knobs are plain attributes."""

    lock: threading.RLock
    operation_duration_s: float = 0.0
    page_size: int = 100
    validation_error: str | None = None
    _services: dict[tuple[str, str, str], dict[str, _Record]] = field(default_factory=dict)
    _operations: dict[str, Operation] = field(default_factory=dict)
    _failures: deque[str] = field(default_factory=deque)

    def add(
        self,
        workspace: Workspace,
        name: str,
        *,
        compute_type: Literal["AKS", "ACI"] = "AKS",
        app_insights_enabled: bool = False,
        state: str = "Healthy",
        collect_model_data: bool = False,
        description: str = "",
        tags: dict[str, str] | None = None,
        logs: str | None = None,
    ) -> dict[str, Any]:
        """Create (or replace) a service; returns a copy of its document."""
        doc = service_document(
            workspace,
            name,
            compute_type=compute_type,
            app_insights_enabled=app_insights_enabled,
            state=state,
            collect_model_data=collect_model_data,
            description=description,
            tags=tags or {},
            created=time.time(),
        )
        text = logs if logs is not None else default_logs(name)
        with self.lock:
            self._services.setdefault(workspace.key, {})[name] = _Record(
                doc, text, state_before=state
            )
        return copy.deepcopy(doc)

    def get(self, workspace: Workspace, name: str) -> dict[str, Any] | None:
        """The current document (after settling due operations), or None."""
        with self.lock:
            record = self._record(workspace, name)
            return copy.deepcopy(record.document) if record else None

    def list(self, workspace: Workspace) -> list[dict[str, Any]]:
        """Every service of the workspace, ordered by name."""
        with self.lock:
            names = sorted(self._services.get(workspace.key, {}))
            return [copy.deepcopy(self._record(workspace, n).document) for n in names]  # type: ignore[union-attr]

    def logs(self, workspace: Workspace, name: str) -> str | None:
        with self.lock:
            record = self._record(workspace, name)
            return record.logs if record else None

    def start_patch(
        self, workspace: Workspace, name: str, ops: Any, resource_location: str
    ) -> Operation:
        """Validate a JSON patch and start the operation that will apply it."""
        with self.lock:
            record = self._record(workspace, name)
            if record is None:
                raise PatchError(
                    404, "NotFound", f"Service {name} not found in workspace {workspace.name}."
                )
            if record.pending is not None:
                message = f"Service {name} has an operation in progress: {record.pending.id}."
                raise PatchError(409, "Conflict", message)
            effective = validate_patch(record.document, ops)
            op = Operation(
                id=str(uuid.uuid4()),
                workspace_key=workspace.key,
                service_name=name,
                resource_location=resource_location,
                ops=effective,
                created=time.time(),
                duration_s=self.operation_duration_s,
                failure=self._failures.popleft() if self._failures else None,
            )
            self._operations[op.id] = op
            record.pending = op
            record.state_before = record.document["state"]
            record.document["state"] = "Transitioning"
            record.document["operationId"] = op.id
            return op

    def operation(self, workspace: Workspace, operation_id: str) -> Operation | None:
        """An operation of this workspace, settled if due."""
        with self.lock:
            op = self._operations.get(operation_id)
            if op is None or op.workspace_key != workspace.key:
                return None
            self._record(workspace, op.service_name)
            return copy.copy(op)

    def fail_next_operations(self, count: int = 1, message: str = "Service update failed.") -> None:
        """Make the next `count` PATCH operations end Failed (the service stays unchanged)."""
        with self.lock:
            self._failures.extend([message] * count)

    def keys(self, workspace: Workspace, name: str) -> dict[str, str] | None:
        """`Services_ListServiceKeys`: the service's AuthKeys, or None if there is no service."""
        with self.lock:
            record = self._record(workspace, name)
            return dict(record.keys) if record else None

    def regenerate_key(
        self,
        workspace: Workspace,
        name: str,
        request: Any,
        resource_location: str,
    ) -> Operation:
        """`Services_RegenerateServiceKeys`: set one key (to `keyValue`, or a new random one) and
        record a finished operation, which azureml-core's regen_key() polls."""
        if not isinstance(request, dict) or request.get("keyType") not in KEY_TYPES:
            raise PatchError(400, "BadRequest", "keyType must be 'Primary' or 'Secondary'.")
        value = request.get("keyValue")
        if value is not None and (not isinstance(value, str) or not value):
            raise PatchError(400, "BadRequest", "keyValue must be a non-empty string.")
        with self.lock:
            record = self._record(workspace, name)
            if record is None:
                raise PatchError(
                    404, "NotFound", f"Service {name} not found in workspace {workspace.name}."
                )
            slot = "primaryKey" if request["keyType"] == "Primary" else "secondaryKey"
            record.keys[slot] = value or _new_key()
            now = time.time()
            op = Operation(
                id=str(uuid.uuid4()),
                workspace_key=workspace.key,
                service_name=name,
                resource_location=resource_location,
                ops=[],
                created=now,
                duration_s=0.0,
                failure=None,
                state="Succeeded",
                end_time=now,
                operation_type="Service_RegenerateKeys",
            )
            self._operations[op.id] = op
            return op

    def token(self, workspace: Workspace, name: str) -> dict[str, Any] | None:
        """`Services_GetServiceToken`: an AuthToken for calling the service, or None."""
        with self.lock:
            if self._record(workspace, name) is None:
                return None
        now = int(time.time())
        return {
            "accessToken": secrets.token_urlsafe(32),
            "tokenType": "Bearer",
            "expiryOn": now + TOKEN_LIFETIME_S,
            "refreshAfter": now + TOKEN_LIFETIME_S // 2,
        }

    def remove(self, workspace: Workspace, name: str) -> bool:
        """Delete a service (as if deleted in the portal); False if there was none."""
        with self.lock:
            return self._services.get(workspace.key, {}).pop(name, None) is not None

    def set_property(self, workspace: Workspace, name: str, path: str, value: Any) -> None:
        """Replace one value now, as if changed out of band (e.g. in the portal)."""
        pointer = path if path.startswith("/") else f"/{path}"
        with self.lock:
            record = self._record(workspace, name)
            if record is None:
                raise KeyError(f"no service {name!r} in workspace {workspace.name}")
            apply_patch(record.document, [{"op": "replace", "path": pointer, "value": value}])
            record.document["updatedTime"] = iso(time.time())

    def _record(self, workspace: Workspace, name: str) -> _Record | None:
        record = self._services.get(workspace.key, {}).get(name)
        if record is not None and record.pending is not None:
            op = record.pending
            now = time.time()
            if now >= op.created + op.duration_s:
                if op.failure is None:
                    apply_patch(record.document, op.ops)
                    op.state = "Succeeded"
                else:
                    op.state = "Failed"
                record.document["state"] = record.state_before
                record.document["updatedTime"] = iso(now)
                op.end_time = now
                record.pending = None
        return record
