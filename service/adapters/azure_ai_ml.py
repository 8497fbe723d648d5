"""AML online endpoints and deployments (SDK v2) through azure-ai-ml: the one adapter that
imports it (lazily: the package takes seconds to import).

- Reads: ``MLClient.online_endpoints.list`` and ``online_deployments.get_logs``; the raw
  deployment documents (every property, to write them back unchanged) through the SDK's own ARM
  client, at the api-version ``MLClient`` uses for online deployments (read from the package).
- A monitoring change is a read-modify-write PUT of the whole deployment (PATCH takes only tags
  and sku). The resource offers no optimistic concurrency (mfe.json 2023-04-01-preview: no
  ``etag``, no ``If-Match``), so the lost-update guard is ours: the caller passes the
  fingerprint of the deployment its decision was made on; the deployment is read again right
  before the PUT and the write refused (temporary error: decide again) when it changed; that
  fresh document is written back with only ``appInsightsEnabled`` and the model collections
  changed (reusing the decision read would widen the lost-update window: not done).
- The PUT starts an operation (``Azure-AsyncOperation`` -> ``mfeOperationsStatus``) that is not
  polled here: ``operation_status`` polls once per call, so the reconciler owns pace, deadline
  and crash resumption. The SDK's retries are off and every call has timeouts.
- The read-modify-write runs in its own thread under one deadline (``azure_calls``): past it the
  PUT is *maybe applied* (``WriteOutcomeUnknown``).

"Model data collection enabled": the data collector has both ``model_inputs`` and
``model_outputs`` collections with ``dataCollectionMode: Enabled``; enabling adds or switches on
those two, disabling switches them off, every other collection and setting is kept.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from service.adapters.azure_ai_ml_support import (
    CLOUD_ENV,
    ENV_LOCK,
    close_clients,
    deployment_api_version,
    map_ai_ml_error,
    register_cloud,
)
from service.adapters.azure_calls import (
    LIST_RETRY_WAIT_S,
    Call,
    GuardedWrites,
    gather,
    read_before_write,
    retry_read,
)
from service.adapters.client_cache import ClientCache
from service.adapters.online_documents import (
    deployment_key,
    fingerprint,
    snapshot,
    split,
    with_data_collection,
)
from service.adapters.tenant_credentials import sdk_credential
from service.adapters.trust import ca_location
from service.config import AzureSettings
from service.domain.telemetry_views import ROLE_VARIABLE
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    NotFound,
)
from service.metrics import AZURE_CALLS, AZURE_LATENCY
from service.ports import AzureOperationStatus, MlTarget, ServiceSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["AzureOnlineDeployments", "deployment_api_version"]

WRITE_ANSWER_TIMEOUT_S = 600.0  # how long an unanswered PUT's thread waits for the answer
ARM_BLOCK_BYTES = 64 * 1024  # an ARM answer (a JSON document) is read this much at a time
_FINAL = {"Succeeded": "succeeded", "Failed": "failed", "Canceled": "failed", "Cancelled": "failed"}


class AzureOnlineDeployments:
    """Online deployments as governed targets (names ``{endpoint}.{deployment}``)."""

    def __init__(self, settings: AzureSettings, *, call_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._verify = ca_location(settings.ca_bundle)  # built here: Lazy builds adapters once
        self._timeout = call_timeout_s
        # (MLClient, ARM client, credential) per (tenant, credential, workspace).
        self._clients: ClientCache[tuple[Any, Any, Any]] = ClientCache(close=close_clients)
        self._writes = GuardedWrites("azure_ai_ml", call_timeout_s)
        self._arm = settings.resource_manager.rstrip("/")

    # -- reads -----------------------------------------------------------------------------
    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        """Every deployment of every online endpoint: ARM lists deployments per endpoint, so
        those lists run LISTS_AT_ONCE at a time (``gather``), not one round trip after another."""

        def deployments(endpoint: dict[str, Any]) -> list[ServiceSnapshot]:
            name = str(endpoint.get("name"))
            uri = (endpoint.get("properties") or {}).get("scoringUri")
            path = f"onlineEndpoints/{quote(name)}/deployments"
            docs = self._list(target, "list online deployments", path)
            return [snapshot(name, d, uri) for d in docs]

        endpoints = self._list(target, "list online endpoints", "onlineEndpoints")
        listed = gather("azure-ai-ml-list", [functools.partial(deployments, e) for e in endpoints])
        return [s for deployments_of_one in listed for s in deployments_of_one]

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        endpoint, deployment = split(name)
        doc = self._get(target, endpoint, deployment)
        if doc is None:
            return None
        return snapshot(endpoint, doc, None)

    def telemetry_roles(self, target: MlTarget, online_endpoint: str) -> dict[str, str | None]:
        path = f"onlineEndpoints/{quote(online_endpoint)}/deployments"
        docs = self._list(target, "list online deployments", path)
        env = [(d.get("properties") or {}).get("environmentVariables") or {} for d in docs]
        return {str(d.get("name")): e.get(ROLE_VARIABLE) for d, e in zip(docs, env, strict=True)}

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        endpoint, deployment = split(name)
        ml, _, _ = self._clients_for(target)
        text = self._call(
            "read deployment logs",
            lambda: ml.online_deployments.get_logs(
                deployment, endpoint, tail, container_type="inference-server"
            ),
        )
        return str(text or "")

    # -- writes ----------------------------------------------------------------------------
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
        """GET, change the two fields, PUT; returns ``{location}/{operation name}``.

        The whole read-modify-write runs under one deadline (``call_timeout_s``: the reconciler
        renewed its lease for that long right before calling). Past it the PUT may still reach
        Azure: ``WriteOutcomeUnknown``, whose ``settle()`` waits for the call to end; until then
        this process refuses another write to the same deployment."""
        endpoint, deployment = split(name)

        def result(call: Call) -> str:
            if call.error is not None:
                raise map_ai_ml_error(call.error, "update online deployment") from call.error
            return str(call.value)

        return self._writes.write(
            deployment_key(target, name),
            f"update of deployment '{name}'",
            lambda: self._write(
                target,
                name,
                endpoint,
                deployment,
                app_insights=app_insights,
                model_data_collection=model_data_collection,
                expected_version=expected_version,
                send_by=send_by,
            ),
            result,
        )

    def _write(
        self,
        target: MlTarget,
        name: str,
        endpoint: str,
        deployment: str,
        *,
        app_insights: bool | None,
        model_data_collection: bool | None,
        expected_version: str | None,
        send_by: float | None,
    ) -> str:
        _, arm, _ = self._clients_for(target)
        # The guard's fresh read (paced: not retried here, see read_before_write).
        doc = read_before_write(
            lambda: self._get(target, endpoint, deployment),
            send_by,
            f"update of deployment '{name}'",
        )
        if doc is None:
            raise NotFound(f"deployment '{name}' not found in workspace '{target.workspace_name}'")
        if expected_version is not None and fingerprint(doc) != expected_version:
            raise AzureCallFailed(
                f"deployment '{name}' changed in Azure since it was read: deciding again",
                retry_after_s=1,
            )
        props = dict(doc.get("properties") or {})
        if app_insights is not None:
            props["appInsightsEnabled"] = app_insights
        if model_data_collection is not None:
            props["dataCollector"] = with_data_collection(
                props.get("dataCollector"), model_data_collection
            )
        props.pop("provisioningState", None)
        body = {k: v for k, v in doc.items() if k not in ("id", "name", "type", "systemData")}
        body["properties"] = props
        headers: dict[str, str] = {}

        def keep_headers(response: Any) -> None:
            http = response.http_response
            if http.status_code in (200, 201):
                headers.update({k: v for k, v in http.headers.items()})

        self._call(
            "update online deployment",
            lambda: arm.online_deployments.begin_create_or_update(
                target.resource_group,
                target.workspace_name,
                endpoint,
                deployment,
                body,
                polling=False,
                raw_response_hook=keep_headers,
                # Not the client's short read timeout: giving up on the answer would end the
                # call while Azure may still apply the PUT. The caller's deadline is
                # ``call_timeout_s`` (then ``WriteOutcomeUnknown``); this thread waits for the
                # real answer, which tells what the PUT started.
                read_timeout=WRITE_ANSWER_TIMEOUT_S,
            ),
        )
        url = next((v for k, v in headers.items() if k.lower() == "azure-asyncoperation"), None)
        if not url:
            raise AzureRejected("Azure accepted the deployment update without an operation")
        path = url.split("?", 1)[0].rstrip("/")
        parts = path.split("/")
        try:
            location = parts[parts.index("locations") + 1]
        except (ValueError, IndexError) as exc:
            raise AzureRejected("Azure answered an operation URL of an unknown shape") from exc
        return f"{location}/{parts[-1]}"

    def operation_status(
        self, target: MlTarget, name: str, operation_id: str
    ) -> AzureOperationStatus:
        from azure.core.rest import HttpRequest

        location, _, op_name = operation_id.partition("/")
        if not op_name:
            raise NotFound(f"unknown operation id {operation_id!r}")
        _, arm, _ = self._clients_for(target)
        url = (
            f"{self._settings.resource_manager.rstrip('/')}/subscriptions/{target.subscription_id}"
            f"/providers/Microsoft.MachineLearningServices/locations/{quote(location)}"
            f"/mfeOperationsStatus/{quote(op_name, safe=':')}"
            f"?api-version={deployment_api_version()}"
        )

        def poll() -> dict[str, Any]:
            response = arm.send_request(HttpRequest("GET", url))
            response.raise_for_status()
            return dict(response.json())

        try:
            body = self._call("poll deployment operation", poll)
        except AzureRejected as exc:
            if "HTTP 404" in exc.detail:
                raise NotFound(f"Azure does not know operation {op_name}") from exc
            raise
        final = _FINAL.get(str(body.get("status")))
        if final is None:
            return AzureOperationStatus("running")
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        message = error.get("message") if error else None
        return AzureOperationStatus(
            final, None if final == "succeeded" else (message or body["status"])
        )

    # -- helpers ---------------------------------------------------------------------------
    def _url(self, target: MlTarget, path: str) -> str:
        return (
            f"{self._arm}/subscriptions/{target.subscription_id}/resourceGroups/"
            f"{quote(target.resource_group)}/providers/Microsoft.MachineLearningServices/"
            f"workspaces/{quote(target.workspace_name)}/{path}"
            f"?api-version={deployment_api_version()}"
        )

    def _json(self, target: MlTarget, url: str) -> dict[str, Any] | None:
        """One GET through the SDK's ARM client pipeline (auth, timeouts), its JSON as sent:
        deserialising into the SDK's models and back was most of a target's CPU. None: 404."""
        from azure.core.rest import HttpRequest

        _, arm, _ = self._clients_for(target)
        response = arm.send_request(HttpRequest("GET", url))
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json())

    def _get(self, target: MlTarget, endpoint: str, deployment: str) -> dict[str, Any] | None:
        url = self._url(
            target, f"onlineEndpoints/{quote(endpoint)}/deployments/{quote(deployment)}"
        )
        return self._call("read online deployment", lambda: self._json(target, url))

    def _list(self, target: MlTarget, what: str, path: str) -> list[dict[str, Any]]:
        """Every page of an ARM list (``value`` + ``nextLink``)."""
        items: list[dict[str, Any]] = []
        url: str | None = self._url(target, path)
        while url:
            page = retry_read(
                lambda u=url: self._call(what, lambda: self._json(target, u)),  # type: ignore[misc]
                unhinted_wait_s=LIST_RETRY_WAIT_S,
            )
            if page is None:
                raise AzureRejected(f"Azure ML: {what}: not found")
            items += [dict(v) for v in page.get("value") or []]
            url = page.get("nextLink")
        return items

    def _clients_for(self, target: MlTarget) -> tuple[Any, Any, Any]:
        key = (
            target.tenant_key,
            target.subscription_id.lower(),
            target.resource_group.lower(),
            target.workspace_name.lower(),
        )
        return self._clients.get(target.credential, key, lambda: self._build(target))

    def close(self) -> None:
        self._clients.close()

    def _build(self, target: MlTarget) -> tuple[Any, Any, Any]:
        from azure.ai.ml import MLClient
        from azure.ai.ml._restclient.arm_ml_service import MachineLearningServicesMgmtClient

        from service.adapters.http_transport import Urllib3Transport, environ_proxy

        arm_url = self._settings.resource_manager.rstrip("/")
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
            "enable_telemetry": False,
            "show_progress": False,
        }
        options["connection_verify"] = self._verify
        if arm_url != "https://management.azure.com":
            options["cloud"] = register_cloud(arm_url, self._settings.authority_host)
        with ENV_LOCK:
            # MLClient records its cloud in the process environment (AZUREML_CURRENT_CLOUD),
            # which azureml-core and child processes would then read: put it back.
            before = os.environ.get(CLOUD_ENV)
            try:
                ml = MLClient(
                    sdk_credential(target.credential),
                    target.subscription_id,
                    target.resource_group,
                    target.workspace_name,
                    **options,
                )
            finally:
                if before is None:
                    os.environ.pop(CLOUD_ENV, None)
                else:
                    os.environ[CLOUD_ENV] = before
        # The connection settings are the transport's: every v2 call goes through this client
        # (documents, writes, operation polls), on urllib3 without requests' per-request layer
        # (``http_transport``; issue 16, P3).
        transport_options = ("connection_verify", "connection_timeout", "read_timeout")
        client_options = {
            k: v
            for k, v in options.items()
            if k not in ("cloud", "enable_telemetry", "show_progress", *transport_options)
        }
        transport = Urllib3Transport(
            verify=self._verify,
            connection_timeout=self._timeout,
            read_timeout=self._timeout,
            block_size=ARM_BLOCK_BYTES,
            proxy=environ_proxy(arm_url),
        )
        arm = MachineLearningServicesMgmtClient(
            credential=sdk_credential(target.credential),
            subscription_id=target.subscription_id,
            base_url=arm_url,
            api_version=deployment_api_version(),
            credential_scopes=["https://management.azure.com/.default"],
            transport=transport,
            **client_options,
        )
        return ml, arm, target.credential

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        started = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:
            mapped = map_ai_ml_error(exc, what)
            AZURE_CALLS.labels("azure_ai_ml", mapped.code).inc()
            raise mapped from exc
        finally:
            AZURE_LATENCY.labels("azure_ai_ml").observe(time.perf_counter() - started)
        AZURE_CALLS.labels("azure_ai_ml", "ok").inc()
        return value
