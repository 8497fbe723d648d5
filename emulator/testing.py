"""Run an emulator in-process and give tests their own data on it.

    with run_emulator() as emu:
        box = emu.sandbox()
        box.add_service("scorer", compute_type="ACI")
        credential = box.credential()          # azure-identity ClientSecretCredential
        emu.add_fault("status", "mms.service_get", status=500, count=1)

A `Sandbox` is a uniquely named tenant + service principal + subscription + workspace, so tests can
share one emulator without seeing each other's services, faults (filter by subscription) or logs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.admin import apply_limits
from emulator.app import build_app
from emulator.faults import Fault, FaultKind, RequestLogEntry
from emulator.https import EmulatorServer
from emulator.state import EmulatorState, Workspace
from emulator.tls import CertificateAuthority

if TYPE_CHECKING:
    from azure.identity import ClientSecretCredential


def unique_name(prefix: str) -> str:
    """`prefix` plus a short random suffix, valid as an AML service or workspace name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Sandbox:
    """One test's own tenant, service principal, subscription and workspace."""

    emulator: EmulatorHandle
    tenant_id: str
    client_id: str
    client_secret: str
    subscription_id: str
    resource_group: str
    workspace: Workspace

    @property
    def workspace_name(self) -> str:
        return self.workspace.name

    @property
    def log_analytics_workspace_id(self) -> str | None:
        return self.workspace.log_analytics_workspace_id

    @property
    def app_insights_resource_id(self) -> str | None:
        return self.workspace.app_insights_resource_id

    def add_service(self, name: str | None = None, **options: Any) -> dict[str, Any]:
        """Create a web service in this workspace (see `ServiceCatalog.add` for options)."""
        return self.emulator.state.add_service(
            self.workspace, name or unique_name("svc"), **options
        )

    def service(self, name: str) -> dict[str, Any] | None:
        """The service document as the emulator currently holds it."""
        return self.emulator.state.services.get(self.workspace, name)

    def remove_service(self, name: str) -> bool:
        """Delete a web service out of band (it vanishes from listings)."""
        return self.emulator.state.services.remove(self.workspace, name)

    def set_service_property(self, name: str, path: str, value: Any) -> None:
        """Out-of-band change, as if someone flipped it in the portal."""
        self.emulator.state.set_service_property(self.workspace, name, path, value)

    def add_online_endpoint(
        self, name: str | None = None, *, compute_type: str = "Managed"
    ) -> dict[str, Any]:
        """Create an online endpoint (SDK v2) in this workspace: Managed or Kubernetes."""
        return self.emulator.state.online.add_endpoint(
            self.workspace,
            name or unique_name("oe"),
            compute_type=compute_type,  # type: ignore[arg-type]
        )

    def add_online_deployment(self, endpoint: str, name: str, **options: Any) -> dict[str, Any]:
        """Create a deployment of an online endpoint (see `OnlineCatalog.add_deployment`)."""
        return self.emulator.state.online.add_deployment(self.workspace, endpoint, name, **options)

    def online_deployment(self, endpoint: str, name: str) -> dict[str, Any] | None:
        """The deployment document as the emulator currently holds it."""
        return self.emulator.state.online.get_deployment(self.workspace, endpoint, name)

    def set_online_deployment_property(
        self, endpoint: str, name: str, key: str, value: Any
    ) -> None:
        """Out-of-band change of one deployment property (as in the portal)."""
        self.emulator.state.online.set_property(self.workspace, endpoint, name, key, value)

    def credential(self, **kwargs: Any) -> ClientSecretCredential:
        """An azure-identity ClientSecretCredential for this sandbox's service principal."""
        from azure.identity import ClientSecretCredential

        kwargs.setdefault("connection_verify", str(self.emulator.ca_path))
        return ClientSecretCredential(
            self.tenant_id,
            self.client_id,
            self.client_secret,
            authority=self.emulator.authority,
            disable_instance_discovery=True,
            **kwargs,
        )


class EmulatorHandle:
    """A running emulator: its URLs plus Python twins of the admin API."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.state: EmulatorState = server.state

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ca_path(self) -> Path:
        return self.server.ca_path

    @property
    def authority(self) -> str:
        """Entra authority host for azure-identity/msal (`authority=`)."""
        return self.server.url

    @property
    def arm_endpoint(self) -> str:
        """Resource Manager base URL (replaces https://management.azure.com)."""
        return self.server.url

    @property
    def logs_endpoint(self) -> str:
        """LogsQueryClient endpoint (replaces https://api.loganalytics.io/v1)."""
        return f"{self.server.url}/v1"

    def sandbox(
        self,
        *,
        prefix: str = "t",
        location: str = "westeurope",
        app_insights: bool = True,
        log_analytics: bool = True,
        page_size: int | None = None,
    ) -> Sandbox:
        """Create a fresh tenant, service principal (with secret), subscription and workspace."""
        state = self.state
        tenant = state.add_tenant(name=unique_name(prefix))
        secret = f"secret-{uuid.uuid4().hex}"
        sp = state.add_service_principal(tenant.id, secret=secret, display_name=unique_name("sp"))
        sub = state.add_subscription(tenant.id, display_name=unique_name("sub"))
        rg = unique_name("rg")
        ws = state.add_workspace(
            sub.id,
            rg,
            unique_name("ws"),
            location=location,
            app_insights=app_insights,
            log_analytics_workspace_id=log_analytics,
            page_size=page_size,
        )
        return Sandbox(self, tenant.id, sp.client_id, secret, sub.id, rg, ws)

    def add_fault(self, kind: FaultKind, route: str = "*", **options: Any) -> Fault:
        """Inject a fault (see `emulator.faults.Fault` for options)."""
        return self.state.faults.add(kind, route, **options)

    def clear_faults(self, fault_id: int | None = None) -> int:
        """Remove one or all faults, releasing requests held by hang faults."""
        return self.state.faults.clear(fault_id)

    def requests(
        self, route: str | None = None, *, since: int = 0, **filters: Any
    ) -> list[RequestLogEntry]:
        """Request-log entries (route may be a family prefix such as "mms.")."""
        return self.state.request_log.entries(route=route, since=since, **filters)

    def bookmark(self) -> int:
        """A request-log position; pass it as `since` to see only later requests."""
        return self.state.request_log.last_seq()

    def approve_device_code(self, user_code: str, username: str) -> None:
        """Sign a user in for a pending device code."""
        self.state.approve_device_code(user_code, username)

    def set_limits(self, **groups: dict[str, Any]) -> None:
        """Change knobs: arm_throttle={...}, mms={...}, entra={...} (see /_admin/limits)."""
        apply_limits(self.state, groups)

    def load_fleet(self, path: Path | str) -> Any:
        """Seed the state from a fleet file (see `emulator.fleet`)."""
        from emulator.fleet import load_fleet

        return load_fleet(self.state, path)


@contextmanager
def run_emulator(
    *,
    ca: CertificateAuthority | None = None,
    fleet: Path | str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    state: EmulatorState | None = None,
    tls_dir: Path | str | None = None,
) -> Iterator[EmulatorHandle]:
    """Start an emulator in a background thread for the duration of the block."""
    app = build_app(state or EmulatorState())
    server = EmulatorServer(app, host=host, port=port, ca=ca, tls_dir=tls_dir)
    server.start()
    handle = EmulatorHandle(server)
    try:
        if fleet is not None:
            handle.load_fleet(fleet)
        yield handle
    finally:
        server.stop()


@contextmanager
def trust_ca(ca_path: Path | str) -> Iterator[None]:
    """Point requests-based clients (requests, msal, azure-core, azureml-core) at the CA."""
    previous = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = str(ca_path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = previous
