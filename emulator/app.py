"""Assembles the emulator: every route module's `ROUTES` and the middleware's gates.

The one place that knows all route modules; `emulator.server` (the middleware) knows none, and
the route modules know only the server's `Route`/`RequestContext` and response helpers.
"""

from __future__ import annotations

from emulator import (
    admin,
    arm,
    data_export_api,
    entra,
    entra_delegated,
    export_delivery,
    la_routes,
    mms,
    online,
)
from emulator.server import EmulatorApp, Gates, Route
from emulator.state import EmulatorState

ROUTE_MODULES = (
    entra,
    entra_delegated,
    arm,
    online,
    mms,
    admin,
    la_routes,
    data_export_api,
    export_delivery,
)


def routes() -> list[Route]:
    """Every route of the emulator, in registration order."""
    return [route for module in ROUTE_MODULES for route in module.ROUTES]


def build_app(state: EmulatorState) -> EmulatorApp:
    """The WSGI app serving `state`: all routes, ARM and Log Analytics guards, ARM throttling."""
    gates = Gates(
        authorize={"arm": arm.authorize_arm, "la": la_routes.authorize_la},
        throttle=arm.charge_throttle,
    )
    return EmulatorApp(state, routes(), gates)
