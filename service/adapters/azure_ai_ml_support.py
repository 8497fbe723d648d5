"""Support of the azure-ai-ml adapter (``service.adapters.azure_ai_ml``): the api-version the
SDK sends, its custom cloud for a non-public ARM endpoint, closing its clients, and one error
model for everything it (and the credential under it) can raise."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from typing import Any

from service.adapters.azure_calls import TEMPORARY_STATUS, first_line
from service.adapters.client_cache import close_quietly
from service.adapters.identity_errors import map_identity_error
from service.domain.retry import parse_retry_after
from service.errors import (
    AzureCallFailed,
    AzureRejected,
    CredentialRejected,
    NotFound,
    ServiceError,
)

log = logging.getLogger("service.adapters.azure_ai_ml")


def deployment_api_version() -> str:
    """The api-version azure-ai-ml sends for online deployments (from the installed package)."""
    from azure.ai.ml._ml_client import ServiceClient042023Preview

    return str(ServiceClient042023Preview.keywords["api_version"])


def close_clients(clients: tuple[Any, Any, Any]) -> None:
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


CLOUD_ENV = "AZUREML_CURRENT_CLOUD"
ENV_LOCK = threading.Lock()
_CLOUDS: dict[str, str] = {}
_CLOUDS_LOCK = threading.Lock()


def register_cloud(arm_url: str, authority: str) -> str:
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
        retry_after = parse_retry_after(header)
        message = first_line(getattr(exc, "message", None) or str(exc))
        if status in (401, 403):
            return CredentialRejected(
                f"Azure refused the tenant's credential ({what}: HTTP {status})"
            )
        if status in TEMPORARY_STATUS:
            return AzureCallFailed(
                f"Azure ML: {what}: HTTP {status}", retry_after_s=retry_after, azure_status=status
            )
        return AzureRejected(f"Azure ML: {what}: HTTP {status}: {message}")
    log.warning("unexpected azure-ai-ml failure (%s) in %s", type(exc).__name__, what)
    return AzureRejected(f"Azure ML: {what} failed ({type(exc).__name__}): {first_line(str(exc))}")
