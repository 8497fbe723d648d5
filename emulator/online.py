"""ARM routes of AML online endpoints and deployments (SDK v2), for the api-versions azure-ai-ml
sends (read from the installed package: see ``API_VERSIONS``).

Routes (names as faults and the request log use them):
- `arm.online_endpoints_list`: GET `.../onlineEndpoints` (paged with `nextLink`);
- `arm.online_endpoint_get`: GET `.../onlineEndpoints/{e}`;
- `arm.online_deployments_list`: GET `.../onlineEndpoints/{e}/deployments` (paged);
- `arm.online_deployment_get`: GET `.../deployments/{d}`;
- `arm.online_deployment_put`: PUT, the body validated against mfe.json's
  OnlineDeploymentTrackedResource; 200 (replace) or 201 (create) with `Azure-AsyncOperation` and
  `x-ms-async-operation-timeout`;
- `arm.online_deployment_delete`: DELETE, 202 with `Location` and `Azure-AsyncOperation`;
- `arm.online_deployment_logs`: POST `.../deployments/{d}/getLogs` `{containerType, tail}`;
- `arm.mfe_operation`: GET `/subscriptions/{s}/providers/Microsoft.MachineLearningServices/
  locations/{l}/mfeOperationsStatus/{id}`.

Reads spend the subscription's ARM read bucket and PUT/DELETE its write bucket (shared with MMS
writes), so throttling, faults and latency injection work as for every other route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from emulator.online_catalog import OnlineError
from emulator.server import RequestContext, Route, error_response, json_response
from emulator.state import Workspace

# What azure-ai-ml 1.35.2 sends (azure/ai/ml/_ml_client.py): online endpoints through
# ServiceClient022022Preview (2022-02-01-preview), online deployments through
# ServiceClient042023Preview (2023-04-01-preview); plus the newest stable versions, whose
# online endpoint/deployment shapes are the same for the fields served here.
API_VERSIONS = frozenset({"2022-02-01-preview", "2023-04-01-preview", "2024-10-01", "2025-09-01"})

_WS = (
    "/subscriptions/<subscription_id>/resourceGroups/<resource_group>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<workspace>"
)
_E = f"{_WS}/onlineEndpoints/<endpoint>"
_D = f"{_E}/deployments/<deployment>"
_OPS = (
    "/subscriptions/<subscription_id>/providers/Microsoft.MachineLearningServices"
    "/locations/<location>/mfeOperationsStatus/<operation_id>"
)
CONTAINER_TYPES = ("StorageInitializer", "InferenceServer", "ModelDataCollector")
# Every key mfe.json declares for OnlineDeployment (with EndpointDeploymentPropertiesBase and
# the Managed/Kubernetes subtypes); the spec says additionalProperties: false.
DEPLOYMENT_PROPERTIES = frozenset(
    {
        "codeConfiguration",
        "description",
        "environmentId",
        "environmentVariables",
        "properties",
        "appInsightsEnabled",
        "dataCollector",
        "egressPublicNetworkAccess",
        "endpointComputeType",
        "instanceType",
        "livenessProbe",
        "model",
        "modelMountPath",
        "provisioningState",
        "readinessProbe",
        "requestSettings",
        "scaleSettings",
        "containerResourceRequirements",
    }
)
RESOURCE_KEYS = frozenset(
    {
        "id",
        "name",
        "type",
        "location",
        "tags",
        "identity",
        "kind",
        "properties",
        "sku",
        "systemData",
    }
)
COLLECTION_KEYS = frozenset({"clientId", "dataCollectionMode", "dataId", "samplingRate"})
ROLLING_RATES = frozenset({"Year", "Month", "Day", "Hour", "Minute"})


def _error(status: int, code: str, message: str) -> Response:
    return error_response("arm", status, code, message)


def _workspace(ctx: RequestContext) -> Workspace | Response:
    p = ctx.params
    version = ctx.request.args.get("api-version")
    if version not in API_VERSIONS:
        return _error(
            400,
            "InvalidApiVersionParameter" if version else "MissingApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are "
            f"'{', '.join(sorted(API_VERSIONS))}'.",
        )
    ws = ctx.state.get_workspace(p["subscription_id"], p["resource_group"], p["workspace"])
    if ws is None:
        return _error(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.MachineLearningServices/workspaces/{p['workspace']}' "
            f"under resource group '{p['resource_group']}' was not found.",
        )
    return ws


def _page(ctx: RequestContext, items: list[dict[str, Any]]) -> Response:
    size = max(1, ctx.state.online.page_size)
    start = int(ctx.request.args.get("$skipToken") or 0)
    body: dict[str, Any] = {"value": items[start : start + size]}
    if start + size < len(items):
        query = {k: v for k, v in ctx.request.args.items() if k != "$skipToken"}
        query["$skipToken"] = str(start + size)
        body["nextLink"] = f"{ctx.base_url}{ctx.request.path}?{urlencode(query)}"
    return json_response(body)


def _list_endpoints(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    return _page(ctx, ctx.state.online.list_endpoints(ws))


def _get_endpoint(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    doc = ctx.state.online.get_endpoint(ws, ctx.params["endpoint"])
    if doc is None:
        return _error(
            404, "ResourceNotFound", f"Online endpoint {ctx.params['endpoint']} not found."
        )
    return json_response(doc)


def _list_deployments(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    if ctx.state.online.get_endpoint(ws, ctx.params["endpoint"]) is None:
        return _error(
            404, "ResourceNotFound", f"Online endpoint {ctx.params['endpoint']} not found."
        )
    return _page(ctx, ctx.state.online.list_deployments(ws, ctx.params["endpoint"]))


def _get_deployment(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    p = ctx.params
    doc = ctx.state.online.get_deployment(ws, p["endpoint"], p["deployment"])
    if doc is None:
        return _error(404, "ResourceNotFound", f"Deployment {p['deployment']} not found.")
    return json_response(doc)


def _operation_url(ctx: RequestContext, ws: Workspace, operation_id: str) -> str:
    version = ctx.request.args["api-version"]
    return (
        f"{ctx.base_url}/subscriptions/{ws.subscription_id}/providers/"
        f"Microsoft.MachineLearningServices/locations/{ws.location}/mfeOperationsStatus/"
        f"{operation_id}?api-version={version}"
    )


def _put_deployment(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    p = ctx.params
    body = ctx.request.get_json(force=True, silent=True)
    try:
        document = validate_deployment(body, ws, p["endpoint"], p["deployment"])
        op, created = ctx.state.online.start_put(ws, p["endpoint"], p["deployment"], document)
    except OnlineError as exc:
        return _error(exc.status, exc.code, exc.message)
    answer = ctx.state.online.get_deployment(ws, p["endpoint"], p["deployment"]) or document
    # Like Azure, the answer carries the requested spec while the operation runs.
    answer = {**document, "systemData": answer.get("systemData")}
    answer["properties"] = {
        **document["properties"],
        "provisioningState": "Creating" if created else "Updating",
    }
    headers = {
        "Azure-AsyncOperation": _operation_url(ctx, ws, op.id),
        "x-ms-async-operation-timeout": "PT1H",
    }
    return json_response(answer, 201 if created else 200, headers)


def _delete_deployment(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    p = ctx.params
    try:
        op = ctx.state.online.start_delete(ws, p["endpoint"], p["deployment"])
    except OnlineError as exc:
        if exc.status == 404:
            return Response(status=204)
        return _error(exc.status, exc.code, exc.message)
    url = _operation_url(ctx, ws, op.id)
    headers = {
        "Azure-AsyncOperation": url,
        "Location": url,
        "x-ms-async-operation-timeout": "PT1H",
        "Retry-After": "10",
    }
    return Response(status=202, headers=headers)


def _get_logs(ctx: RequestContext) -> Response:
    ws = _workspace(ctx)
    if isinstance(ws, Response):
        return ws
    p = ctx.params
    body = ctx.request.get_json(force=True, silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        return _error(400, "UserError", "The request body must be a JSON object.")
    container = body.get("containerType", "InferenceServer")
    tail = body.get("tail")
    if container not in CONTAINER_TYPES:
        return _error(
            400, "UserError", f"containerType must be one of {', '.join(CONTAINER_TYPES)}."
        )
    if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        return _error(400, "UserError", "tail must be a non-negative integer.")
    found = ctx.state.online.logs(ws, p["endpoint"], p["deployment"])
    if found is None:
        return _error(404, "ResourceNotFound", f"Deployment {p['deployment']} not found.")
    text, generation = found
    if container == "StorageInitializer":
        text = "Downloading model and code...\nDone.\n"
    elif container == "ModelDataCollector":
        text = "Model data collector started.\n"
    text = f"instanceGeneration={generation}\n{text}"
    if tail is not None:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[-tail:]) if tail > 0 else ""
    return json_response({"content": text})


def _get_operation(ctx: RequestContext) -> Response:
    op = ctx.state.online.operation(ctx.params["operation_id"])
    if op is None or op.subscription_id.lower() != ctx.params["subscription_id"].lower():
        return _error(404, "NotFound", f"Operation {ctx.params['operation_id']} not found.")
    return json_response(op.to_json())


def validate_deployment(body: Any, ws: Workspace, endpoint: str, name: str) -> dict[str, Any]:
    """Check a PUT body against OnlineDeploymentTrackedResource; return the stored document."""
    if not isinstance(body, dict):
        raise OnlineError(400, "UserError", "The request body must be a JSON object.")
    unknown = set(body) - RESOURCE_KEYS
    if unknown:
        raise OnlineError(400, "UserError", f"Unknown properties: {', '.join(sorted(unknown))}.")
    if not isinstance(body.get("location"), str) or not body["location"]:
        raise OnlineError(400, "UserError", "location is required.")
    props = body.get("properties")
    if not isinstance(props, dict):
        raise OnlineError(400, "UserError", "properties is required.")
    unknown = set(props) - DEPLOYMENT_PROPERTIES
    if unknown:
        raise OnlineError(
            400, "UserError", f"Unknown deployment properties: {', '.join(sorted(unknown))}."
        )
    if props.get("endpointComputeType") not in ("Managed", "Kubernetes", "AzureMLCompute"):
        raise OnlineError(400, "UserError", "endpointComputeType must be Managed or Kubernetes.")
    if "appInsightsEnabled" in props and not isinstance(props["appInsightsEnabled"], bool):
        raise OnlineError(400, "UserError", "appInsightsEnabled must be a boolean.")
    _validate_data_collector(props.get("dataCollector"))
    tags = body.get("tags", {})
    if tags is not None and not isinstance(tags, dict):
        raise OnlineError(400, "UserError", "tags must be an object.")
    document = {
        "id": f"{ws.arm_id}/onlineEndpoints/{endpoint}/deployments/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": body["location"],
        "tags": dict(tags or {}),
        "kind": body.get("kind")
        or ("Managed" if props["endpointComputeType"] == "Managed" else "K8S"),
        "sku": body.get("sku") or {"name": "Default", "tier": "Standard", "capacity": 1},
        "systemData": body.get("systemData") or {},
        "properties": {
            "appInsightsEnabled": False,
            "dataCollector": None,
            **{k: v for k, v in props.items() if k != "provisioningState"},
            "provisioningState": "Succeeded",
        },
    }
    if body.get("identity") is not None:
        document["identity"] = body["identity"]
    return document


def _validate_data_collector(collector: Any) -> None:
    if collector is None:
        return
    if not isinstance(collector, dict) or not isinstance(collector.get("collections"), dict):
        raise OnlineError(400, "UserError", "dataCollector.collections is required.")
    unknown = set(collector) - {"collections", "requestLogging", "rollingRate"}
    if unknown:
        raise OnlineError(400, "UserError", f"Unknown dataCollector properties: {sorted(unknown)}.")
    rate = collector.get("rollingRate")
    if rate is not None and rate not in ROLLING_RATES:
        raise OnlineError(400, "UserError", f"rollingRate must be one of {sorted(ROLLING_RATES)}.")
    for key, collection in collector["collections"].items():
        if collection is None:
            continue
        if not isinstance(collection, dict) or set(collection) - COLLECTION_KEYS:
            raise OnlineError(400, "UserError", f"Invalid collection {key!r}.")
        mode = collection.get("dataCollectionMode", "Disabled")
        if mode not in ("Enabled", "Disabled"):
            raise OnlineError(
                400,
                "UserError",
                f"collections.{key}.dataCollectionMode must be Enabled or Disabled.",
            )
        rate_value = collection.get("samplingRate", 1)
        if isinstance(rate_value, bool) or not isinstance(rate_value, int | float):
            raise OnlineError(400, "UserError", f"collections.{key}.samplingRate must be a number.")


ROUTES = [
    Route(
        "arm.online_endpoints_list",
        f"{_WS}/onlineEndpoints",
        ("GET",),
        _list_endpoints,
        "arm",
        "reads",
    ),
    Route("arm.online_endpoint_get", _E, ("GET",), _get_endpoint, "arm", "reads"),
    Route(
        "arm.online_deployments_list",
        f"{_E}/deployments",
        ("GET",),
        _list_deployments,
        "arm",
        "reads",
    ),
    Route("arm.online_deployment_get", _D, ("GET",), _get_deployment, "arm", "reads"),
    Route("arm.online_deployment_put", _D, ("PUT",), _put_deployment, "arm", "writes"),
    Route("arm.online_deployment_delete", _D, ("DELETE",), _delete_deployment, "arm", "writes"),
    Route("arm.online_deployment_logs", f"{_D}/getLogs", ("POST",), _get_logs, "arm", "reads"),
    Route("arm.mfe_operation", _OPS, ("GET",), _get_operation, "arm", "reads"),
]
