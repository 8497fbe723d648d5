"""Shared set-up of the log query tests: a service tenant wired to an emulator sandbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask

from emulator.kql import Table
from emulator.telemetry import TelemetrySpec, generate
from emulator.testing import Sandbox
from emulator.tls import CertificateAuthority
from tests.support.api import ApiClient, World

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW - timedelta(hours=4)
ROLES = ("scorer-a", "scorer-b")
SPEC = TelemetrySpec(
    roles=ROLES, start=START, end=NOW, requests_per_hour=90, failure_rate=0.1, seed=11
)
TABLES: dict[str, Table] = generate(SPEC)


@dataclass
class Wired:
    """A service tenant (with a working credential) whose workspace points at the sandbox."""

    tenant: str
    workspace: str
    box: Sandbox
    reader: str

    @property
    def base(self) -> str:
        return f"/v1/tenants/{self.tenant}/workspaces/{self.workspace}"


def wire(api: ApiClient, world: World, admin_key: str, box: Sandbox, *, seed: bool = True) -> Wired:
    """Register the sandbox as a tenant + workspace + endpoints; seed its telemetry stores."""
    assert box.log_analytics_workspace_id is not None
    assert box.app_insights_resource_id is not None
    tenant = world.tenant(entra_tenant_id=box.tenant_id)
    r = api.call(
        "PUT",
        f"/v1/tenants/{tenant}/credential",
        admin_key,
        json={
            "kind": "service_principal",
            "client_id": box.client_id,
            "client_secret": box.client_secret,
        },
    )
    assert r.status_code == 201, r.get_data(as_text=True)
    workspace = world.workspace(
        tenant,
        subscription_id=box.subscription_id,
        resource_group=box.resource_group,
        workspace_name=box.workspace_name,
        log_analytics_workspace_id=box.log_analytics_workspace_id,
        app_insights_resource_id=box.app_insights_resource_id,
    )
    world.endpoints(tenant, workspace, list(ROLES))
    if seed:
        telemetry = box.emulator.state.telemetry
        telemetry.add_workspace(
            box.log_analytics_workspace_id,
            {n: t for n, t in TABLES.items() if n.startswith("App")},
        )
        telemetry.add_resource(
            box.app_insights_resource_id,
            {n: t for n, t in TABLES.items() if not n.startswith("App")},
        )
    return Wired(tenant, workspace, box, world.key("reader", tenant))


@contextmanager
def serve_https(app: Flask, ca: CertificateAuthority, directory: Path) -> Iterator[str]:
    """Serve the Flask app over HTTPS (cheroot, cert from the session CA); yields its URL."""
    cert, key = ca.issue_server_cert(directory)
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=16)
    server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.bind_addr[1]}"
    finally:
        server.stop()
        thread.join(timeout=5)
