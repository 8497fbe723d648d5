"""Log Analytics data export rules through azure-mgmt-loganalytics: the one adapter that imports it.

The client is built once per (credential, subscription) and imported lazily. Azure's answers map
to the service's error model: 429/5xx/transport -> AzureCallFailed (with Retry-After), 404 ->
NotFound, other 4xx -> AzureRejected with Azure's own message, credential failures through
``map_identity_error``.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import CredentialUnavailableError

from service.adapters.azureml_auth import ARM_SCOPE
from service.adapters.client_cache import ClientCache
from service.adapters.delegated import LoginRequiredError, TokenRefreshFailed
from service.adapters.identity_errors import map_identity_error
from service.adapters.tenant_credentials import sdk_credential
from service.adapters.trust import ca_location
from service.config import AzureSettings
from service.domain.retry import parse_retry_after
from service.errors import AzureCallFailed, AzureRejected, NotFound, ServiceError
from service.metrics import AZURE_CALLS, AZURE_LATENCY
from service.ports import ExportRuleSnapshot, LaWorkspaceRef, TokenCredential

log = logging.getLogger(__name__)
_WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/"
    r"Microsoft\.OperationalInsights/workspaces/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_CACHE_MAX = 256


def parse_workspace_id(resource_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a Log Analytics workspace resource id."""
    match = _WORKSPACE_ID.match(resource_id)
    if match is None:
        raise AzureRejected(f"not a Log Analytics workspace resource id: {resource_id}")
    return match["sub"], match["rg"], match["name"]


class AzureDataExports:
    """``DataExportControl`` with the real LogAnalyticsManagementClient."""

    def __init__(self, settings: AzureSettings, *, call_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._verify = ca_location(settings.ca_bundle)  # built here: Lazy builds adapters once
        self._timeout = call_timeout_s
        self._clients: ClientCache[Any] = ClientCache(max_size=_CACHE_MAX)

    def close(self) -> None:
        self._clients.close()

    def _client(self, credential: TokenCredential, subscription_id: str) -> Any:
        return self._clients.get(
            credential, subscription_id.lower(), lambda: self._build(credential, subscription_id)
        )

    def _build(self, credential: TokenCredential, subscription_id: str) -> Any:
        from azure.mgmt.loganalytics import LogAnalyticsManagementClient

        options: dict[str, Any] = {"retry_total": 0}  # our reconciler owns retries
        options["connection_verify"] = self._verify
        return LogAnalyticsManagementClient(
            sdk_credential(credential),
            subscription_id,
            base_url=self._settings.resource_manager,
            credential_scopes=[ARM_SCOPE],  # ARM's audience, wherever ARM is reached
            **options,
        )

    def _call(self, what: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            result = call()
        except ClientAuthenticationError as exc:
            AZURE_CALLS.labels("data_export", "credential_error").inc()
            raise map_identity_error(exc) from None
        except HttpResponseError as exc:
            AZURE_CALLS.labels("data_export", f"http_{exc.status_code}").inc()
            raise _azure_error(what, exc) from None
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            if isinstance(
                exc, LoginRequiredError | TokenRefreshFailed | CredentialUnavailableError
            ):
                AZURE_CALLS.labels("data_export", "credential_error").inc()
                raise map_identity_error(exc) from None
            AZURE_CALLS.labels("data_export", "transport_error").inc()
            raise AzureCallFailed(f"{what}: Azure unreachable ({type(exc).__name__})") from None
        finally:
            AZURE_LATENCY.labels("data_export").observe(time.perf_counter() - started)
        AZURE_CALLS.labels("data_export", "ok").inc()
        return result

    def find_workspace(
        self, credential: TokenCredential, subscription_id: str, customer_id: str
    ) -> LaWorkspaceRef | None:
        client = self._client(credential, subscription_id)
        workspaces = self._call(
            "listing Log Analytics workspaces",
            lambda: list(client.workspaces.list(timeout=self._timeout)),
        )
        for ws in workspaces:
            if (ws.customer_id or "").lower() == customer_id.lower():
                return LaWorkspaceRef(ws.id, (ws.location or "").lower(), ws.customer_id)
        return None

    def list_rules(
        self, credential: TokenCredential, workspace_resource_id: str
    ) -> list[ExportRuleSnapshot]:
        sub, rg, name = parse_workspace_id(workspace_resource_id)
        client = self._client(credential, sub)
        rules = self._call(
            "listing data export rules",
            lambda: list(client.data_exports.list_by_workspace(rg, name, timeout=self._timeout)),
        )
        return [_snapshot(r) for r in rules]

    def put_rule(
        self,
        credential: TokenCredential,
        workspace_resource_id: str,
        name: str,
        *,
        destination_resource_id: str,
        tables: tuple[str, ...],
        enabled: bool,
    ) -> ExportRuleSnapshot:
        from azure.mgmt.loganalytics.models import (
            DataExport,
            DataExportProperties,
            Destination,
        )

        sub, rg, workspace = parse_workspace_id(workspace_resource_id)
        client = self._client(credential, sub)
        body = DataExport(
            properties=DataExportProperties(
                table_names=list(tables),
                destination=Destination(resource_id=destination_resource_id),
                enable=enabled,
            )
        )
        rule = self._call(
            "writing a data export rule",
            lambda: client.data_exports.create_or_update(
                rg, workspace, name, body, timeout=self._timeout
            ),
        )
        return _snapshot(rule)

    def delete_rule(
        self, credential: TokenCredential, workspace_resource_id: str, name: str
    ) -> None:
        sub, rg, workspace = parse_workspace_id(workspace_resource_id)
        client = self._client(credential, sub)
        self._call(
            "deleting a data export rule",
            lambda: client.data_exports.delete(rg, workspace, name, timeout=self._timeout),
        )


def _snapshot(rule: Any) -> ExportRuleSnapshot:
    props = rule.properties
    destination = props.destination if props is not None else None
    return ExportRuleSnapshot(
        name=rule.name,
        destination_resource_id=(destination.resource_id if destination else None) or "",
        destination_type=destination.type if destination else None,
        tables=tuple(props.table_names or ()) if props is not None else (),
        enabled=bool(props.enable) if props is not None and props.enable is not None else True,
    )


def _azure_error(what: str, exc: HttpResponseError) -> ServiceError:
    status = exc.status_code or 0
    message = (exc.error.message if exc.error is not None else None) or exc.reason or ""
    detail = f"{what}: Azure answered {status}: {message}"[:1000]
    if status == 429 or status >= 500:
        headers = getattr(exc.response, "headers", None) or {}
        return AzureCallFailed(detail, retry_after_s=parse_retry_after(headers.get("Retry-After")))
    if status == 404:
        return NotFound(detail)
    return AzureRejected(detail)
