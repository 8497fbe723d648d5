"""Ports of the reconciler: the Azure ML control plane, in governed targets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.domain.targets import Capabilities
from service.ports.identity import TokenCredential


@dataclass(frozen=True)
class MlTarget:
    """One AML workspace, reached with one tenant's TokenCredential."""

    tenant_key: str  # our tenant id: part of the adapter's workspace cache key
    credential: TokenCredential
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
        send_by: float | None = None,
    ) -> str:
        """Start an update of the given settings; returns the Azure operation id.

        ``expected_version``: the snapshot's ``version`` the change was decided on; a target
        that changed since is not written (AzureCallFailed: decide again). ``send_by`` (epoch
        seconds): the end of the write's subscription write slot. The read the write needs
        first is then not retried in place; when it fails or ends after ``send_by``, nothing
        is written (``WriteNotSent``: wait out its Retry-After, take a new slot)."""
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
