"""The interfaces the use cases need from the outside world (implemented in ``adapters``).

Use cases depend on these Protocols only; the composition roots (``app.py``, the worker, the CLI)
choose the implementations, and unit tests may pass fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from service.domain.budget import Decision, Limits
from service.domain.kql import Timespan
from service.domain.targets import Capabilities


class SecretBox(Protocol):
    """Authenticated encryption for secrets at rest, with key rotation."""

    @property
    def configured(self) -> bool:
        """False when no key is set: nothing can be encrypted or decrypted."""
        ...

    def encrypt(self, plaintext: bytes) -> str: ...

    def decrypt(self, token: str) -> bytes: ...

    def rotate(self, token: str) -> str:
        """Re-encrypt with the newest key (decrypting with whichever key works)."""
        ...


@dataclass(frozen=True)
class CertificateInfo:
    thumbprint_sha1: str
    subject: str
    not_after: datetime


class TokenCacheStore(Protocol):
    """Where a delegated credential's msal token cache lives (encrypted, in the database).

    Several processes may share the cache, and Entra may rotate the refresh token on each use:
    one process at a time refreshes, holding a lease (not a row lock) while it calls Entra,
    and stores its result only if nobody stored a newer cache meanwhile (compare-and-swap on
    the version), so a rotated refresh token is never overwritten by an older copy.
    """

    def load(self) -> tuple[str | None, int]:
        """The current serialized cache and its version."""
        ...

    def claim_refresh(self, version: int, lease_s: float) -> bool:
        """Take the refresh lease if the cache is still at ``version`` and nobody holds it."""
        ...

    def store(self, version: int, serialized: str | None) -> int | None:
        """Store a refreshed cache if it is still at ``version``; release the lease.

        Returns the new version, or None when the cache moved on (nothing was written).
        """
        ...

    def release(self, version: int) -> None:
        """Give the lease back without a change (the refresh failed or changed nothing)."""
        ...


@dataclass(frozen=True)
class CredentialSpec:
    """Everything needed to build a tenant's TokenCredential (secrets already decrypted)."""

    tenant_key: str  # our tenant id: the registry's cache key
    fingerprint: str  # changes whenever the stored credential changes
    entra_tenant_id: str
    kind: str  # service_principal | delegated | host_identity
    client_id: str | None
    client_secret: str | None = None
    certificate_pem: bytes | None = None
    cache_store: TokenCacheStore | None = None


@dataclass(frozen=True)
class AccessTokenInfo:
    """What verification reports: who the token says we are, and until when."""

    expires_on: datetime
    identity: dict[str, str]


@dataclass(frozen=True)
class DeviceFlow:
    """A started device-code sign-in. ``state`` is opaque and secret (holds the device code)."""

    user_code: str
    verification_uri: str
    message: str
    expires_at: datetime
    interval_s: int
    state: dict[str, Any]


@dataclass(frozen=True)
class DevicePoll:
    """One poll's outcome: ``pending``, ``succeeded`` (with cache + username), ``expired``,
    or ``failed`` (with error)."""

    status: str
    cache: str | None = None
    username: str | None = None
    error: str | None = None


class IdentityProvider(Protocol):
    """Azure identity: one credential per tenant, device-code sign-ins, verification."""

    def credential(self, spec: CredentialSpec) -> Any:
        """The tenant's azure-core TokenCredential, built once and reused while unchanged."""
        ...

    def forget(self, tenant_key: str) -> None:
        """Drop the cached credential of a tenant (its credential was deleted)."""
        ...

    def verify(self, spec: CredentialSpec) -> AccessTokenInfo:
        """Acquire an ARM token now. Raises CredentialError subclasses (service.errors)."""
        ...

    def subscription_tenant(self, spec: CredentialSpec, subscription_id: str) -> str | None:
        """The Entra tenant id Resource Manager gives for the subscription, among those the
        tenant's credential can list; None when the credential cannot reach it."""
        ...

    def start_device_flow(self, entra_tenant_id: str, client_id: str) -> DeviceFlow: ...

    def poll_device_flow(
        self, entra_tenant_id: str, client_id: str, state: dict[str, Any]
    ) -> DevicePoll:
        """Poll once, without blocking for the whole flow."""
        ...

    def inspect_certificate(self, pem: bytes) -> CertificateInfo:
        """Parse a PEM holding a certificate and its private key; raise ValueError if unusable."""
        ...


# -- log queries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogTarget:
    """What a query runs against: a Log Analytics workspace (App* tables) or an App Insights
    resource (classic tables)."""

    kind: str  # "workspace" (id = workspace GUID) | "resource" (id = ARM resource id)
    id: str


@dataclass(frozen=True)
class LogQuerySpec:
    """One query as the adapter sends it (no timespan: the query's own filters decide)."""

    query: str
    timespan: Timespan | None
    server_timeout_s: int
    include_statistics: bool = False


@dataclass(frozen=True)
class LogTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, Kusto type)
    rows: list[list[Any]]  # JSON values; dynamic columns parsed, datetimes as RFC 3339 text


@dataclass(frozen=True)
class LogQueryResult:
    """A complete or partial result. ``error`` is Azure's full error object of a partial one."""

    tables: tuple[LogTable, ...]
    error: dict[str, Any] | None
    statistics: dict[str, Any] | None
    response_bytes: int

    @property
    def partial(self) -> bool:
        return self.error is not None

    @property
    def row_count(self) -> int:
        return sum(len(t.rows) for t in self.tables)


@dataclass
class RawLogResponse:
    """An Azure answer passed through unparsed: status, safe headers and a body stream."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None]


class LogQuery(Protocol):
    """The Log Analytics query API, called with a tenant's TokenCredential.

    Failures raise ServiceErrors; Azure's own error answers raise ``AzureQueryError``
    (``service.errors``) carrying Azure's status, error object and Retry-After, so that the
    use case decides about retries.
    """

    def query(self, credential: Any, target: LogTarget, spec: LogQuerySpec) -> LogQueryResult:
        """Run one query with the typed SDK and return its tables (or a partial result)."""
        ...

    def forward(
        self, credential: Any, path: str, body: bytes, prefer: str | None
    ) -> RawLogResponse:
        """POST ``body`` to ``{endpoint}{path}`` and stream Azure's answer back unparsed."""
        ...


@dataclass(frozen=True)
class MlTarget:
    """One AML workspace, reached with one tenant's TokenCredential."""

    tenant_key: str  # our tenant id: part of the adapter's workspace cache key
    credential: Any
    subscription_id: str
    resource_group: str
    workspace_name: str


@dataclass(frozen=True)
class ServiceSnapshot:
    """A governed target as Azure reports it: a v1 web service or a v2 online deployment
    (``name`` = ``{endpoint}.{deployment}``, see ``service.domain.targets``)."""

    name: str
    compute_type: str
    state: str | None
    app_insights_enabled: bool | None
    data_collection_enabled: bool | None
    scoring_uri: str | None
    updated_at: datetime | None
    kind: str | None = None  # a TargetKind; None: derived from compute_type (v1)
    online_endpoint: str | None = None
    deployment: str | None = None
    busy: bool | None = None  # mid-operation in Azure; None: derived from ``state`` (v1)
    # Opaque fingerprint of what a decision was made on: start_update refuses to write when the
    # target changed since (the lost-update guard where Azure offers no ETag). None for v1.
    version: str | None = None

    @property
    def target_kind(self) -> str:
        from service.domain.targets import kind_for

        return self.kind or kind_for(self.compute_type).value

    @property
    def in_progress(self) -> bool:
        return self.busy if self.busy is not None else self.state == "Transitioning"


@dataclass(frozen=True)
class AzureOperationStatus:
    """An Azure async operation: ``running``, ``succeeded`` or ``failed`` (with ``error``)."""

    state: str
    error: str | None = None


class MlControlPlane(Protocol):
    """The AML control plane, speaking in governed targets of several kinds (v1 web services
    through azureml-core, v2 online deployments through azure-ai-ml). Every method raises
    ServiceError subclasses only: AzureCallFailed (temporary, with the server's Retry-After),
    AzureRejected (permanent), NotFound, or a credential error (LoginRequired,
    CredentialRejected)."""

    def capabilities(self, kind: str) -> Capabilities:
        """What a kind of target supports: monitoring fields, whether a change rolls its
        instances, how its operation is followed."""
        ...

    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        """Every target of the workspace (all pages): web services and online deployments."""
        ...

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        """One target, or None when it does not exist."""
        ...

    def start_update(
        self,
        target: MlTarget,
        name: str,
        *,
        app_insights: bool | None = None,
        model_data_collection: bool | None = None,
        expected_version: str | None = None,
    ) -> str:
        """Start an update of the given settings; returns the Azure operation id.

        ``expected_version``: the snapshot's ``version`` the change was decided on; a target
        that changed since is not written (AzureCallFailed: decide again)."""
        ...

    def operation_status(
        self, target: MlTarget, name: str, operation_id: str
    ) -> AzureOperationStatus:
        """Poll an update started by :meth:`start_update` once (never sleeps)."""
        ...

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        """The last ``tail`` lines of the service's container logs."""
        ...

    def telemetry_roles(self, target: MlTarget, online_endpoint: str) -> dict[str, str | None]:
        """Every deployment of an online endpoint -> the SERVICE_NAME its environment variables
        set (None when unset): the role name its records carry (``telemetry_views``)."""
        ...


# -- coordination between the processes and replicas of a deployment --------------------------
class CoordinationUnavailable(Exception):
    """The shared store (Redis) did not answer in time; callers degrade instead of failing."""


class BudgetStore(Protocol):
    """Where the identities' query budgets live (see ``service.domain.budget``): each method is
    one atomic step on one identity's state, shared by every process that uses the same store.
    Raises :class:`CoordinationUnavailable` when the store cannot be reached."""

    name: str  # "memory" (this process), "host" (a file for one host's workers) or "redis"
    shared: bool  # True: a remote store that may be unreachable (the caller then degrades)

    def acquire(self, identity: str, token: str, caller: str, limits: Limits) -> Decision: ...

    def release(self, identity: str, token: str, sends: int, limits: Limits) -> None: ...

    def charge(self, identity: str, token: str, sends: int, limits: Limits) -> Decision: ...

    def renew(self, identity: str, token: str, sends: int, limits: Limits) -> None: ...

    def cancel(self, identity: str, token: str) -> None: ...

    def in_flight(self, identity: str) -> int: ...

    def ping(self) -> None:
        """Raise :class:`CoordinationUnavailable` unless the store answers now."""
        ...


class RevocationFeed(Protocol):
    """A counter every process can read: bumped whenever an API key is revoked or deleted."""

    def stamp(self) -> int: ...

    def bump(self) -> None: ...


class SharedResults(Protocol):
    """Query results shared between replicas: a short cache and in-flight leadership."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def lead(self, key: str, token: str, ttl_s: float) -> str | None:
        """Become the one running ``key`` (None), or learn the token of the one who is."""
        ...

    def leader(self, key: str) -> str | None:
        """The token of the one running ``key`` now, if any."""
        ...

    def renew_lead(self, key: str, token: str, ttl_s: float) -> None: ...

    def unlead(self, key: str, token: str) -> None: ...

    def follow(self, key: str, leader: str) -> None:
        """Tell the leader someone waits for its answer (else it does not publish one)."""
        ...

    def followers(self, key: str, token: str) -> int: ...


# -- retention: Log Analytics data export rules ------------------------------------------------
@dataclass(frozen=True)
class LaWorkspaceRef:
    """A Log Analytics workspace as ARM knows it."""

    resource_id: str
    location: str
    customer_id: str


@dataclass(frozen=True)
class ExportRuleSnapshot:
    """A data export rule as Azure returned it."""

    name: str
    destination_resource_id: str
    destination_type: str | None
    tables: tuple[str, ...]
    enabled: bool


class DataExportControl(Protocol):
    """Log Analytics workspaces and their data export rules through ARM.

    Failures raise the service's error model: AzureCallFailed (temporary), AzureRejected (Azure
    refused), NotFound, or a credential error.
    """

    def find_workspace(
        self, credential: Any, subscription_id: str, customer_id: str
    ) -> LaWorkspaceRef | None:
        """The Log Analytics workspace of the subscription whose customer id (GUID) matches."""
        ...

    def list_rules(
        self, credential: Any, workspace_resource_id: str
    ) -> list[ExportRuleSnapshot]: ...

    def put_rule(
        self,
        credential: Any,
        workspace_resource_id: str,
        name: str,
        *,
        destination_resource_id: str,
        tables: tuple[str, ...],
        enabled: bool,
    ) -> ExportRuleSnapshot: ...

    def delete_rule(self, credential: Any, workspace_resource_id: str, name: str) -> None: ...
