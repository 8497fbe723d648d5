"""The HTTPS front door: cheroot (keep-alive, threaded, TLS) + a werkzeug router + middleware.

Per request: route -> identify the caller (bearer JWT) -> injected faults -> authentication and
tenant checks -> ARM throttling -> handler -> request log. Route modules (entra, arm, mms, admin,
...) declare `ROUTES` and import this module; this module imports none of them.
`emulator.app.build_app` assembles their routes and `Gates` (the checks of the middleware) into
an `EmulatorApp`, which an `EmulatorServer` serves.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import unquote

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from emulator.tokens import ARM_AUDIENCES, LOG_ANALYTICS_AUDIENCE

if TYPE_CHECKING:
    from emulator.faults import Fault
    from emulator.state import EmulatorState
    from emulator.tokens import Identity

log = logging.getLogger(__name__)

AuthKind = Literal["none", "arm", "la"]
CONNECTION_KEY = "emulator.connection"  # the cheroot connection, set by emulator.https
_SUBSCRIPTION_IN_PATH = re.compile(r"/subscriptions/([^/]+)", re.IGNORECASE)


@dataclass
class RequestContext:
    """What a handler gets: the state, the request, URL parameters and the caller."""

    state: EmulatorState
    request: Request
    params: dict[str, str]
    route: str
    identity: Identity | None = None
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return self.state.base_url


Handler = Callable[[RequestContext], Response]


@dataclass(frozen=True)
class Route:
    """One URL rule. `throttle` names the ARM bucket the call spends, if any."""

    name: str
    rule: str
    methods: tuple[str, ...]
    handler: Handler
    auth: AuthKind = "none"
    throttle: Literal["reads", "writes"] | None = None


Guard = Callable[[RequestContext, str | None], Response | None]
"""Checks a caller for a route of one auth kind (given the subscription in the URL, if any):
None lets the request through, a response refuses it."""
ThrottleCharge = Callable[[RequestContext, str | None, Literal["reads", "writes"]], Response | None]
"""Spends one token of a throttle bucket: None lets the request through, a 429 refuses it."""


@dataclass(frozen=True)
class Gates:
    """The checks the middleware runs before a handler, supplied by whoever assembles the app.

    `authorize[route.auth]` runs for every route whose auth is not "none"; `throttle` runs for
    routes that name a bucket, once the caller is known.
    """

    authorize: Mapping[str, Guard]
    throttle: ThrottleCharge


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON response with the content type Azure services send."""
    return Response(
        json.dumps(body),
        status=status,
        headers=dict(headers or {}),
        content_type="application/json; charset=utf-8",
    )


def error_response(
    family: str, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """An error in the wire shape of the service family (entra, arm, mms, la, admin)."""
    if family == "entra":
        return entra_error(status, code, 0, message, headers)
    if family == "mms":
        body: dict[str, Any] = {
            "code": code,
            "statusCode": status,
            "message": message,
            "details": [],
        }
    else:
        body = {"error": {"code": code, "message": message}}
    return json_response(body, status, headers)


def entra_error(
    status: int, error: str, aadsts: int, description: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Entra ID's OAuth error body (error, error_description with AADSTS code, ids, timestamp)."""
    trace_id, correlation_id = _guid(), _guid()
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    prefix = f"AADSTS{aadsts}: " if aadsts else ""
    body = {
        "error": error,
        "error_description": (
            f"{prefix}{description}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\n"
            f"Timestamp: {stamp}"
        ),
        "error_codes": [aadsts] if aadsts else [],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return json_response(
        body, status, {"Cache-Control": "no-store, no-cache", **dict(headers or {})}
    )


def _guid() -> str:
    import uuid

    return str(uuid.uuid4())


_STATUS_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class EmulatorApp:
    """The WSGI application: routing plus the generic middleware."""

    def __init__(self, state: EmulatorState, routes: Iterable[Route], gates: Gates) -> None:
        self.state = state
        self.gates = gates
        self.routes = {route.name: route for route in routes}
        kinds: set[str] = {r.auth for r in self.routes.values()}
        unguarded = kinds - {"none"} - set(gates.authorize)
        if unguarded:
            raise ValueError(f"no guard for auth kind(s) {sorted(unguarded)}")
        rules = [
            Rule(r.rule, endpoint=r.name, methods=list(r.methods)) for r in self.routes.values()
        ]
        self.url_map = Map(
            rules, merge_slashes=False, strict_slashes=False, redirect_defaults=False
        )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        trace = _Trace(started=time.perf_counter())
        try:
            response = self._handle(request, environ, trace)
        except _DropRequested:
            # Log first: the client sees the closed socket at once and may inspect the log.
            self._log(request, trace, 0)
            _drop_connection(environ)
        except Exception:
            # An emulator bug must look like a server error to the client, never a hang.
            log.exception("unhandled error serving %s %s", request.method, request.path)
            response = error_response(
                "arm", 500, "InternalServerError", "Unhandled emulator error."
            )
        self._log(request, trace, response.status_code)
        return response(environ, start_response)

    def _handle(self, request: Request, environ: dict[str, Any], trace: _Trace) -> Response:
        try:
            trace.route, params = self.url_map.bind_to_environ(environ).match()
        except NotFound:
            return error_response("arm", 404, "NotFound", f"No route for {request.path}")
        except MethodNotAllowed:
            return error_response(
                "arm", 405, "MethodNotAllowed", f"{request.method} is not allowed"
            )
        route = self.routes[trace.route]
        trace.identity = identity = self._identify(request, route)
        trace.subscription = params.get("subscription_id") or subscription_in_path(request.path)
        if identity is not None:
            trace.tenant = identity.tenant_id
        elif "tenant" in params:
            trace.tenant = params["tenant"]
        elif trace.subscription:
            trace.tenant = self.state.tenant_of_subscription(trace.subscription)
        faults = self.state.faults.select(
            trace.route, trace.tenant, trace.subscription, identity.key if identity else None
        )
        if faults:
            trace.fault = faults[-1].kind
            injected = self._apply_faults(faults, route.name.split(".", 1)[0])
            if injected is not None:
                return injected
        return self._serve(route, request, params, identity, trace.subscription)

    def _identify(self, request: Request, route: Route) -> Identity | None:
        if route.auth == "none":
            return None
        # azure-ai-ml asks a custom cloud for tokens whose audience is the cloud's resource
        # manager URL (here, ours), as sovereign clouds do: accept it beside the public ones.
        audiences = (
            ARM_AUDIENCES | {self.state.base_url}
            if route.auth == "arm"
            else frozenset({LOG_ANALYTICS_AUDIENCE})
        )
        return self.state.signer.verify_bearer(request.headers.get("Authorization"), audiences)

    def _apply_faults(self, faults: list[Fault], family: str) -> Response | None:
        for fault in faults:
            if fault.kind == "latency":
                time.sleep(fault.latency_s)
            elif fault.kind == "hang":
                fault.release.wait(fault.hang_s)
            elif fault.kind == "drop":
                raise _DropRequested
            elif fault.kind == "throttle":
                retry = {"Retry-After": str(fault.retry_after_s)}
                message = fault.message or "Too many requests. Please retry."
                return error_response(family, 429, "TooManyRequests", message, retry)
            elif fault.kind == "status":
                code = _STATUS_CODES.get(fault.status, "InternalServerError")
                return error_response(
                    family, fault.status, code, fault.message or "Injected failure."
                )
        return None

    def _serve(
        self,
        route: Route,
        request: Request,
        params: dict[str, str],
        identity: Identity | None,
        subscription: str | None,
    ) -> Response:
        ctx = RequestContext(self.state, request, params, route.name, identity)
        if route.auth != "none":
            denied = self.gates.authorize[route.auth](ctx, subscription)
            if denied is not None:
                return denied
        if route.throttle and identity is not None:
            refused = self.gates.throttle(ctx, subscription, route.throttle)
            if refused is not None:
                return refused
        response = route.handler(ctx)
        for key, value in ctx.response_headers.items():
            response.headers.setdefault(key, value)
        return response

    def _log(self, request: Request, trace: _Trace, status: int) -> None:
        identity = trace.identity
        self.state.request_log.append(
            time=time.time(),
            method=request.method,
            path=request.path,
            query=request.query_string.decode("latin-1"),
            route=trace.route,
            status=status,
            duration_ms=(time.perf_counter() - trace.started) * 1000.0,
            identity=identity.key if identity else None,
            tenant_id=trace.tenant,
            subscription_id=trace.subscription.lower() if trace.subscription else None,
            fault=trace.fault,
            client_request_id=request.headers.get("x-ms-client-request-id"),
        )


@dataclass
class _Trace:
    """What the middleware learnt about a request, for the request log."""

    started: float
    route: str = "unmatched"
    identity: Identity | None = None
    tenant: str | None = None
    subscription: str | None = None
    fault: str | None = None


def subscription_in_path(path: str) -> str | None:
    # Resource-centric Log Analytics paths may carry the ARM id percent-encoded.
    match = _SUBSCRIPTION_IN_PATH.search(unquote(path))
    return match.group(1) if match else None


class _DropRequested(Exception):
    """A drop fault fired: the app logs the request, then closes the socket."""


class _DroppedConnection(ConnectionResetError):
    """Raised out of the WSGI app after closing the socket; cheroot ignores ECONNRESET silently."""


def _drop_connection(environ: dict[str, Any]) -> NoReturn:
    conn = environ.get(CONNECTION_KEY)
    if conn is not None:
        with contextlib.suppress(OSError):  # the client may have gone already
            conn.socket.shutdown(socket.SHUT_RDWR)
    raise _DroppedConnection(errno.ECONNRESET, "connection dropped by fault injection")
