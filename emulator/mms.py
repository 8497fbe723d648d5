"""AML model management v1 (2019-09-30): web services, JSON-patch updates, async operations, logs,
deletion, keys (list, regenerate) and access tokens.

Service documents carry every key azureml-core's `AksWebservice`/`AciWebservice._initialize`
reads, with values (not nulls) so they also validate against modelManagement.json. A PATCH is
validated at once, answered 202 + Operation-Location, and applied only when its operation
succeeds: after `operation_duration_s` (0 = on the next read), or never if it was told to fail.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from emulator.server import RequestContext, Route, error_response, json_response

if TYPE_CHECKING:
    from emulator.state import Workspace

_M = (
    "/modelmanagement/v1.0/subscriptions/<subscription_id>/resourceGroups/<resource_group>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<workspace>"
)
# A service's `properties` (ServiceResponseBase.properties in modelManagement.json): "The
# service property dictionary. Properties are immutable." - a string map a patch may not
# `replace` or `remove` in. `add` is how azureml-core's update() sends its tracking info (git
# branch, commit, dirty flag), whose values change between releases of the caller; the spec is
# silent on adding an existing key, so RFC 6902 applies: `add` sets the member.
_PROPERTIES_PREFIX = "/properties/"
_SUB_OPERATIONS = {"Service_Update": "ServiceUpdate", "Service_RegenerateKeys": "RegenerateKeys"}
_KEY_TYPES = ("Primary", "Secondary")
TOKEN_LIFETIME_S = 3600


class PatchError(Exception):
    """A rejected PATCH: carries the HTTP status and MMS error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _iso(epoch: float) -> str:
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
        "createdTime": _iso(created),
        "updatedTime": _iso(created),
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
            "createdTime": _iso(self.created),
            "resourceLocation": self.resource_location,
            "operationDetails": {
                "subOperationType": _SUB_OPERATIONS.get(self.operation_type, "ServiceUpdate"),
                "subOperationState": self.state,
            },
        }
        if self.end_time is not None:
            body["endTime"] = _iso(self.end_time)
        if self.state == "Failed":
            body["error"] = {
                "code": "ServiceUpdateFailed",
                "statusCode": 500,
                "message": self.failure or "Service update failed.",
                "details": [],
            }
        return body


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
        text = logs if logs is not None else _default_logs(name)
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
            effective = _validate_patch(record.document, ops)
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
        if not isinstance(request, dict) or request.get("keyType") not in _KEY_TYPES:
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
            _apply(record.document, [{"op": "replace", "path": pointer, "value": value}])
            record.document["updatedTime"] = _iso(time.time())

    def _record(self, workspace: Workspace, name: str) -> _Record | None:
        record = self._services.get(workspace.key, {}).get(name)
        if record is not None and record.pending is not None:
            op = record.pending
            now = time.time()
            if now >= op.created + op.duration_s:
                if op.failure is None:
                    _apply(record.document, op.ops)
                    op.state = "Succeeded"
                else:
                    op.state = "Failed"
                record.document["state"] = record.state_before
                record.document["updatedTime"] = _iso(now)
                op.end_time = now
                record.pending = None
        return record


def _validate_patch(document: dict[str, Any], ops: Any) -> list[dict[str, Any]]:
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
        _apply(copy.deepcopy(document), effective)
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


def _apply(document: dict[str, Any], ops: list[dict[str, Any]]) -> None:
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


def _default_logs(name: str) -> str:
    lines = [
        f"2024-01-01T00:00:00,000 | root | INFO | Starting up app insights client ({name})",
        "2024-01-01T00:00:00,100 | root | INFO | Starting up request id generator",
        "2024-01-01T00:00:00,200 | root | INFO | Starting up app insight hooks",
        "2024-01-01T00:00:01,000 | root | INFO | Invoking user's init function",
        "2024-01-01T00:00:02,000 | root | INFO | Users's init has completed successfully",
        "2024-01-01T00:00:02,100 | root | INFO | Scoring timeout found from os.environ: 60000 ms",
    ]
    return "\n".join(lines) + "\n"


# --- HTTP handlers ------------------------------------------------------------------------------


def _workspace(ctx: RequestContext) -> Workspace | None:
    p = ctx.params
    return ctx.state.get_workspace(p["subscription_id"], p["resource_group"], p["workspace"])


def _no_workspace(ctx: RequestContext) -> Response:
    return error_response(
        "mms", 404, "WorkspaceNotFound", f"Workspace {ctx.params['workspace']} not found."
    )


def _list_services(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    args = ctx.request.args
    services = ctx.state.services.list(ws)
    if compute_type := args.get("computeType"):
        services = [s for s in services if s["computeType"].lower() == compute_type.lower()]
    if name := args.get("name"):
        services = [s for s in services if s["name"] == name]
    size = max(1, int(args.get("count") or ws.page_size or ctx.state.services.page_size))
    start = int(args.get("$skipToken") or 0)
    body: dict[str, Any] = {"value": services[start : start + size]}
    if start + size < len(services):
        query = {k: v for k, v in args.items() if k != "$skipToken"}
        query["$skipToken"] = str(start + size)
        body["nextLink"] = f"{ctx.base_url}{ctx.request.path}?{urlencode(query)}"
    return json_response(body)


def _get_service(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    doc = ctx.state.services.get(ws, ctx.params["name"])
    if doc is None:
        return error_response("mms", 404, "NotFound", f"Service {ctx.params['name']} not found.")
    return json_response(doc)


def _validate(ctx: RequestContext) -> Response:
    error = ctx.state.services.validation_error
    return json_response({"error": {"message": error}} if error else {})


def _patch_service(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    name = ctx.params["name"]
    location = f"/api/subscriptions/{ws.subscription_id}/resourceGroups/{ws.resource_group}" + (
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ws.name}/services/{name}"
    )
    try:
        op = ctx.state.services.start_patch(
            ws, name, ctx.request.get_json(force=True, silent=True), location
        )
    except PatchError as exc:
        return error_response("mms", exc.status, exc.code, exc.message)
    mms_base = ctx.request.path.rsplit("/services/", 1)[0]
    operation_url = f"{ctx.base_url}{mms_base}/operations/{op.id}"
    return Response(status=202, headers={"Operation-Location": operation_url})


def _service_location(ctx: RequestContext, ws: Workspace, name: str) -> str:
    return f"/api/subscriptions/{ws.subscription_id}/resourceGroups/{ws.resource_group}" + (
        f"/providers/Microsoft.MachineLearningServices/workspaces/{ws.name}/services/{name}"
    )


def _delete_service(ctx: RequestContext) -> Response:
    """`Services_Delete`: 200 "The resource exists and was deleted successfully", 204 "The
    resource does not exist and the request was well formed" (the spec also allows 202; the
    emulator deletes at once, which azureml-core's Webservice.delete() handles as 200)."""
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    if ctx.state.services.remove(ws, ctx.params["name"]):
        return Response(status=200)
    return Response(status=204)


def _list_keys(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    keys = ctx.state.services.keys(ws, ctx.params["name"])
    if keys is None:
        return error_response("mms", 404, "NotFound", f"Service {ctx.params['name']} not found.")
    return json_response(keys)


def _regenerate_keys(ctx: RequestContext) -> Response:
    """`Services_RegenerateServiceKeys`: 202 + Operation-Location (azureml-core requires it)."""
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    name = ctx.params["name"]
    try:
        body = ctx.request.get_json(force=True, silent=True)
        op = ctx.state.services.regenerate_key(ws, name, body, _service_location(ctx, ws, name))
    except PatchError as exc:
        return error_response("mms", exc.status, exc.code, exc.message)
    mms_base = ctx.request.path.rsplit("/services/", 1)[0]
    return Response(
        status=202, headers={"Operation-Location": f"{ctx.base_url}{mms_base}/operations/{op.id}"}
    )


def _get_token(ctx: RequestContext) -> Response:
    """`Services_GetServiceToken`: 201 with an AuthToken."""
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    token = ctx.state.services.token(ws, ctx.params["name"])
    if token is None:
        return error_response("mms", 404, "NotFound", f"Service {ctx.params['name']} not found.")
    return json_response(token, 201)


def _get_operation(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    op = ctx.state.services.operation(ws, ctx.params["operation_id"])
    if op is None:
        return error_response(
            "mms", 404, "NotFound", f"Operation {ctx.params['operation_id']} not found."
        )
    return json_response(op.to_json())


def _get_logs(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if ws is None:
        return _no_workspace(ctx)
    text = ctx.state.services.logs(ws, ctx.params["name"])
    if text is None:
        return error_response("mms", 404, "NotFound", f"Service {ctx.params['name']} not found.")
    tail = ctx.request.args.get("tail", type=int)
    if tail is not None:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-tail:]) if tail > 0 else ""
    return json_response({"content": text})


ROUTES = [
    Route("mms.services_list", f"{_M}/services", ("GET",), _list_services, "arm"),
    Route("mms.services_validate", f"{_M}/services/validate", ("POST",), _validate, "arm"),
    Route("mms.service_get", f"{_M}/services/<name>", ("GET",), _get_service, "arm"),
    Route(
        "mms.service_patch", f"{_M}/services/<name>", ("PATCH",), _patch_service, "arm", "writes"
    ),
    Route(
        "mms.service_delete",
        f"{_M}/services/<name>",
        ("DELETE",),
        _delete_service,
        "arm",
        "writes",
    ),
    Route("mms.service_listkeys", f"{_M}/services/<name>/listkeys", ("POST",), _list_keys, "arm"),
    Route(
        "mms.service_regenerate_keys",
        f"{_M}/services/<name>/regenerateKeys",
        ("POST",),
        _regenerate_keys,
        "arm",
        "writes",
    ),
    Route("mms.service_token", f"{_M}/services/<name>/token", ("POST",), _get_token, "arm"),
    Route("mms.service_logs", f"{_M}/services/<name>/logs", ("GET",), _get_logs, "arm"),
    Route("mms.operation", f"{_M}/operations/<operation_id>", ("GET",), _get_operation, "arm"),
]
