"""The azureml adapter's error model, from the SDK's own exception types (no I/O)."""

from __future__ import annotations

import pytest
import requests

from service.adapters.azureml import map_azureml_error
from service.errors import AzureCallFailed, AzureRejected, CredentialRejected, NotFound


def _bad_response(status: int, headers: str = "{}") -> Exception:
    from azureml.exceptions import WebserviceException

    return WebserviceException(
        "Received bad response from Model Management Service:\n"
        f"Response Code: {status}\nHeaders: {headers}\nContent: b'...'"
    )


def test_a_429_is_temporary_and_keeps_the_servers_retry_after() -> None:
    error = map_azureml_error(_bad_response(429, "{'Retry-After': '7'}"), "update")
    assert isinstance(error, AzureCallFailed)
    assert error.retry_after_s == 7


@pytest.mark.parametrize("status", [500, 502, 503, 504, 409])
def test_server_errors_and_conflicts_are_temporary(status: int) -> None:
    error = map_azureml_error(_bad_response(status), "update")
    assert isinstance(error, AzureCallFailed)
    assert error.retry_after_s is None


def test_a_bad_request_is_permanent() -> None:
    assert isinstance(map_azureml_error(_bad_response(400), "update"), AzureRejected)


def test_access_refused_is_a_credential_problem() -> None:
    assert isinstance(map_azureml_error(_bad_response(401), "list"), CredentialRejected)


def test_a_missing_web_service_is_not_found() -> None:
    from azureml.exceptions import WebserviceException

    error = map_azureml_error(WebserviceException("WebserviceNotFound: no such"), "read")
    assert isinstance(error, NotFound)


def test_a_refused_connection_is_temporary() -> None:
    error = map_azureml_error(requests.ConnectionError("refused"), "list")
    assert isinstance(error, AzureCallFailed)
