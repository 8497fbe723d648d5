"""Azure Resource Manager: subscriptions, AML workspaces, the AML discovery document, throttling.

Throttling follows ARM's token buckets per (subscription, principal): reads 250 burst / 25 per s,
writes 200 burst / 10 per s, answered with 429 + Retry-After. MMS writes (service PATCH) spend the
same subscription write bucket, so a reconciler's write budget is measured end to end; MMS reads do
not (the model management data plane is not ARM).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from werkzeug.wrappers import Response

from emulator.server import RequestContext, Route, error_response, json_response
from emulator.state import Subscription, Workspace
from emulator.tokens import issuer

DISCOVERY_SERVICES = (
    "api",
    "catalog",
    "experimentation",
    "gallery",
    "history",
    "hyperdrive",
    "labeling",
    "modelmanagement",
    "pipelines",
    "studio",
)
_WORKSPACE_RULE = (
    "/subscriptions/<subscription_id>/resourceGroups/<resource_group>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<workspace>"
)


def authorize_arm(ctx: RequestContext, subscription_id: str | None) -> Response | None:
    """401 without a valid ARM token; 404/401 for an unknown or foreign subscription."""
    family = ctx.route.split(".", 1)[0]
    headers = {
        "WWW-Authenticate": f'Bearer authorization_uri="{ctx.base_url}/common/oauth2/authorize"'
    }
    if ctx.identity is None:
        if not ctx.request.headers.get("Authorization"):
            message = "Authentication failed. The 'Authorization' header is missing."
            return error_response(family, 401, "AuthenticationFailed", message, headers)
        return error_response(
            family, 401, "InvalidAuthenticationToken", "The access token is invalid.", headers
        )
    if subscription_id is None:
        return None
    subscription = ctx.state.get_subscription(subscription_id)
    if subscription is None:
        message = f"The subscription '{subscription_id}' could not be found."
        return error_response(family, 404, "SubscriptionNotFound", message)
    if subscription.tenant_id != ctx.identity.tenant_id:
        token_issuer = issuer(ctx.base_url, ctx.identity.tenant_id)
        expected = issuer(ctx.base_url, subscription.tenant_id)
        message = (
            f"The access token is from the wrong issuer '{token_issuer}'. It must match the tenant "
            f"'{expected}' associated with this subscription. Please use the authority (URL) above "
            "to get the token."
        )
        return error_response(family, 401, "InvalidAuthenticationTokenTenant", message, headers)
    return None


def charge_throttle(
    ctx: RequestContext, subscription_id: str | None, kind: Literal["reads", "writes"]
) -> Response | None:
    """Spend one ARM token; set the remaining-quota header; 429 when the bucket is empty."""
    assert ctx.identity is not None
    scope = "subscription" if subscription_id else "tenant"
    key = subscription_id or f"tenant:{ctx.identity.tenant_id}"
    allowed, remaining, wait = ctx.state.throttle.take(key, ctx.identity.object_id, kind)
    header = f"x-ms-ratelimit-remaining-{scope}-{kind}"
    ctx.response_headers[header] = str(remaining)
    if allowed:
        return None
    operation = "Read" if kind == "reads" else "Write"
    message = (
        f"The request is being throttled as the limit has been reached for operation type - "
        f"{operation}. For more information, see - https://aka.ms/armthrottling"
    )
    headers = {"Retry-After": str(max(1, math.ceil(wait))), header: "0"}
    return error_response(ctx.route.split(".", 1)[0], 429, "TooManyRequests", message, headers)


def subscription_json(sub: Subscription) -> dict[str, Any]:
    """ARM's subscription resource shape."""
    return {
        "id": f"/subscriptions/{sub.id}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }


def workspace_json(ws: Workspace, base_url: str, tenant_id: str) -> dict[str, Any]:
    """ARM's Microsoft.MachineLearningServices/workspaces resource, with our discovery URL."""
    group = f"/subscriptions/{ws.subscription_id}/resourceGroups/{ws.resource_group}/providers"
    short = "".join(ch for ch in ws.name.lower() if ch.isalnum())[:16]
    return {
        "id": ws.arm_id,
        "name": ws.name,
        "type": "Microsoft.MachineLearningServices/workspaces",
        "location": ws.location,
        "tags": {},
        "sku": {"name": "Basic", "tier": "Basic"},
        "identity": {
            "type": "SystemAssigned",
            "principalId": ws.workspace_id,
            "tenantId": tenant_id,
        },
        "properties": {
            "friendlyName": ws.name,
            "description": "",
            "workspaceId": ws.workspace_id,
            "discoveryUrl": f"{base_url}/discovery",
            "applicationInsights": ws.app_insights_resource_id,
            "storageAccount": f"{group}/Microsoft.Storage/storageAccounts/{short}sa",
            "keyVault": f"{group}/Microsoft.KeyVault/vaults/{short}kv",
            "containerRegistry": None,
            "hbiWorkspace": False,
            "provisioningState": "Succeeded",
            "creationTime": "2024-01-01T00:00:00.0000000Z",
            "publicNetworkAccess": "Enabled",
            "v1LegacyMode": True,
        },
    }


def _list_subscriptions(ctx: RequestContext) -> Response:
    assert ctx.identity is not None
    with ctx.state.lock:
        subs = [
            s for s in ctx.state.subscriptions.values() if s.tenant_id == ctx.identity.tenant_id
        ]
    value = [subscription_json(s) for s in sorted(subs, key=lambda s: s.id)]
    return json_response({"value": value, "count": {"type": "Total", "value": len(value)}})


def _get_subscription(ctx: RequestContext) -> Response:
    sub = ctx.state.get_subscription(ctx.params["subscription_id"])
    assert sub is not None  # authorize_arm answered 404 otherwise
    return json_response(subscription_json(sub))


def _get_workspace(ctx: RequestContext) -> Response:
    p = ctx.params
    ws = ctx.state.get_workspace(p["subscription_id"], p["resource_group"], p["workspace"])
    if ws is None:
        message = (
            f"The Resource 'Microsoft.MachineLearningServices/workspaces/{p['workspace']}' under "
            f"resource group '{p['resource_group']}' was not found."
        )
        return error_response("arm", 404, "ResourceNotFound", message)
    assert ctx.identity is not None
    return json_response(workspace_json(ws, ctx.base_url, ctx.identity.tenant_id))


def _discovery(ctx: RequestContext) -> Response:
    # azureml-core fetches this without a token and caches it per (workspace, discovery URL).
    return json_response({name: ctx.base_url for name in DISCOVERY_SERVICES})


ROUTES = [
    Route("arm.subscriptions", "/subscriptions", ("GET",), _list_subscriptions, "arm", "reads"),
    Route(
        "arm.subscription",
        "/subscriptions/<subscription_id>",
        ("GET",),
        _get_subscription,
        "arm",
        "reads",
    ),
    Route("arm.workspace", _WORKSPACE_RULE, ("GET",), _get_workspace, "arm", "reads"),
    Route("arm.discovery", "/discovery", ("GET",), _discovery),
]
