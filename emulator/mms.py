"""AML model management v1 (2019-09-30) routes: web services, JSON-patch updates, async
operations, logs, deletion, keys (list, regenerate) and access tokens.

Service documents carry every key azureml-core's `AksWebservice`/`AciWebservice._initialize`
reads (`emulator.mms_documents`). A PATCH is validated at once, answered 202 +
Operation-Location, and applied only when its operation succeeds (`emulator.mms_catalog`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from emulator.mms_documents import PatchError
from emulator.server import RequestContext, Route, error_response, json_response

if TYPE_CHECKING:
    from emulator.state import Workspace

_M = (
    "/modelmanagement/v1.0/subscriptions/<subscription_id>/resourceGroups/<resource_group>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<workspace>"
)

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
