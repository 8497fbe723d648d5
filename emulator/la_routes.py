"""The Log Analytics query API's gate: authentication and tenant isolation, then the service.

Everything under `/v1/` goes to `emulator.loganalytics` (the state's `log_analytics`) when it is
built in, else answers 501. `authorize_la` is the middleware's guard for routes with auth "la".
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from emulator.server import (
    RequestContext,
    Route,
    error_response,
    json_response,
)


def _la_handler(ctx: RequestContext) -> Response:
    service = ctx.state.log_analytics
    if service is None:
        return error_response(
            "la", 501, "NotImplemented", "The Log Analytics query API is not built in."
        )
    assert ctx.identity is not None  # authorize_la ran first
    tenant = ctx.identity.tenant_id
    state = ctx.state

    def workspace_allowed(workspace_id: str) -> bool:
        # Another tenant's workspace answers 403, per batch entry and per extra workspace.
        return state.tenant_of_log_analytics_workspace(workspace_id) in (None, tenant)

    response: Response = service.handle(
        ctx.request, ctx.identity.key, workspace_allowed=workspace_allowed
    )
    return response


def authorize_la(ctx: RequestContext, subscription_id: str | None) -> Response | None:
    """401 without a valid api.loganalytics.io token; 403 for another tenant's workspace."""
    if ctx.identity is None:
        body = {
            "error": {
                "code": "InvalidTokenError",
                "message": "The provided authentication is not valid for this resource",
                "innererror": {
                    "code": "TokenValidationFailed",
                    "message": "Missing or invalid bearer token",
                },
            }
        }
        return json_response(body, 401, {"WWW-Authenticate": "Bearer"})
    owners: set[str | None] = set()
    if ctx.route == "la.workspace_query":
        owners.add(ctx.state.tenant_of_log_analytics_workspace(ctx.params["workspace_id"]))
    elif ctx.route == "la.resource_query":
        # The middleware read the subscription from the (percent-decoded) resource id.
        owners.add(ctx.state.tenant_of_subscription(subscription_id) if subscription_id else None)
    # A batch is checked per entry by the query service (workspace_allowed in _la_handler): an
    # entry naming another tenant's workspace gets its own 403, the others still run, as each
    # entry of a Log Analytics batch carries its own status.
    owners.discard(None)
    if owners - {ctx.identity.tenant_id}:
        message = (
            "The provided credentials have insufficient access to perform the requested operation"
        )
        return error_response("la", 403, "InsufficientAccessError", message)
    return None


ROUTES = [
    Route("la.batch", "/v1/$batch", ("POST",), _la_handler, auth="la"),
    Route(
        "la.workspace_query",
        "/v1/workspaces/<workspace_id>/query",
        ("GET", "POST"),
        _la_handler,
        auth="la",
    ),
    Route(
        "la.resource_query", "/v1/<path:resource_id>/query", ("GET", "POST"), _la_handler, auth="la"
    ),
    Route("la.other", "/v1/<path:rest>", ("GET", "POST"), _la_handler, auth="la"),
]
