"""Azure's Retry-After reaches the error model whichever form it takes (RFC 9110: seconds or an
HTTP-date), through the real azure-core exception and response types (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import HttpRequest, RequestsTransportResponse

from service.adapters import data_export, logs
from service.errors import AzureCallFailed, AzureQueryError


def _throttled(retry_after: str) -> HttpResponseError:
    raw = requests.Response()
    raw.status_code = 429
    raw.headers["Retry-After"] = retry_after
    raw.headers["Content-Type"] = "application/json"
    raw._content = b'{"error": {"code": "TooManyRequests", "message": "slow down"}}'
    response = RequestsTransportResponse(HttpRequest("GET", "https://azure.example/"), raw)
    return HttpResponseError(response=response)


def _in_two_minutes() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)


@pytest.mark.parametrize("header", ["120", "in-two-minutes"])
def test_the_log_query_adapter_reads_seconds_and_http_dates(header: str) -> None:
    value = _in_two_minutes() if header == "in-two-minutes" else header
    error = logs._azure_error(_throttled(value))
    assert isinstance(error, AzureQueryError)
    assert error.retry_after_s is not None
    assert 110 <= error.retry_after_s <= 120


@pytest.mark.parametrize("header", ["120", "in-two-minutes"])
def test_the_data_export_adapter_reads_seconds_and_http_dates(header: str) -> None:
    value = _in_two_minutes() if header == "in-two-minutes" else header
    error = data_export._azure_error("put rule", _throttled(value))
    assert isinstance(error, AzureCallFailed)
    assert error.retry_after_s is not None
    assert 110 <= error.retry_after_s <= 120


def test_an_unreadable_retry_after_leaves_the_wait_to_our_backoff() -> None:
    error = logs._azure_error(_throttled("inf"))
    assert isinstance(error, AzureQueryError)
    assert error.retry_after_s is None
