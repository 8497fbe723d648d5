"""Log Analytics queries with the tenant's credential: typed (LogsQueryClient) and pass-through.

One LogsQueryClient and one azure-core PipelineClient per credential (so per tenant identity),
kept in a bounded ``ClientCache`` that closes them when dropped: their connection pools stay warm
(keep-alive, TLS reused) and never leak.
Both run with azure-core's retries off; the use case owns retries so that each attempt is
charged to the identity's budget and a long Retry-After becomes our 429 instead of a stall.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import PipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineResponse
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.monitor.query import LogsQueryClient, LogsQueryStatus

from service.adapters.client_cache import ClientCache
from service.adapters.identity_errors import map_identity_error
from service.adapters.tenant_credentials import sdk_credential
from service.config import AzureSettings
from service.domain.kql import Timespan
from service.domain.retry import parse_retry_after
from service.errors import AzureQueryError, AzureUnavailable, ServiceError, exception_chain
from service.logs import request_id_var
from service.metrics import AZURE_CALLS, AZURE_LATENCY
from service.ports import (
    LogQueryResult,
    LogQuerySpec,
    LogTable,
    LogTarget,
    RawLogResponse,
    TokenCredential,
)

log = logging.getLogger(__name__)

# Headers of Azure's answer worth passing back to a compat caller; never cookies or internals.
PASSED_RESPONSE_HEADERS = ("Content-Type", "Preference-Applied", "Retry-After")
CONNECT_TIMEOUT_S = 10
# Beyond the server timeout Azure answers 504 itself; the margin covers transfer of the result.
READ_MARGIN_S = 30
CHUNK_BYTES = 256 * 1024


class _Clients:
    def __init__(self, typed: LogsQueryClient, raw: PipelineClient[Any, Any]) -> None:
        self.typed = typed
        self.raw = raw

    def close(self) -> None:
        self.typed.close()
        self.raw.close()


class AzureLogs:
    """Implements ``service.ports.LogQuery`` with azure-monitor-query and azure-core."""

    def __init__(self, settings: AzureSettings) -> None:
        self._settings = settings
        self._clients: ClientCache[_Clients] = ClientCache()

    def _for(self, credential: TokenCredential) -> _Clients:
        return self._clients.get(credential, "logs", lambda: self._build(credential))

    def close(self) -> None:
        self._clients.close()

    def _build(self, credential: TokenCredential) -> _Clients:
        s = self._settings
        verify: Any = s.ca_bundle or True
        typed = LogsQueryClient(
            sdk_credential(credential),
            endpoint=s.log_analytics_endpoint,
            audience=s.log_analytics_audience,
            connection_verify=verify,
            retry_total=0,
            connection_timeout=CONNECT_TIMEOUT_S,
        )
        scope = s.log_analytics_audience.rstrip("/") + "/.default"
        raw: PipelineClient[Any, Any] = PipelineClient(
            base_url=s.log_analytics_endpoint,
            policies=[
                HeadersPolicy(),
                UserAgentPolicy(sdk_moniker="amlcp-log-proxy"),
                BearerTokenCredentialPolicy(sdk_credential(credential), scope),
            ],
            transport=RequestsTransport(
                connection_verify=verify, connection_timeout=CONNECT_TIMEOUT_S
            ),
        )
        return _Clients(typed, raw)

    # -- typed ---------------------------------------------------------------------------------
    def query(
        self, credential: TokenCredential, target: LogTarget, spec: LogQuerySpec
    ) -> LogQueryResult:
        client = self._for(credential).typed
        seen: dict[str, Any] = {}

        def keep_response(response: PipelineResponse[Any, Any]) -> None:
            # The SDK's partial_error drops Azure's `details`/`innererror`; the raw answer
            # keeps them, so the hook holds on to it for a partial result.
            seen["response"] = response.http_response

        options: dict[str, Any] = {
            "timespan": _sdk_timespan(spec.timespan),
            "server_timeout": spec.server_timeout_s,
            "include_statistics": spec.include_statistics,
            "raw_response_hook": keep_response,
            "read_timeout": spec.server_timeout_s + READ_MARGIN_S,
        }
        request_id = request_id_var.get()
        if request_id:
            options["request_id"] = request_id  # Azure's x-ms-client-request-id: correlation
        started = time.perf_counter()
        try:
            if target.kind == "workspace":
                result = client.query_workspace(target.id, spec.query, **options)
            else:
                result = client.query_resource(target.id, spec.query, **options)
        except HttpResponseError as exc:
            AZURE_CALLS.labels("log_analytics", f"http_{exc.status_code}").inc()
            raise _azure_error(exc) from None
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            AZURE_CALLS.labels("log_analytics", "transport_error").inc()
            raise _transport_error(exc) from None
        finally:
            AZURE_LATENCY.labels("log_analytics").observe(time.perf_counter() - started)
        AZURE_CALLS.labels("log_analytics", "ok").inc()
        response = seen.get("response")
        size = len(response.body()) if response is not None else 0
        if result.status == LogsQueryStatus.PARTIAL:
            tables, statistics = result.partial_data, result.statistics
            error = _raw_error(response) or {"code": "PartialError", "message": "partial result"}
        else:
            tables, statistics, error = result.tables, result.statistics, None
        return LogQueryResult(
            tables=tuple(_table(t) for t in tables),
            error=error,
            statistics=dict(statistics) if statistics is not None else None,
            response_bytes=size,
        )

    # -- pass-through --------------------------------------------------------------------------
    def forward(
        self, credential: TokenCredential, path: str, body: bytes, prefer: str | None
    ) -> RawLogResponse:
        client = self._for(credential).raw
        headers = {"Content-Type": "application/json"}
        if prefer:
            headers["Prefer"] = prefer
        request_id = request_id_var.get()
        if request_id:
            headers["x-ms-client-request-id"] = request_id
        url = self._settings.log_analytics_endpoint + path
        request = HttpRequest("POST", url, content=body, headers=headers)
        try:
            response = client.send_request(request, stream=True, read_timeout=600 + READ_MARGIN_S)
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            raise _transport_error(exc) from None
        passed = {h: response.headers[h] for h in PASSED_RESPONSE_HEADERS if h in response.headers}
        if "Content-Length" in response.headers and "Content-Encoding" not in response.headers:
            passed["Content-Length"] = response.headers["Content-Length"]
        return RawLogResponse(
            status=response.status_code,
            headers=passed,
            chunks=_chunks(response),
            close=response.close,
        )


def _chunks(response: Any) -> Any:
    try:
        yield from response.iter_bytes(chunk_size=CHUNK_BYTES)
    except (ServiceRequestError, ServiceResponseError, OSError) as exc:
        # Mid-stream the status is already sent: the caller sees a cut body, we log why.
        log.warning("log analytics stream broke off: %s", type(exc).__name__)
    finally:
        response.close()


def _sdk_timespan(span: Timespan | None) -> Any:
    if span is None:
        return None
    if span.start is None:
        return span.length()
    if span.end is not None:
        return (span.start, span.end)
    return (span.start, span.length())


def _table(table: Any) -> LogTable:
    types = list(table.columns_types)
    columns = tuple(zip(table.columns, types, strict=True))
    converters = [_CONVERT.get(t) for t in types]
    rows = []
    for row in table.rows:
        values = list(row)
        for i, convert in enumerate(converters):
            if convert is not None and values[i] is not None:
                values[i] = convert(values[i])
        rows.append(values)
    return LogTable(name=table.name, columns=columns, rows=rows)


def _datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value


def _dynamic(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _timespan(value: Any) -> Any:
    return str(value) if isinstance(value, timedelta) else value


_CONVERT = {"datetime": _datetime, "dynamic": _dynamic, "timespan": _timespan}


def _raw_error(response: Any) -> dict[str, Any] | None:
    if response is None:
        return None
    try:
        error = json.loads(response.body()).get("error")
    except (ValueError, AttributeError):
        return None
    return error if isinstance(error, dict) else None


def _credential_failure(exc: BaseException) -> ClientAuthenticationError | None:
    """The credential's failure behind an HttpResponseError, if that is what it is.

    ClientAuthenticationError is a subclass of HttpResponseError, and azure-monitor-query
    re-raises it as a bare HttpResponseError (the original stays on ``__context__``).
    """
    for cause in exception_chain(exc):
        if isinstance(cause, ClientAuthenticationError):
            return cause
    return None


def _azure_error(exc: HttpResponseError) -> ServiceError:
    credential_failure = _credential_failure(exc)
    if credential_failure is not None:
        # Not Azure's answer to the query but the credential's failure to get a token: the
        # caller must fix the credential (424), not retry (503).
        return map_identity_error(credential_failure)
    response = exc.response
    status = exc.status_code or 502
    error: dict[str, Any] = {}
    retry_after: float | None = None
    if response is not None:
        try:
            body = json.loads(response.text())
            error = body.get("error") if isinstance(body.get("error"), dict) else {}
        except (ValueError, AttributeError):
            error = {}
        retry_after = parse_retry_after(getattr(response, "headers", {}).get("Retry-After"))
    if not error:
        error = {"code": f"Http{status}", "message": f"Log Analytics answered {status}"}
    return AzureQueryError(status, error, retry_after_s=retry_after)


def _transport_error(exc: Exception) -> ServiceError:
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ServiceRequestError | ServiceResponseError | OSError):
        return AzureUnavailable(f"Log Analytics unreachable ({type(exc).__name__})")
    if isinstance(exc, HttpResponseError):
        return _azure_error(exc)
    # Token acquisition failures of our own credentials (delegated sign-in) land here too.
    return map_identity_error(exc)
