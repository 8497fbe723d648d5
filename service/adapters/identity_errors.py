"""One error model for every way getting a token can fail (messages carry no secrets)."""

from __future__ import annotations

import logging

import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import CredentialUnavailableError

from service.adapters.delegated import LoginRequiredError, TokenRefreshFailed
from service.errors import (
    AzureUnavailable,
    CredentialRejected,
    LoginRequired,
    NoHostIdentity,
    ServiceError,
    exception_chain,
)

log = logging.getLogger(__name__)


def map_identity_error(exc: BaseException) -> ServiceError:
    """One error model for every way getting a token can fail (messages carry no secrets)."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, LoginRequiredError):
        return LoginRequired(str(exc))
    if isinstance(exc, CredentialUnavailableError):
        return NoHostIdentity(
            "no Azure identity is available on this host (environment, workload identity or "
            "managed identity); Entra ID was not contacted"
        )
    if isinstance(exc, ClientAuthenticationError) and _caused_by_network(exc):
        return AzureUnavailable("Entra ID unreachable")
    if isinstance(exc, ClientAuthenticationError):
        message = exc.message or ""
        for marker, reason in (
            ("AADSTS7000215", "invalid client secret"),
            ("AADSTS700016", "unknown application (client id) in this tenant"),
            ("AADSTS90002", "unknown tenant"),
            ("AADSTS700027", "the certificate assertion was rejected"),
            ("AADSTS7000222", "the client secret has expired"),
            ("invalid_client", "the client credentials were rejected"),
        ):
            if marker in message:
                return CredentialRejected(f"Entra ID rejected the credential: {reason}")
        status = exc.response.status_code if exc.response is not None else None
        if status is not None and (status >= 500 or status == 429):
            return AzureUnavailable("Entra ID answered with a server error")
        return CredentialRejected("Entra ID rejected the credential")
    if isinstance(exc, TokenRefreshFailed):
        return AzureUnavailable(str(exc))
    if isinstance(exc, ServiceRequestError | requests.RequestException | OSError):
        return AzureUnavailable(f"Entra ID unreachable ({type(exc).__name__})")
    log.warning("unexpected token acquisition failure: %s", type(exc).__name__)
    return AzureUnavailable(f"token acquisition failed ({type(exc).__name__})")


_NETWORK_ERRORS = (ServiceRequestError, requests.ConnectionError, requests.Timeout, OSError)


def _caused_by_network(exc: BaseException) -> bool:
    """azure-identity wraps transport failures in ClientAuthenticationError; find them."""
    if any(isinstance(cause, _NETWORK_ERRORS) for cause in exception_chain(exc)):
        return True
    message = str(getattr(exc, "message", "") or exc)
    return "Failed to establish a new connection" in message or "Max retries exceeded" in message
