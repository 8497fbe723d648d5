"""Log Analytics queries with the tenant's credential: typed (results as data) and pass-through.

One azure-core PipelineClient per credential (so per tenant identity), kept in a bounded
``ClientCache`` that closes it when dropped: its connection pool stays warm (keep-alive, TLS
reused) and never leaks; its transport is urllib3, without requests (``http_transport``). Both
kinds of query send azure-monitor-query's request through it (the typed one reads the answer
into data the way ``LogsQueryClient`` would have, without its model objects: issue 16). No
retries in the pipeline: the use case owns retries so that each attempt is charged to the
identity's budget and a long Retry-After becomes our 429 instead of a stall.
"""

from __future__ import annotations

import json
import logging
import re
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
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest
from azure.monitor.query._helpers import native_col_type

from service.adapters.client_cache import ClientCache
from service.adapters.http_transport import Urllib3Transport, environ_proxy
from service.adapters.identity_errors import map_identity_error
from service.adapters.tenant_credentials import sdk_credential
from service.adapters.trust import ca_location
from service.config import AzureSettings
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
# A streamed answer is read (and so written to the caller) this much at a time. azure-core's
# ``iter_bytes`` ignores any chunk size it is given and reads the transport's block size, 4 KiB by
# default: 12,500 reads and TLS sends per 50 MB through Python (issue 16, P2).
CHUNK_BYTES = 256 * 1024


class AzureLogs:
    """Implements ``service.ports.LogQuery`` with azure-monitor-query and azure-core."""

    def __init__(self, settings: AzureSettings) -> None:
        self._settings = settings
        self._clients: ClientCache[PipelineClient[Any, Any]] = ClientCache()
        # The CAs to trust and the proxy from the environment, read once: the endpoint and the
        # environment do not change while the process runs.
        self._verify, self._proxy = _environment(settings)

    def _for(self, credential: TokenCredential) -> PipelineClient[Any, Any]:
        return self._clients.get(credential, "logs", lambda: self._build(credential))

    def close(self) -> None:
        self._clients.close()

    def _build(self, credential: TokenCredential) -> PipelineClient[Any, Any]:
        s = self._settings
        scope = s.log_analytics_audience.rstrip("/") + "/.default"
        return PipelineClient(
            base_url=s.log_analytics_endpoint,
            policies=[
                HeadersPolicy(),
                UserAgentPolicy(sdk_moniker="amlcp-log-proxy"),
                BearerTokenCredentialPolicy(sdk_credential(credential), scope),
            ],
            transport=Urllib3Transport(
                verify=self._verify,
                connection_timeout=CONNECT_TIMEOUT_S,
                block_size=CHUNK_BYTES,
                proxy=self._proxy,
            ),
        )

    # -- typed ---------------------------------------------------------------------------------
    def query(
        self, credential: TokenCredential, target: LogTarget, spec: LogQuerySpec
    ) -> LogQueryResult:
        """One query through azure-core's pipeline (the compat path's client), its JSON answer
        read straight into a :class:`LogQueryResult`.

        ``LogsQueryClient`` built model objects of every row (``model_base``) and then
        ``LogsTableRow``s that this adapter converted back to JSON: most of a small query's CPU
        (issue 16, ``bench/profile_proxy.py``). The request is the one it sends (body, ``Prefer``,
        token, request id) and every value comes out as it did (``_row``).
        """
        client = self._for(credential)
        prefer = f"wait={spec.server_timeout_s}"
        if spec.include_statistics:
            prefer += ",include-statistics=true"
        headers = {"Content-Type": "application/json", "Prefer": prefer}
        request_id = request_id_var.get()
        if request_id:
            headers["x-ms-client-request-id"] = request_id  # Azure's correlation
        body = {"query": spec.query, "timespan": spec.timespan.iso() if spec.timespan else None}
        url = self._settings.log_analytics_endpoint + _query_path(target)
        request = HttpRequest("POST", url, content=json.dumps(body).encode(), headers=headers)
        started = time.perf_counter()
        try:
            response = client.send_request(
                request, read_timeout=spec.server_timeout_s + READ_MARGIN_S
            )
            data = response.read()
            if response.status_code != 200:
                AZURE_CALLS.labels("log_analytics", f"http_{response.status_code}").inc()
                raise _azure_error(_http_error(response))
            answer = json.loads(data)
        except ServiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is mapped to the error model
            AZURE_CALLS.labels("log_analytics", "transport_error").inc()
            raise _transport_error(exc) from None
        finally:
            AZURE_LATENCY.labels("log_analytics").observe(time.perf_counter() - started)
        AZURE_CALLS.labels("log_analytics", "ok").inc()
        given = answer.get("error")
        error = None
        if given:  # LogsQueryStatus.PARTIAL: the tables are the partial data
            error = given if isinstance(given, dict) else None
            error = error or {"code": "PartialError", "message": "partial result"}
        statistics = answer.get("statistics")
        return LogQueryResult(
            tables=tuple(_table(t) for t in answer.get("tables") or ()),
            error=error,
            statistics=dict(statistics) if statistics is not None else None,
            response_bytes=len(data),
        )

    # -- pass-through --------------------------------------------------------------------------
    def forward(
        self, credential: TokenCredential, path: str, body: bytes, prefer: str | None
    ) -> RawLogResponse:
        client = self._for(credential)
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
        yield from response.iter_bytes()  # CHUNK_BYTES at a time: the transport's block size
    except (ServiceRequestError, ServiceResponseError, OSError) as exc:
        # Mid-stream the status is already sent: the caller sees a cut body, we log why.
        log.warning("log analytics stream broke off: %s", type(exc).__name__)
    finally:
        response.close()


def _environment(settings: AzureSettings) -> tuple[str, str | None]:
    """The CAs to trust (``ca_location``: the configured bundle, else ``REQUESTS_CA_BUNDLE``/
    ``CURL_CA_BUNDLE``, else certifi's, as a hashed directory) and the proxy requests would
    take from the environment for the endpoint (``environ_proxy``), or None. No ``~/.netrc``:
    the pipeline sets the Authorization header itself."""
    return ca_location(settings.ca_bundle), environ_proxy(settings.log_analytics_endpoint)


def _query_path(target: LogTarget) -> str:
    if target.kind == "workspace":
        return f"/workspaces/{target.id}/query"
    return "/" + target.id.strip("/") + "/query"


def _http_error(response: Any) -> HttpResponseError:
    """The exception LogsQueryClient raised for a non-200 answer (401: the credential's kind,
    which ``_azure_error`` reports like a token Entra refused, as it always did)."""
    if response.status_code == 401:
        return ClientAuthenticationError(response=response)
    return HttpResponseError(response=response)


def _table(table: dict[str, Any]) -> LogTable:
    """One table of Azure's JSON answer, each value as LogsQueryClient gave it and this adapter
    then converted it (``_row``)."""
    columns = tuple((c.get("name"), c.get("type")) for c in table.get("columns") or ())
    types = [t for _, t in columns]
    plain = all(t not in _SDK_TYPED for t in types)
    rows = table.get("rows") or []
    return LogTable(
        name=table.get("name") or "",
        columns=columns,
        rows=[list(row) for row in rows] if plain else [_row(types, row) for row in rows],
    )


# Column types whose values LogsQueryClient changed (``native_col_type``) or this adapter does.
_SDK_TYPED = frozenset({"datetime", "timespan", "guid", "dynamic"})
_WIRE_UTC = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$", re.IGNORECASE)


def _row(types: list[str], row: list[Any]) -> list[Any]:
    values = []
    for kind, value in zip(types, row, strict=False):
        if kind == "datetime" and isinstance(value, str):
            converted = _wire_datetime(value)
            values.append(converted if converted is not None else _sdk_value(kind, value))
        elif kind in _SDK_TYPED:
            values.append(_sdk_value(kind, value))
        else:
            values.append(value)
    return values


def _wire_datetime(value: str) -> str | None:
    """Azure's ``2026-11-30T16:00:00.1234567Z`` as LogsQueryClient's datetime (fraction cut
    to microseconds) then ``_datetime`` printed it; None for any other form (the SDK's path)."""
    match = _WIRE_UTC.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second),
            int((fraction or "")[:6].ljust(6, "0")), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _sdk_value(kind: str, value: Any) -> Any:
    """What LogsQueryClient made of one value (its own ``native_col_type``), then ours."""
    value = native_col_type(kind, value)  # type: ignore[no-untyped-call]
    convert = _CONVERT.get(kind)
    return convert(value) if convert is not None and value is not None else value


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
