"""The interfaces the use cases need from the outside world (implemented in ``adapters``).

Use cases depend on these Protocols only; the composition roots (``app.py``, the worker, the CLI)
choose the implementations, and unit tests may pass fakes. One module per capability; everything
is importable from ``service.ports`` too.
"""

from __future__ import annotations

from service.ports.coordination import (
    BudgetStore,
    CoordinationUnavailable,
    RevocationFeed,
    SharedResults,
)
from service.ports.identity import (
    AccessTokenInfo,
    AccessTokenLike,
    CertificateInfo,
    CredentialSpec,
    DeviceFlow,
    DevicePoll,
    IdentityProvider,
    SecretBox,
    TokenCacheStore,
    TokenCredential,
)
from service.ports.logs import (
    LogQuery,
    LogQueryResult,
    LogQuerySpec,
    LogTable,
    LogTarget,
    RawLogResponse,
)
from service.ports.ml import AzureOperationStatus, MlControlPlane, MlTarget, ServiceSnapshot
from service.ports.retention import DataExportControl, ExportRuleSnapshot, LaWorkspaceRef

__all__ = [
    "AccessTokenInfo",
    "AccessTokenLike",
    "AzureOperationStatus",
    "BudgetStore",
    "CertificateInfo",
    "CoordinationUnavailable",
    "CredentialSpec",
    "DataExportControl",
    "DeviceFlow",
    "DevicePoll",
    "ExportRuleSnapshot",
    "IdentityProvider",
    "LaWorkspaceRef",
    "LogQuery",
    "LogQueryResult",
    "LogQuerySpec",
    "LogTable",
    "LogTarget",
    "MlControlPlane",
    "MlTarget",
    "RawLogResponse",
    "RevocationFeed",
    "SecretBox",
    "ServiceSnapshot",
    "SharedResults",
    "TokenCacheStore",
    "TokenCredential",
]
