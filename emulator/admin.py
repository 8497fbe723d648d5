"""The control API under /_admin: faults, request log, device codes, drift, limits, stats.

Unauthenticated by design: the emulator listens on loopback for tests and the demo. Every call has
a Python twin on `emulator.testing.EmulatorHandle` for in-process use.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from werkzeug.wrappers import Response

from emulator.faults import FAULT_KINDS, Fault
from emulator.server import RequestContext, Route, error_response, json_response
from emulator.state import EmulatorState

_FAULT_FIELDS = {f.name for f in dataclasses.fields(Fault)} - {
    "id",
    "kind",
    "route",
    "hits",
    "release",
}


def _body(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


def _bad_request(message: str) -> Response:
    return error_response("admin", 400, "BadRequest", message)


def _health(ctx: RequestContext) -> Response:
    return json_response({"status": "ok", "url": ctx.base_url})


def _list_faults(ctx: RequestContext) -> Response:
    return json_response({"value": [f.describe() for f in ctx.state.faults.list()]})


def _add_fault(ctx: RequestContext) -> Response:
    try:
        body = _body(ctx)
        kind = body.pop("kind", None)
        route = body.pop("route", "*")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {FAULT_KINDS}")
        unknown = set(body) - _FAULT_FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)}")
        fault = ctx.state.faults.add(kind, route, **body)
    except (TypeError, ValueError) as exc:
        return _bad_request(str(exc))
    return json_response(fault.describe(), 201)


def _clear_faults(ctx: RequestContext) -> Response:
    fault_id = ctx.params.get("fault_id")
    removed = ctx.state.faults.clear(int(fault_id) if fault_id is not None else None)
    if fault_id is not None and not removed:
        return error_response("admin", 404, "NotFound", f"no fault {fault_id}")
    return json_response({"removed": removed})


def _requests(ctx: RequestContext) -> Response:
    args = ctx.request.args
    entries = ctx.state.request_log.entries(
        route=args.get("route"),
        since=args.get("since", 0, type=int),
        subscription_id=args.get("subscription_id"),
        tenant_id=args.get("tenant_id"),
    )
    return json_response({"value": [dataclasses.asdict(e) for e in entries]})


def _clear_requests(ctx: RequestContext) -> Response:
    ctx.state.request_log.clear()
    return Response(status=204)


def _pending_device_codes(ctx: RequestContext) -> Response:
    codes = ctx.state.pending_device_codes()
    return json_response(
        {
            "value": [
                {"user_code": c.user_code, "client_id": c.client_id, "tenant_id": c.tenant_id}
                for c in codes
            ]
        }
    )


def _approve_device_code(ctx: RequestContext) -> Response:
    try:
        body = _body(ctx)
        ctx.state.approve_device_code(str(body["user_code"]), str(body["username"]))
    except (KeyError, ValueError) as exc:
        return _bad_request(str(exc))
    return Response(status=204)


def _revoke_refresh_tokens(ctx: RequestContext) -> Response:
    try:
        body = _body(ctx)
    except ValueError as exc:
        return _bad_request(str(exc))
    revoked = ctx.state.revoke_refresh_tokens(
        tenant_id=body.get("tenant_id"),
        username=body.get("username"),
        client_id=body.get("client_id"),
    )
    return json_response({"revoked": revoked})


def _set_service_property(ctx: RequestContext) -> Response:
    try:
        body = _body(ctx)
        ws = ctx.state.get_workspace(
            body["subscription_id"], body["resource_group"], body["workspace"]
        )
        if ws is None:
            raise KeyError(f"no workspace {body['workspace']}")
        ctx.state.set_service_property(ws, body["service"], body["path"], body["value"])
    except (KeyError, TypeError, ValueError) as exc:
        return _bad_request(str(exc))
    return Response(status=204)


def _fail_next_operations(ctx: RequestContext) -> Response:
    try:
        body = _body(ctx)
    except ValueError as exc:
        return _bad_request(str(exc))
    ctx.state.services.fail_next_operations(
        int(body.get("count", 1)), str(body.get("message", "Service update failed."))
    )
    return Response(status=204)


def limits_view(state: EmulatorState) -> dict[str, Any]:
    """Current knobs, in the shape PUT /_admin/limits accepts."""
    catalog = state.services
    return {
        "arm_throttle": dataclasses.asdict(state.throttle.limits),
        "mms": {
            "operation_duration_s": catalog.operation_duration_s,
            "page_size": catalog.page_size,
            "validation_error": catalog.validation_error,
        },
        "entra": dataclasses.asdict(state.entra),
        "log_analytics": _la_limits_view(state),
    }


_LA_LIMIT_FIELDS = (
    "max_concurrent_per_identity",
    "queue_timeout_s",
    "max_queue_per_identity",
    "rate_limit",
    "rate_window_s",
    "max_rows",
    "max_response_bytes",
    "default_wait_s",
    "max_wait_s",
    "latency_s",
    "max_summarize_groups",
)


def _la_limits_view(state: EmulatorState) -> dict[str, Any] | None:
    if state.log_analytics is None:
        return None
    limits = state.log_analytics.limits
    return {name: getattr(limits, name) for name in _LA_LIMIT_FIELDS}


def _apply_la_limits(state: EmulatorState, changes: dict[str, Any]) -> None:
    if state.log_analytics is None:
        raise ValueError("this emulator has no Log Analytics query API")
    unknown = set(changes) - set(_LA_LIMIT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log_analytics limits {sorted(unknown)}")
    current = state.log_analytics.limits
    typed = {k: type(getattr(current, k))(v) for k, v in changes.items()}
    # The service reads `limits` per query: replace the object rather than mutate it mid-query.
    state.log_analytics.limits = dataclasses.replace(current, **typed)


def apply_limits(state: EmulatorState, changes: dict[str, Any]) -> None:
    """Apply a (partial) limits document; unknown keys raise ValueError."""
    unknown = set(changes) - {"arm_throttle", "mms", "entra", "log_analytics"}
    if unknown:
        raise ValueError(f"unknown limit groups {sorted(unknown)}")
    if "log_analytics" in changes:
        _apply_la_limits(state, changes["log_analytics"])
    if "arm_throttle" in changes:
        state.throttle.configure(**changes["arm_throttle"])
    for key, value in changes.get("mms", {}).items():
        if key not in ("operation_duration_s", "page_size", "validation_error"):
            raise ValueError(f"unknown mms limit {key!r}")
        setattr(state.services, key, value)
    for key, value in changes.get("entra", {}).items():
        if not hasattr(state.entra, key):
            raise ValueError(f"unknown entra setting {key!r}")
        setattr(state.entra, key, type(getattr(state.entra, key))(value))


def _limits(ctx: RequestContext) -> Response:
    if ctx.request.method == "PUT":
        try:
            apply_limits(ctx.state, _body(ctx))
        except (TypeError, ValueError) as exc:
            return _bad_request(str(exc))
    return json_response(limits_view(ctx.state))


def _canned_response(ctx: RequestContext) -> Response:
    """POST {path, status, body, headers?, query?}: answer a Log Analytics route with a fixed
    (e.g. recorded) response; DELETE removes them all."""
    store = ctx.state.telemetry
    if store is None:
        return _bad_request("this emulator has no Log Analytics query API")
    if ctx.request.method == "DELETE":
        store.clear_canned_responses()
        return Response(status=204)
    try:
        body = _body(ctx)
        unknown = set(body) - {"path", "status", "body", "headers", "query"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        store.set_canned_response(
            str(body["path"]),
            status=int(body["status"]),
            body=body.get("body", ""),
            headers=body.get("headers"),
            query=body.get("query"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _bad_request(f"invalid canned response: {exc}")
    return Response(status=204)


def _la_stats(ctx: RequestContext) -> Response:
    if ctx.state.log_analytics is None:
        return _bad_request("this emulator has no Log Analytics query API")
    return json_response(ctx.state.log_analytics.stats())


def _arm_write_stats(ctx: RequestContext) -> Response:
    return json_response({"maxWritesPerSecond": ctx.state.throttle.max_writes_per_second()})


ROUTES = [
    Route("admin.health", "/_admin/health", ("GET",), _health),
    Route("admin.faults", "/_admin/faults", ("GET",), _list_faults),
    Route("admin.add_fault", "/_admin/faults", ("POST",), _add_fault),
    Route("admin.clear_faults", "/_admin/faults", ("DELETE",), _clear_faults),
    Route("admin.clear_fault", "/_admin/faults/<int:fault_id>", ("DELETE",), _clear_faults),
    Route("admin.requests", "/_admin/requests", ("GET",), _requests),
    Route("admin.clear_requests", "/_admin/requests", ("DELETE",), _clear_requests),
    Route("admin.device_codes", "/_admin/device-codes", ("GET",), _pending_device_codes),
    Route(
        "admin.approve_device_code", "/_admin/device-codes/approve", ("POST",), _approve_device_code
    ),
    Route(
        "admin.revoke_refresh_tokens",
        "/_admin/refresh-tokens/revoke",
        ("POST",),
        _revoke_refresh_tokens,
    ),
    Route("admin.service_property", "/_admin/services/property", ("POST",), _set_service_property),
    Route(
        "admin.fail_next_operations",
        "/_admin/operations/fail-next",
        ("POST",),
        _fail_next_operations,
    ),
    Route("admin.limits", "/_admin/limits", ("GET", "PUT"), _limits),
    Route("admin.arm_write_stats", "/_admin/stats/arm-writes", ("GET",), _arm_write_stats),
    Route("admin.la_stats", "/_admin/stats/log-analytics", ("GET",), _la_stats),
    Route(
        "admin.la_canned",
        "/_admin/log-analytics/canned-responses",
        ("POST", "DELETE"),
        _canned_response,
    ),
]
