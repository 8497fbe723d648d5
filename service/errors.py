"""The service's error model. Each error carries its HTTP status and a stable machine code.

The API edge turns these into RFC 9457 ``application/problem+json``; nothing here knows Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class ServiceError(Exception):
    """Base class: an expected failure with a status, a code and a message safe to show callers."""

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(ServiceError):
    status, code, title = 400, "bad_request", "Bad request"


class ValidationFailed(BadRequest):
    code, title = "validation_failed", "Request validation failed"

    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail, extra={"errors": errors or []})


class Unauthorized(ServiceError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="amlcp"'})


class Forbidden(ServiceError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ServiceError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(ServiceError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class Conflict(ServiceError):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(ServiceError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class PayloadTooLarge(ServiceError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(ServiceError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class TooManyRequests(ServiceError):
    status, code, title = 429, "too_many_requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after_s))})


class ServiceUnavailable(ServiceError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    """The database failed (outage, failover, restart): retry after a short pause."""

    code = "service_unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 2) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class FailedDependency(ServiceError):
    status, code, title = 424, "failed_dependency", "Failed dependency"


class CredentialMissing(ServiceError):
    """The tenant has no credential configured."""

    status, code, title = 409, "credential_missing", "No Azure credential configured"


class LoginRequired(FailedDependency):
    """The delegated sign-in is missing, expired or revoked: an admin must sign in again."""

    code, title = "login_required", "Azure sign-in required"


class CredentialRejected(FailedDependency):
    """Entra refused the credential (unknown client, wrong secret, bad certificate...)."""

    code, title = "credential_rejected", "Azure rejected the credential"


class NoHostIdentity(FailedDependency):
    """``host_identity`` is configured but this host has no Azure identity (nothing was asked)."""

    code, title = "no_host_identity", "No Azure identity on this host"


class WrongTenantToken(FailedDependency):
    """A token was issued for another Entra tenant than the tenant's registered one: unused."""

    code, title = "wrong_tenant_token", "Token issued for another Entra tenant"


class SubscriptionNotInTenant(FailedDependency):
    """The subscription is not reachable with the tenant's credential, or belongs elsewhere."""

    code, title = "subscription_not_in_tenant", "Subscription not in the tenant's Entra tenant"


class HostIdentityNotAllowed(Forbidden):
    """Only a global admin may choose ``host_identity``, and only for allow-listed tenants."""

    code, title = "host_identity_not_allowed", "The host identity is not allowed for this tenant"


class AzureUnavailable(ServiceUnavailable):
    """Azure (or the network to it) failed in a way worth retrying."""

    code, title = "azure_unavailable", "Azure is unreachable"

    def __init__(self, detail: str, *, retry_after_s: int = 5) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after_s)


class SecretsUnavailable(ServiceError):
    """A stored secret cannot be decrypted: CREDENTIAL_KEYS lacks the key that encrypted it."""

    status, code, title = 503, "secrets_unavailable", "Stored secrets unavailable"


class QueryRejected(BadRequest):
    """Log Analytics refused the query (syntax, semantics, arguments); Azure's error attached."""

    code, title = "query_rejected", "Query rejected by Log Analytics"


class ResultTooLarge(BadRequest):
    """The result is over the proxy's size cap: narrow the query."""

    code, title = "result_too_large", "Query result too large"


class QueryTimeout(ServiceError):
    """Log Analytics gave up at the server timeout (its 504)."""

    status, code, title = 504, "query_timeout", "Query timed out"


class AzureQueryError(ServiceError):
    """Log Analytics answered a query with an error: its status, error object and Retry-After.

    The use case retries or maps it (``service.services.log_queries``); left unmapped it is a
    502, never a 500.
    """

    status, code, title = 502, "azure_query_error", "Log Analytics error"

    def __init__(
        self,
        azure_status: int,
        azure_error: dict[str, Any],
        *,
        retry_after_s: float | None = None,
    ) -> None:
        message = str(azure_error.get("message") or f"Log Analytics answered {azure_status}")
        super().__init__(message[:1000])
        self.azure_status = azure_status
        self.azure_error = azure_error
        self.retry_after_s = retry_after_s


class AzureCallFailed(AzureUnavailable):
    """A temporary Azure failure (throttled, 5xx, timeout, connection): worth retrying.

    ``retry_after_s`` is the server's own Retry-After when it sent one (the retry policy must not
    come back earlier); the HTTP edge shows callers a whole number of seconds.
    """

    def __init__(
        self,
        detail: str,
        *,
        retry_after_s: float | None = None,
        azure_status: int | None = None,
        azure_code: str | None = None,
    ) -> None:
        super().__init__(detail, retry_after_s=max(1, round(retry_after_s or 5)))
        self.retry_after_s = retry_after_s
        self.azure_status = azure_status  # Azure's HTTP status, when it answered
        self.azure_code = azure_code  # Azure's error code, when it sent one


class WriteOutcomeUnknown(AzureCallFailed):
    """A write got no answer within its deadline: Azure may still receive and apply it.

    The call goes on in the background; ``settle(timeout_s)`` waits up to ``timeout_s`` for it
    to end and returns the Azure operation id it started (None while it is still running), or
    raises the ServiceError it ended with. Until it has ended, nobody may write the same target
    again: the caller keeps its lease and observes before it sends anything else.
    """

    def __init__(self, detail: str, settle: Callable[[float], str | None]) -> None:
        super().__init__(detail)
        self.settle = settle


class WriteNotSent(AzureCallFailed):
    """A paced write was not sent: the read the adapter makes before it failed (``reason``
    ``read_failed``; ``retry_after_s`` is Azure's, for that read) or ended after the write's
    ``send_by``, when its subscription write slot was over (``read_slow``). Nothing reached
    Azure: wait out the Retry-After, take a new slot and call again."""

    def __init__(self, detail: str, *, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(detail, retry_after_s=retry_after_s)
        self.reason = reason


class AzureRejected(FailedDependency):
    """Azure refused the request for good (bad request, validation error, failed operation)."""

    code, title = "azure_rejected", "Azure rejected the request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        azure_status: int | None = None,
        azure_code: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(detail, **options)
        self.azure_status = azure_status
        self.azure_code = azure_code


def is_temporary(exc: ServiceError) -> bool:
    """Whether retrying the same call later may succeed."""
    return isinstance(exc, ServiceUnavailable | TooManyRequests)


def azure_answer(exc: ServiceError) -> tuple[int | None, str | None]:
    """Azure's HTTP status and error code carried by an error, when Azure answered."""
    status = getattr(exc, "azure_status", None)
    code = getattr(exc, "azure_code", None)
    return (
        status if isinstance(status, int) else None,
        code[:64] if isinstance(code, str) else None,
    )


def server_retry_after_s(exc: ServiceError) -> float | None:
    """The Retry-After the remote server asked for, if the error carries one."""
    value = getattr(exc, "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


def exception_chain(exc: BaseException, *, limit: int = 10) -> Iterator[BaseException]:
    """``exc`` and what it wraps, outermost first: azure-core's ``inner_exception`` when set,
    else ``__cause__``, else ``__context__``. Stops at a cycle or after ``limit`` links."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < limit and all(current is not s for s in seen):
        seen.append(current)
        yield current
        inner = getattr(current, "inner_exception", None)
        current = (
            inner
            if isinstance(inner, BaseException)
            else (current.__cause__ or current.__context__)
        )
