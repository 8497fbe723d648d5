"""Thread-safe in-memory model of the emulated Azure estate (the resource registry).

Everything the HTTP handlers serve lives in one `EmulatorState`: directory objects (tenants,
applications, users), ARM objects (subscriptions, workspaces), AML web services (held by
`emulator.mms_catalog.ServiceCatalog`), device codes, refresh tokens, faults, throttling and the
request log. It holds the instance's `emulator.tokens.TokenSigner` but signs nothing itself.
Tests mutate it directly through the `add_*` helpers; the admin API does the same over HTTP.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from emulator.faults import ArmThrottle, FaultInjector, RequestLog
from emulator.mms_catalog import ServiceCatalog
from emulator.online_catalog import OnlineCatalog
from emulator.tls import certificate_thumbprints
from emulator.tokens import TokenSigner


def new_guid() -> str:
    """A random GUID string, the shape of every Azure id."""
    return str(uuid.uuid4())


@dataclass
class Tenant:
    id: str
    name: str


@dataclass
class ServicePrincipal:
    """A confidential client: an app registration with secrets and/or certificates."""

    tenant_id: str
    client_id: str
    object_id: str
    display_name: str
    secrets: list[str] = field(default_factory=list)
    certificates: dict[str, bytes] = field(default_factory=dict)  # x5t or x5t#S256 -> PEM


@dataclass
class PublicClient:
    tenant_id: str
    client_id: str
    name: str


@dataclass
class User:
    tenant_id: str
    username: str
    object_id: str
    display_name: str


@dataclass
class Subscription:
    id: str
    tenant_id: str
    display_name: str


@dataclass
class Workspace:
    """An AML workspace with its linked telemetry destinations."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    workspace_id: str
    app_insights_resource_id: str | None
    log_analytics_workspace_id: str | None
    page_size: int | None = None  # overrides the MMS list page size for this workspace

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subscription_id.lower(), self.resource_group.lower(), self.name.lower())


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    tenant_id: str
    client_id: str
    scopes: list[str]
    expires_at: float
    user: User | None = None
    redeemed: bool = False


@dataclass
class RefreshToken:
    token: str
    tenant_id: str
    client_id: str
    user: User
    scopes: list[str]
    expires_at: float
    revoked: bool = False


@dataclass
class EntraSettings:
    access_token_lifetime_s: int = 3600
    refresh_token_lifetime_s: int = 90 * 86400
    device_code_lifetime_s: int = 900
    device_code_interval_s: int = 1
    # Entra keeps a redeemed refresh token valid; strict mode invalidates it to test write-back.
    strict_refresh_token_rotation: bool = False


class EmulatorState:
    """The whole emulated estate. Public methods take the lock; handlers call only these."""

    def __init__(self, *, seed: int = 0) -> None:
        self.lock = threading.RLock()
        self.base_url = "https://127.0.0.1"  # set by EmulatorServer.start()
        self.entra = EntraSettings()
        self.signer = TokenSigner()
        self.faults = FaultInjector(seed)
        self.request_log = RequestLog()
        self.throttle = ArmThrottle()
        self.services = ServiceCatalog(self.lock)
        self.online = OnlineCatalog(self.lock)
        self.tenants: dict[str, Tenant] = {}
        self.confidential_clients: dict[tuple[str, str], ServicePrincipal] = {}
        self.public_clients: dict[tuple[str, str], PublicClient] = {}
        self.users: dict[tuple[str, str], User] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.workspaces: dict[tuple[str, str, str], Workspace] = {}
        self.device_codes: dict[str, DeviceCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        # emulator.loganalytics.LogAnalyticsService, or None in a build without it.
        self.log_analytics: Any = _make_log_analytics()

    @property
    def telemetry(self) -> Any:
        """The Log Analytics TelemetryStore (None when the query API is not built in)."""
        return self.log_analytics.store if self.log_analytics is not None else None

    # --- directory -------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str | None = None, *, name: str = "") -> Tenant:
        """Create a tenant (random GUID unless given)."""
        tenant = Tenant(tenant_id or new_guid(), name or "tenant")
        with self.lock:
            self.tenants[tenant.id] = tenant
        return tenant

    def add_service_principal(
        self,
        tenant_id: str,
        client_id: str | None = None,
        *,
        secret: str | None = None,
        certificate_pem: bytes | str | None = None,
        display_name: str = "",
    ) -> ServicePrincipal:
        """Register a confidential client with a secret and/or a public certificate (PEM)."""
        self._require_tenant(tenant_id)
        sp = ServicePrincipal(tenant_id, client_id or new_guid(), new_guid(), display_name or "app")
        if secret:
            sp.secrets.append(secret)
        if certificate_pem:
            pem = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
            for thumbprint in certificate_thumbprints(pem):
                sp.certificates[thumbprint] = pem
        with self.lock:
            self.confidential_clients[(tenant_id, sp.client_id)] = sp
        return sp

    def add_public_client(
        self, tenant_id: str, client_id: str | None = None, *, name: str = ""
    ) -> PublicClient:
        """Register a public client (device-code application)."""
        self._require_tenant(tenant_id)
        app = PublicClient(tenant_id, client_id or new_guid(), name or "public-app")
        with self.lock:
            self.public_clients[(tenant_id, app.client_id)] = app
        return app

    def add_user(self, tenant_id: str, username: str, *, display_name: str = "") -> User:
        """Create a user who can approve device codes."""
        self._require_tenant(tenant_id)
        user = User(tenant_id, username, new_guid(), display_name or username.split("@")[0])
        with self.lock:
            self.users[(tenant_id, username.lower())] = user
        return user

    def find_user(self, tenant_id: str, username: str) -> User | None:
        with self.lock:
            return self.users.get((tenant_id, username.lower()))

    # --- ARM -------------------------------------------------------------------------------

    def add_subscription(
        self, tenant_id: str, subscription_id: str | None = None, *, display_name: str = ""
    ) -> Subscription:
        """Create a subscription owned by `tenant_id`."""
        self._require_tenant(tenant_id)
        sub = Subscription(subscription_id or new_guid(), tenant_id, display_name or "subscription")
        with self.lock:
            self.subscriptions[sub.id.lower()] = sub
        return sub

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        with self.lock:
            return self.subscriptions.get(subscription_id.lower())

    def add_workspace(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str = "westeurope",
        workspace_id: str | None = None,
        app_insights: bool | str = True,
        log_analytics_workspace_id: str | bool | None = True,
        page_size: int | None = None,
    ) -> Workspace:
        """Create an AML workspace.

        `app_insights`: True links a generated App Insights component id, a string links that
        resource id, False links none. `log_analytics_workspace_id`: True generates a GUID.
        """
        if self.get_subscription(subscription_id) is None:
            raise KeyError(f"unknown subscription {subscription_id}")
        if app_insights is True:
            app_insights = (
                f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
                f"/providers/Microsoft.Insights/components/{name}-ai"
            )
        la_id = (
            new_guid() if log_analytics_workspace_id is True else log_analytics_workspace_id or None
        )
        ws = Workspace(
            subscription_id,
            resource_group,
            name,
            location,
            workspace_id or new_guid(),
            app_insights or None,
            la_id,
            page_size,
        )
        with self.lock:
            self.workspaces[ws.key] = ws
        store = self.telemetry
        if store is not None:
            # Linked destinations exist (empty) from the start, as in Azure; fleets add tables.
            if ws.log_analytics_workspace_id:
                store.add_workspace(ws.log_analytics_workspace_id, {})
            if ws.app_insights_resource_id:
                store.add_resource(ws.app_insights_resource_id, {})
        return ws

    def get_workspace(
        self, subscription_id: str, resource_group: str, name: str
    ) -> Workspace | None:
        with self.lock:
            return self.workspaces.get(
                (subscription_id.lower(), resource_group.lower(), name.lower())
            )

    def tenant_of_subscription(self, subscription_id: str) -> str | None:
        sub = self.get_subscription(subscription_id)
        return sub.tenant_id if sub else None

    def tenant_of_log_analytics_workspace(self, la_workspace_id: str) -> str | None:
        """Tenant owning a Log Analytics workspace GUID, if one of our workspaces links it."""
        with self.lock:
            for ws in self.workspaces.values():
                if (
                    ws.log_analytics_workspace_id
                    and ws.log_analytics_workspace_id.lower() == la_workspace_id.lower()
                ):
                    return self.tenant_of_subscription(ws.subscription_id)
        return None

    # --- AML web services (delegated to the catalog) ----------------------------------------

    def add_service(self, workspace: Workspace, name: str, **options: Any) -> dict[str, Any]:
        """Create a web service; options as `ServiceCatalog.add` (compute_type, state, ...)."""
        return self.services.add(workspace, name, **options)

    def set_service_property(self, workspace: Workspace, name: str, path: str, value: Any) -> None:
        """Out-of-band change (the portal flipping a flag): JSON-pointer replace, applied now."""
        self.services.set_property(workspace, name, path, value)

    # --- device codes and refresh tokens ----------------------------------------------------

    def approve_device_code(self, user_code: str, username: str) -> None:
        """Sign `username` in for the pending device code `user_code` (what a browser would do)."""
        with self.lock:
            code = next(
                (c for c in self.device_codes.values() if c.user_code == user_code.upper()), None
            )
            if code is None or code.expires_at < time.time():
                raise KeyError(f"no pending device code {user_code!r}")
            user = self.find_user(code.tenant_id, username)
            if user is None:
                raise KeyError(f"no user {username!r} in tenant {code.tenant_id}")
            code.user = user

    def pending_device_codes(self) -> list[DeviceCode]:
        """Device codes nobody approved yet (for the demo page and tests)."""
        now = time.time()
        with self.lock:
            return [c for c in self.device_codes.values() if c.user is None and c.expires_at > now]

    def issue_refresh_token(
        self, tenant_id: str, client_id: str, user: User, scopes: list[str]
    ) -> str:
        token = "0.AR" + secrets.token_urlsafe(48)
        record = RefreshToken(
            token,
            tenant_id,
            client_id,
            user,
            scopes,
            time.time() + self.entra.refresh_token_lifetime_s,
        )
        with self.lock:
            self.refresh_tokens[token] = record
        return token

    def revoke_refresh_tokens(
        self,
        *,
        tenant_id: str | None = None,
        username: str | None = None,
        client_id: str | None = None,
    ) -> int:
        """Revoke matching refresh tokens (all when no filter); returns how many."""
        count = 0
        with self.lock:
            for record in self.refresh_tokens.values():
                if tenant_id and record.tenant_id != tenant_id:
                    continue
                if username and record.user.username.lower() != username.lower():
                    continue
                if client_id and record.client_id != client_id:
                    continue
                if not record.revoked:
                    record.revoked = True
                    count += 1
        return count

    def _require_tenant(self, tenant_id: str) -> None:
        with self.lock:
            if tenant_id not in self.tenants:
                raise KeyError(f"unknown tenant {tenant_id}")


def _make_log_analytics() -> Any:
    """The Log Analytics service when `emulator.loganalytics` exists (it is built separately)."""
    import importlib.util

    if importlib.util.find_spec("emulator.loganalytics") is None:
        return None
    from emulator import loganalytics

    return loganalytics.LogAnalyticsService(loganalytics.TelemetryStore())
