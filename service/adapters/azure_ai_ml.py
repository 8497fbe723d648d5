"""AML online endpoints and deployments (SDK v2) through azure-ai-ml: the one adapter that
imports it (lazily: the package takes seconds to import).

What the SDK offers and what this adapter owns:
- reads use ``MLClient.online_endpoints.list`` and ``online_deployments.get_logs``; the raw
  deployment documents (every property, to write them back unchanged) come from the SDK's own
  ARM client for the api-version ``MLClient`` uses for online deployments
  (``ServiceClient042023Preview``: read from the installed package, 2023-04-01-preview in 1.35);
- a monitoring change is a read-modify-write PUT of the whole deployment (PATCH takes only tags
  and sku). The resource offers no optimistic concurrency: mfe.json 2023-04-01-preview gives
  ``OnlineDeploymentTrackedResource`` no ``etag`` and the PUT no ``If-Match`` parameter (the
  workspace GET in Azure's recording answers ``"etag": null``). So the lost-update guard is ours:
  the caller passes the fingerprint of the deployment its decision was made on; the adapter reads
  the deployment again right before the PUT, refuses (temporary error: the reconciler decides
  again) when it changed, and writes back that fresh document with only ``appInsightsEnabled`` and
  the ``model_inputs``/``model_outputs`` collections changed;
- the PUT starts an operation (``Azure-AsyncOperation`` -> ``mfeOperationsStatus``); it is not
  polled here (``polling=False``): ``operation_status`` polls it once per call, so the reconciler
  owns the pace, deadline and crash resumption (the operation id is stored before polling);
- the SDK's own retries are off (``retry_total=0``) and every call has connect/read timeouts:
  the reconciler's retry policy decides, honouring Retry-After;
- the read-modify-write runs in its own thread under one deadline, like azureml-core's update
  (``service.adapters.azureml``): past it the PUT is *maybe applied* and ``start_update`` raises
  ``WriteOutcomeUnknown``; the reconciler keeps its lease until the call has ended.

"Model data collection enabled" means: the data collector has both ``model_inputs`` and
``model_outputs`` collections with ``dataCollectionMode: Enabled``. Enabling adds or switches on
those two and keeps every other collection (``request``/``response`` payload logging, custom
ones) and setting as the user configured them; disabling switches those two to ``Disabled`` and
keeps the rest (the collector stays when other collections use it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from service.adapters.client_cache import ClientCache, close_quietly
from service.adapters.identity import map_identity_error
from service.config import AzureSettings
from service.domain.targets import deployment_target, online_kind, split_target
from service.domain.telemetry_views import ROLE_VARIABLE
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    CredentialRejected,
    NotFound,
    ServiceError,
    WriteOutcomeUnknown,
)
from service.metrics import AZURE_CALLS, AZURE_LATENCY
from service.ports import AzureOperationStatus, MlTarget, ServiceSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")

MODEL_COLLECTIONS = ("model_inputs", "model_outputs")
_BUSY = frozenset({"Creating", "Updating", "Deleting", "Scaling"})
_TEMPORARY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
WRITE_ANSWER_TIMEOUT_S = 600.0  # how long an unanswered PUT's thread waits for the answer
_FINAL = {"Succeeded": "succeeded", "Failed": "failed", "Canceled": "failed", "Cancelled": "failed"}


def deployment_api_version() -> str:
    """The api-version azure-ai-ml sends for online deployments (from the installed package)."""
    from azure.ai.ml._ml_client import ServiceClient042023Preview

    return str(ServiceClient042023Preview.keywords["api_version"])


def data_collection_enabled(collector: Any) -> bool:
    if not isinstance(collector, dict):
        return False
    collections = collector.get("collections") or {}
    return all(
        isinstance(collections.get(name), dict)
        and collections[name].get("dataCollectionMode") == "Enabled"
        for name in MODEL_COLLECTIONS
    )


def with_data_collection(collector: Any, enabled: bool) -> dict[str, Any] | None:
    """The data collector with model inputs/outputs switched, everything else kept."""
    if not isinstance(collector, dict):
        if not enabled:
            return None
        collector = {"collections": {}}
    updated = json.loads(json.dumps(collector))
    collections = updated.setdefault("collections", {})
    for name in MODEL_COLLECTIONS:
        current = collections.get(name) if isinstance(collections.get(name), dict) else {}
        collections[name] = {**current, "dataCollectionMode": "Enabled" if enabled else "Disabled"}
    return dict(updated)


def fingerprint(document: dict[str, Any]) -> str:
    """What a decision was made on: every writable part of the deployment."""
    props = {
        k: v for k, v in (document.get("properties") or {}).items() if k != "provisioningState"
    }
    material = {k: document.get(k) for k in ("tags", "sku", "identity", "kind")}
    material["properties"] = props
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def _close_clients(clients: tuple[Any, Any, Any]) -> None:
    ml, arm, _credential = clients  # the credential is the identity adapter's to close
    close_quietly(arm)
    # MLClient has no close(): its generated service clients hold the connection pools.
    close_quietly(*_service_clients(ml))


def _service_clients(ml: Any) -> list[Any]:
    return [
        value
        for name, value in vars(ml).items()
        if name.startswith("_service_client") and callable(getattr(value, "close", None))
    ]


class AzureOnlineDeployments:
    """Online deployments as governed targets (names ``{endpoint}.{deployment}``)."""

    def __init__(self, settings: AzureSettings, *, call_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._timeout = call_timeout_s
        # (MLClient, ARM client, credential) per (tenant, credential, workspace).
        self._clients: ClientCache[tuple[Any, Any, Any]] = ClientCache(close=_close_clients)
        # Writes that got no answer in time and may still be sent, by deployment: never write
        # the same deployment again from this process before they have ended.
        self._unanswered: dict[tuple[str, ...], threading.Event] = {}
        self._lock = threading.Lock()

    # -- reads -----------------------------------------------------------------------------
    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        ml, arm, _ = self._clients_for(target)
        endpoints = self._call("list online endpoints", lambda: list(ml.online_endpoints.list()))
        snapshots = []
        for endpoint in endpoints:
            docs = self._call(
                "list online deployments",
                lambda e=endpoint.name: [  # type: ignore[misc]
                    _plain(d)
                    for d in arm.online_deployments.list(
                        target.resource_group, target.workspace_name, e
                    )
                ],
            )
            snapshots += [_snapshot(endpoint.name, d, endpoint.scoring_uri) for d in docs]
        return snapshots

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        endpoint, deployment = _split(name)
        doc = self._get(target, endpoint, deployment)
        return None if doc is None else _snapshot(endpoint, doc, None)

    def telemetry_roles(self, target: MlTarget, online_endpoint: str) -> dict[str, str | None]:
        _, arm, _ = self._clients_for(target)
        docs = self._call(
            "list online deployments",
            lambda: [
                _plain(d)
                for d in arm.online_deployments.list(
                    target.resource_group, target.workspace_name, online_endpoint
                )
            ],
        )
        env = [(d.get("properties") or {}).get("environmentVariables") or {} for d in docs]
        return {str(d.get("name")): e.get(ROLE_VARIABLE) for d, e in zip(docs, env, strict=True)}

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        endpoint, deployment = _split(name)
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
    ) -> str:
        """GET, change the two fields, PUT; returns ``{location}/{operation name}``.

        The whole read-modify-write runs under one deadline (``call_timeout_s``: the reconciler
        renewed its lease for that long right before calling). Past it the PUT may still reach
        Azure: ``WriteOutcomeUnknown``, whose ``settle()`` waits for the call to end; until then
        this process refuses another write to the same deployment."""
        endpoint, deployment = _split(name)
        key = _deployment_key(target, name)
        with self._lock:
            earlier = self._unanswered.get(key)
            if earlier is not None and not earlier.is_set():
                raise AzureCallFailed(
                    f"Azure ML: an earlier update of deployment '{name}' is still unanswered",
                    retry_after_s=self._timeout,
                )
        done = threading.Event()
        ended: dict[str, Any] = {}

        def write() -> None:
            try:
                ended["value"] = self._write(
                    target,
                    name,
                    endpoint,
                    deployment,
                    app_insights=app_insights,
                    model_data_collection=model_data_collection,
                    expected_version=expected_version,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                ended["error"] = exc
            finally:
                done.set()

        threading.Thread(target=write, name="azure-ai-ml: update deployment", daemon=True).start()

        def result() -> str:
            error = ended.get("error")
            if error is not None:
                raise map_ai_ml_error(error, "update online deployment") from error
            return str(ended["value"])

        if done.wait(self._timeout):
            return result()
        AZURE_CALLS.labels("azure_ai_ml", "timeout").inc()
        with self._lock:
            self._unanswered[key] = done

        def settle(timeout_s: float) -> str | None:
            if not done.wait(max(0.0, timeout_s)):
                return None
            with self._lock:
                if self._unanswered.get(key) is done:
                    del self._unanswered[key]
            return result()

        raise WriteOutcomeUnknown(
            f"Azure ML: update online deployment got no answer within {self._timeout:g} s; "
            "it may still be applied",
            settle,
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
    ) -> str:
        _, arm, _ = self._clients_for(target)
        doc = self._get(target, endpoint, deployment)
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
    def _get(self, target: MlTarget, endpoint: str, deployment: str) -> dict[str, Any] | None:
        _, arm, _ = self._clients_for(target)
        try:
            doc = self._call(
                "read online deployment",
                lambda: arm.online_deployments.get(
                    target.resource_group, target.workspace_name, endpoint, deployment
                ),
            )
        except NotFound:
            return None
        return _plain(doc)

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

        arm_url = self._settings.resource_manager.rstrip("/")
        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_timeout": self._timeout,
            "read_timeout": self._timeout,
            "enable_telemetry": False,
            "show_progress": False,
        }
        if self._settings.ca_bundle:
            options["connection_verify"] = self._settings.ca_bundle
        if arm_url != "https://management.azure.com":
            options["cloud"] = _register_cloud(arm_url, self._settings.authority_host)
        with _ENV_LOCK:
            # MLClient records its cloud in the process environment (AZUREML_CURRENT_CLOUD),
            # which azureml-core and child processes would then read: put it back.
            before = os.environ.get(_CLOUD_ENV)
            try:
                ml = MLClient(
                    target.credential,
                    target.subscription_id,
                    target.resource_group,
                    target.workspace_name,
                    **options,
                )
            finally:
                if before is None:
                    os.environ.pop(_CLOUD_ENV, None)
                else:
                    os.environ[_CLOUD_ENV] = before
        client_options = {
            k: v
            for k, v in options.items()
            if k not in ("cloud", "enable_telemetry", "show_progress")
        }
        arm = MachineLearningServicesMgmtClient(
            credential=target.credential,
            subscription_id=target.subscription_id,
            base_url=arm_url,
            api_version=deployment_api_version(),
            credential_scopes=["https://management.azure.com/.default"],
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


_CLOUD_ENV = "AZUREML_CURRENT_CLOUD"
_ENV_LOCK = threading.Lock()
_CLOUDS: dict[str, str] = {}
_CLOUDS_LOCK = threading.Lock()


def _register_cloud(arm_url: str, authority: str) -> str:
    """azure-ai-ml reaches a non-public ARM endpoint through a custom cloud (its documented
    ``cloud`` + ``cloud_metadata`` arguments); register one per ARM URL, once per process."""
    from azure.ai.ml._azure_environments import _add_cloud_to_environments

    with _CLOUDS_LOCK:
        name = _CLOUDS.get(arm_url)
        if name is not None:
            return name
        name = "amlcp-" + hashlib.sha256(arm_url.encode()).hexdigest()[:12]
        metadata = {
            "cloud": name,
            "cloud_metadata": {
                "azure_portal": arm_url + "/",
                "resource_manager": arm_url + "/",
                "active_directory": authority.rstrip("/") + "/",
                "aml_resource_id": arm_url + "/",
                "storage_endpoint": "core.windows.net",
                "registry_discovery_endpoint": arm_url + "/",
            },
        }
        # AttributeError: registered already (by another adapter instance in this process).
        with contextlib.suppress(AttributeError):
            _add_cloud_to_environments(metadata)  # type: ignore[no-untyped-call]
        _CLOUDS[arm_url] = name
        return name


def map_ai_ml_error(exc: BaseException, what: str) -> ServiceError:
    """One error model for everything azure-ai-ml / azure-core (and the credential) can raise."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    from service.adapters.delegated import LoginRequiredError, TokenRefreshFailed

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, LoginRequiredError | TokenRefreshFailed):
        return map_identity_error(exc)
    if isinstance(exc, ClientAuthenticationError) and getattr(exc, "status_code", None) is None:
        return map_identity_error(exc)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return AzureCallFailed(f"Azure ML: {what} failed: Azure unreachable")
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ResourceNotFoundError) and what.startswith("read online deployment"):
        return NotFound(f"Azure ML: {what}: not found")
    if isinstance(exc, HttpResponseError) and status is not None:
        response = getattr(exc, "response", None)
        header = response.headers.get("Retry-After") if response is not None else None
        retry_after = _seconds(header)
        message = _first_line(getattr(exc, "message", None) or str(exc))
        if status in (401, 403):
            return CredentialRejected(
                f"Azure refused the tenant's credential ({what}: HTTP {status})"
            )
        if status in _TEMPORARY_STATUS:
            return AzureCallFailed(f"Azure ML: {what}: HTTP {status}", retry_after_s=retry_after)
        return AzureRejected(f"Azure ML: {what}: HTTP {status}: {message}")
    log.warning("unexpected azure-ai-ml failure (%s) in %s", type(exc).__name__, what)
    return AzureRejected(f"Azure ML: {what} failed ({type(exc).__name__}): {_first_line(str(exc))}")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""


def _plain(model: Any) -> dict[str, Any]:
    """A REST model of the SDK as plain JSON (every property, read-only ones included)."""
    as_dict = getattr(model, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else dict(model)


def _deployment_key(target: MlTarget, name: str) -> tuple[str, ...]:
    return (
        target.subscription_id.lower(),
        target.resource_group.lower(),
        target.workspace_name.lower(),
        name.lower(),
    )


def _split(name: str) -> tuple[str, str]:
    parts = split_target(name)
    if parts is None:
        raise NotFound(f"'{name}' is not an online deployment (expected endpoint.deployment)")
    return parts


def _snapshot(endpoint: str, doc: dict[str, Any], scoring_uri: str | None) -> ServiceSnapshot:
    props = doc.get("properties") or {}
    compute = str(props.get("endpointComputeType") or "Managed")
    modified = (doc.get("systemData") or {}).get("lastModifiedAt")
    state = props.get("provisioningState")
    return ServiceSnapshot(
        name=deployment_target(endpoint, str(doc.get("name"))),
        compute_type=compute,
        state=state,
        app_insights_enabled=bool(props.get("appInsightsEnabled", False)),
        data_collection_enabled=data_collection_enabled(props.get("dataCollector")),
        scoring_uri=scoring_uri,
        updated_at=_parse_time(modified),
        kind=online_kind(compute).value,
        online_endpoint=endpoint,
        deployment=str(doc.get("name")),
        busy=state in _BUSY,
        version=fingerprint(doc),
    )


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
