"""AML model management through azureml-core: the one adapter that imports it.

The SDK gets several things wrong for a server (AZURE_EMULATION.md), so this adapter owns them:
- its own retries are switched off (``DEFAULT_RETRIES = 0`` at call time): it would ignore
  Retry-After and sleep 32/64/128 s; the reconciler's retry policy decides instead;
- every call runs in a short-lived thread with a deadline, because discovery, service reads,
  ``get_logs`` and the AKS PATCH have no client timeout (a hung read is abandoned, its thread
  ends when the socket does);
- a write that outlives its deadline is *maybe applied*: its PATCH may still reach Azure. It
  raises ``WriteOutcomeUnknown`` whose ``settle()`` lets the caller wait for the abandoned call
  to end (and learn the operation it started); until then this process refuses another write
  to the same service, and the reconciler keeps its lease;
- operations are polled once per call (``_get_operation_state``), never ``wait_for_deployment``
  (which sleeps 5 s between polls);
- its tracking registry is emptied: ``update()`` would otherwise run ``git`` (up to five
  subprocesses, each a fork of this large process) in the *service's* working directory and add
  what it found (the control plane's repository URL, branch, commit) to the properties of the
  tenant's web service;
- it reads its CA trust only from ``REQUESTS_CA_BUNDLE`` and opens a new connection for every
  call, parsing a CA file each time (~20 ms of CPU for certifi's): the adapter points that
  variable at the hashed directory of ``AZURE_CA_BUNDLE`` (else of what it named), which costs
  nothing to load (``service.adapters.trust``);
- every failure (requests errors, ProjectSystemException, WebserviceException, credential
  errors) becomes one error model: AzureCallFailed (temporary, with the server's Retry-After),
  AzureRejected (permanent), NotFound, or a credential error.

``Workspace(...)`` costs ARM calls, so loaded workspaces are cached per tenant credential and
workspace. azureml-core imports in ~0.5 s: it is imported on first use.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import requests
from azure.core.exceptions import ClientAuthenticationError

from service.adapters.azure_calls import (
    LIST_RETRY_WAIT_S,
    TEMPORARY_STATUS,
    Call,
    GuardedWrites,
    first_line,
    read_before_write,
    retry_read,
    start_call,
)
from service.adapters.azureml_auth import token_credential_authentication
from service.adapters.client_cache import ClientCache
from service.adapters.delegated import LoginRequiredError, TokenRefreshFailed
from service.adapters.identity_errors import map_identity_error
from service.adapters.trust import ca_location, export_to_requests
from service.config import AzureSettings
from service.domain.retry import parse_retry_after
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    CredentialRejected,
    NotFound,
    ServiceError,
    exception_chain,
)
from service.metrics import AZURE_CALLS, AZURE_LATENCY
from service.ports import AzureOperationStatus, MlTarget, ServiceSnapshot

log = logging.getLogger(__name__)
T = TypeVar("T")

_STATUS = re.compile(r"(?:Response Code|status code)\D{0,4}(\d{3})", re.IGNORECASE)
_CODE = re.compile(r"""['"]code['"]\s*:\s*['"]([A-Za-z][A-Za-z0-9_.]{0,63})['"]""")
_RETRY_AFTER = re.compile(r"""['"]Retry-After['"]\s*:\s*['"]?(\d+(?:\.\d+)?)""", re.IGNORECASE)
_FINAL_STATES = {"Succeeded": "succeeded", "Failed": "failed", "Cancelled": "failed"}
# The service object a read returned is reused by an update of the same service this soon
# after (the attempt decides on a read, then writes): update() sends a JSON patch of the changed
# values only, so an older object writes nothing stale, it only saves reading it again.
REUSE_READ_S = 5.0


class AzureMlControlPlane:
    """Implements ``service.ports.MlControlPlane`` with azureml-core."""

    def __init__(
        self,
        settings: AzureSettings,
        *,
        call_timeout_s: float = 30.0,
        workspace_cache_size: int = 512,
    ) -> None:
        self._settings = settings
        # Built here (Lazy builds adapters once); azureml-core reads it from the environment.
        self._verify = ca_location(settings.ca_bundle)
        self._timeout = call_timeout_s
        self._cache_size = workspace_cache_size
        self._workspaces: ClientCache[Any] = ClientCache(max_size=workspace_cache_size)
        # The service object of each update started here, to poll without re-reading it.
        self._updating: OrderedDict[str, Any] = OrderedDict()
        # The last read of each service: (when, credential it was read with, SDK object).
        self._read: OrderedDict[tuple[str, ...], tuple[float, Any, Any]] = OrderedDict()
        self._writes = GuardedWrites("azureml", call_timeout_s)
        self._lock = threading.Lock()

    # -- the port --------------------------------------------------------------------------
    def list_services(self, target: MlTarget) -> list[ServiceSnapshot]:
        from azureml.core.webservice import Webservice

        ws = self._workspace(target)
        services = retry_read(
            lambda: self._call("list web services", lambda: Webservice.list(ws)),
            unhinted_wait_s=LIST_RETRY_WAIT_S,
        )
        return [_snapshot(s) for s in services]

    def get_service(self, target: MlTarget, name: str) -> ServiceSnapshot | None:
        service = self._webservice(target, name)
        if service is None:
            return None
        snapshot = _snapshot(service)  # before an update may reuse (and change) the object
        with self._lock:
            self._read[_read_key(target, name)] = (time.monotonic(), target.credential, service)
            while len(self._read) > self._cache_size:
                self._read.popitem(last=False)
        return snapshot

    def _recent_read(self, target: MlTarget, name: str) -> Any | None:
        """The object of a read of this service made moments ago with this very credential
        (taken: one update per read), or None."""
        with self._lock:
            entry = self._read.pop(_read_key(target, name), None)
        if entry is None:
            return None
        read_at, credential, service = entry
        if credential is not target.credential or time.monotonic() - read_at > REUSE_READ_S:
            return None
        return service

    def start_update(
        self,
        target: MlTarget,
        name: str,
        *,
        app_insights: bool | None = None,
        model_data_collection: bool | None = None,
        send_by: float | None = None,
    ) -> str:
        what = f"update of '{name}'"  # update() = validate + PATCH, at once
        service = self._recent_read(target, name) or read_before_write(
            lambda: self._require(target, name), send_by, what
        )
        options: dict[str, Any] = {}
        if app_insights is not None:
            options["enable_app_insights"] = app_insights
        if model_data_collection is not None:
            options["collect_model_data"] = model_data_collection
        return self._writes.write(
            _service_key(target, name),
            f"update of '{name}'",
            lambda: self._run_sdk(service.update, **options),
            lambda call: self._started_operation(service, call),
        )

    def _started_operation(self, service: Any, call: Call) -> str:
        """The operation an ended ``update()`` started, or the error it ended with."""
        operation_id = _operation_id(service)
        if call.error is not None:
            # update() = validate + PATCH + re-read: when only the re-read failed, the PATCH
            # was accepted and its operation runs; report it rather than a failure.
            if operation_id is None:
                mapped = map_azureml_error(call.error, "update web service")
                AZURE_CALLS.labels("azureml", mapped.code).inc()
                raise mapped from call.error
        elif operation_id is None:
            raise AzureRejected("Azure accepted the update without an operation to follow")
        AZURE_CALLS.labels("azureml", "ok").inc()
        with self._lock:
            self._updating[operation_id] = service
            while len(self._updating) > self._cache_size:
                self._updating.popitem(last=False)
        return operation_id

    def operation_status(
        self, target: MlTarget, name: str, operation_id: str
    ) -> AzureOperationStatus:
        with self._lock:
            service = self._updating.get(operation_id)
        if service is None:  # e.g. resuming another worker's update: read the service once
            service = self._require(target, name)
            base = "/".join(service._mms_endpoint.split("/")[:-2])
            service._operation_endpoint = f"{base}/operations/{operation_id}"
        state, error, _ = self._call("poll operation", service._get_operation_state)
        final = _FINAL_STATES.get(state)
        if final is None:
            return AzureOperationStatus("running")
        with self._lock:
            self._updating.pop(operation_id, None)
        message = error.get("message") if isinstance(error, dict) else None
        return AzureOperationStatus(final, None if final == "succeeded" else (message or state))

    def get_logs(self, target: MlTarget, name: str, tail: int) -> str:
        service = self._require(target, name)
        text = self._call("read container logs", lambda: service.get_logs(num_lines=tail))
        return str(text or "")

    # -- helpers ---------------------------------------------------------------------------
    def _workspace(self, target: MlTarget) -> Any:
        key = (
            target.tenant_key,
            target.subscription_id.lower(),
            target.resource_group.lower(),
            target.workspace_name.lower(),
        )

        def load() -> Any:
            from azureml.core import Workspace

            auth = token_credential_authentication(
                target.credential, resource_manager_url=self._settings.resource_manager
            )
            return self._call(
                "load workspace",
                lambda: Workspace(
                    target.subscription_id,
                    target.resource_group,
                    target.workspace_name,
                    auth=auth,
                ),
            )

        return self._workspaces.get(target.credential, key, load)

    def close(self) -> None:
        self._workspaces.close()

    def _webservice(self, target: MlTarget, name: str) -> Any | None:
        from azureml.core.webservice import Webservice

        ws = self._workspace(target)
        try:
            return self._call("read web service", lambda: Webservice(ws, name))
        except NotFound:
            return None

    def _require(self, target: MlTarget, name: str) -> Any:
        service = self._webservice(target, name)
        if service is None:
            raise NotFound(f"web service '{name}' not found in workspace '{target.workspace_name}'")
        return service

    def _run_sdk(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One SDK call with the SDK's own retries off (our retry policy decides), trusting
        the configured CAs through the one setting azureml-core reads (``REQUESTS_CA_BUNDLE``),
        as a hashed directory: it opens a new connection for every call."""
        import azureml._restclient.clientbase as clientbase

        clientbase.DEFAULT_RETRIES = 0  # read by every call
        _no_tracking_info()
        export_to_requests(self._verify)
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            AZURE_LATENCY.labels("azureml").observe(time.perf_counter() - started)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one read under this adapter's deadline (a late answer is dropped)."""
        call = start_call(f"azureml: {what}", lambda: self._run_sdk(fn))
        if not call.done.wait(self._timeout):
            AZURE_CALLS.labels("azureml", "timeout").inc()
            raise AzureCallFailed(f"Azure ML: {what} got no answer within {self._timeout:g} s")
        if call.error is not None:
            mapped = map_azureml_error(call.error, what)
            AZURE_CALLS.labels("azureml", mapped.code).inc()
            raise mapped from call.error
        AZURE_CALLS.labels("azureml", "ok").inc()
        return call.value  # type: ignore[no-any-return]


@functools.cache
def _no_tracking_info() -> None:
    """Empty azureml-core's tracking registry (its Git provider), once per process: what it
    gathers describes this process's working directory, not the tenant's model, and
    ``update()`` sends it."""
    from azureml._base_sdk_common.tracking import global_tracking_info_registry

    global_tracking_info_registry.providers.clear()


def _read_key(target: MlTarget, name: str) -> tuple[str, ...]:
    return (target.tenant_key, *_service_key(target, name))


def _service_key(target: MlTarget, name: str) -> tuple[str, ...]:
    return (
        target.subscription_id.lower(),
        target.resource_group.lower(),
        target.workspace_name.lower(),
        name,
    )


def map_azureml_error(exc: BaseException, what: str) -> ServiceError:
    """One error model for everything azureml-core (and the credential under it) can raise."""
    if isinstance(exc, ServiceError):
        return exc
    for cause in exception_chain(exc):
        if isinstance(cause, ServiceError):  # e.g. a wrong-tenant token, wrapped by the SDK
            return cause
        if isinstance(cause, ClientAuthenticationError | LoginRequiredError | TokenRefreshFailed):
            return map_identity_error(cause)
    if any(
        isinstance(c, requests.Timeout | requests.ConnectionError) for c in exception_chain(exc)
    ):
        return AzureCallFailed(f"Azure ML: {what} failed: Azure unreachable")
    text = str(exc)
    if "WebserviceNotFound" in text:
        return NotFound(f"Azure ML: {what}: web service not found")
    status, retry_after = _status_of(exc)
    code_match = _CODE.search(text)
    code = code_match.group(1) if code_match else None
    if status in (401, 403):
        return CredentialRejected(f"Azure refused the tenant's credential ({what}: HTTP {status})")
    if status == 404:
        return AzureRejected(
            f"Azure ML: {what}: not found in Azure", azure_status=status, azure_code=code
        )
    if status in TEMPORARY_STATUS:
        return AzureCallFailed(
            f"Azure ML: {what}: HTTP {status}",
            retry_after_s=retry_after,
            azure_status=status,
            azure_code=code,
        )
    if status is not None:
        return AzureRejected(
            f"Azure ML: {what}: HTTP {status}: {first_line(text)}",
            azure_status=status,
            azure_code=code,
        )
    log.warning("unexpected azureml-core failure (%s) in %s", type(exc).__name__, what)
    return AzureRejected(f"Azure ML: {what} failed ({type(exc).__name__}): {first_line(text)}")


def _status_of(exc: BaseException) -> tuple[int | None, float | None]:
    """HTTP status and Retry-After, from a response object in the chain or the SDK's message."""
    for cause in exception_chain(exc):
        response = getattr(cause, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            header = (getattr(response, "headers", None) or {}).get("Retry-After")
            return status, parse_retry_after(header)
    text = str(exc)
    match = _STATUS.search(text)
    if match is None:
        return None, None
    after = _RETRY_AFTER.search(text)
    return int(match.group(1)), parse_retry_after(after.group(1) if after else None)


def _operation_id(service: Any) -> str | None:
    endpoint = getattr(service, "_operation_endpoint", None)
    return str(endpoint).rsplit("/", 1)[-1] if endpoint else None


def _snapshot(service: Any) -> ServiceSnapshot:
    collection = getattr(service, "data_collection", None)
    updated = getattr(service, "updated_time", None)
    return ServiceSnapshot(
        name=service.name,
        compute_type=str(service.compute_type or "unknown"),
        state=service.state,
        app_insights_enabled=getattr(service, "enable_app_insights", None),
        data_collection_enabled=(
            getattr(collection, "storage_enabled", None) if collection is not None else None
        ),
        scoring_uri=service.scoring_uri,
        updated_at=updated if isinstance(updated, datetime) else None,
    )
