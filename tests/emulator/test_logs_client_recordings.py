"""Real Azure responses replayed by the emulator parse through LogsQueryClient as upstream expects.

Each recording under ../shared/reference/azure/.../azure-monitor-query/tests/recordings holds
the exact status, headers and body api.loganalytics.io answered. The emulator serves that
answer as a canned response for the sandbox's workspace; the assertions are those of the
upstream test that made the recording (test_logs_client.py, test_logs_response.py,
test_logs_timespans.py, test_exceptions.py in Azure/azure-sdk-for-python).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential
from azure.monitor.query import LogsBatchQuery, LogsQueryClient, LogsQueryResult, LogsQueryStatus

from emulator.loganalytics import LogAnalyticsService
from emulator.testing import EmulatorHandle, Sandbox
from emulator.tokens import LOG_ANALYTICS_AUDIENCE
from tests.emulator.test_la_support import recording


@pytest.fixture
def client(emulator: EmulatorHandle, sandbox: Sandbox) -> Iterator[LogsQueryClient]:
    """A client for the sandbox; retries off unless a test asks for them."""
    logs = LogsQueryClient(
        sandbox.credential(),
        endpoint=emulator.logs_endpoint,
        audience=LOG_ANALYTICS_AUDIENCE,
        retry_total=0,
    )
    yield logs
    logs.close()


def _replay(emulator: EmulatorHandle, sandbox: Sandbox, name: str) -> dict[str, Any]:
    """Serve the recording's data-plane answer for its query on the sandbox's workspace."""
    entry = next(e for e in recording(name)["Entries"] if "api.loganalytics.io" in e["RequestUri"])
    service: LogAnalyticsService = emulator.state.log_analytics
    service.store.set_canned_response(
        f"/workspaces/{sandbox.log_analytics_workspace_id}/query",
        status=entry["StatusCode"],
        body=entry["ResponseBody"],
        headers=entry["ResponseHeaders"],
        query=entry["RequestBody"]["query"],
    )
    return entry


def _query(client: LogsQueryClient, sandbox: Sandbox, entry: dict[str, Any], **kwargs: Any) -> Any:
    assert sandbox.log_analytics_workspace_id is not None
    kwargs.setdefault("timespan", None)
    return client.query_workspace(
        sandbox.log_analytics_workspace_id, entry["RequestBody"]["query"], **kwargs
    )


def test_single_query(emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient) -> None:
    entry = _replay(emulator, sandbox, "test_logs_single_query")
    response = _query(client, sandbox, entry)
    assert isinstance(response, LogsQueryResult)
    assert response.tables[0].columns == ["TimeGenerated", "_ResourceId", "avgRequestDuration"]
    assert response.tables[0].columns_types == ["datetime", "string", "real"]
    assert response.tables[0].rows == []


def test_single_query_with_statistics(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_logs_single_query_with_statistics")
    response = _query(client, sandbox, entry, include_statistics=True)
    assert response.statistics == entry["ResponseBody"]["statistics"]
    assert response.visualization is None


def test_single_query_with_visualization(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_logs_single_query_with_visualization")
    response = _query(client, sandbox, entry, include_visualization=True)
    assert response.visualization == entry["ResponseBody"]["render"]
    assert response.statistics is None


def test_server_timeout_is_retried_like_the_recording_then_raised(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    entry = _replay(emulator, sandbox, "test_logs_server_timeout")
    # The recording holds four 504s: the first try and azure-core's three default retries.
    logs = LogsQueryClient(
        sandbox.credential(),
        endpoint=emulator.logs_endpoint,
        audience=LOG_ANALYTICS_AUDIENCE,
        retry_total=3,
        retry_backoff_factor=0,
    )
    before = emulator.bookmark()
    with pytest.raises(HttpResponseError) as caught:
        _query(logs, sandbox, entry, server_timeout=1)
    logs.close()
    assert caught.value.status_code == 504
    assert "Gateway timeout" in caught.value.message
    assert caught.value.response is not None
    assert caught.value.response.headers["Preference-Applied"] == "wait=1"
    attempts = [r for r in emulator.requests("la.", since=before) if r.status == 504]
    assert len(attempts) == 4


def test_single_query_additional_workspaces(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_logs_single_query_additional_workspaces")
    response = _query(client, sandbox, entry, additional_workspaces=[sandbox.workspace.name])
    assert len(response.tables[0].rows) == 2
    assert [list(row) for row in response.tables[0].rows] == entry["ResponseBody"]["tables"][0][
        "rows"
    ]


def test_query_result_row_type(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_logs_query_result_row_type")
    response = _query(client, sandbox, entry)
    recorded = entry["ResponseBody"]["tables"][0]
    assert response.tables[0].columns == [c["name"] for c in recorded["columns"]]
    assert response.tables[0].columns_types == [c["type"] for c in recorded["columns"]]
    for table in response:
        assert table.rows == []


def test_query_response_types(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_query_response_types")
    row = _query(client, sandbox, entry).tables[0].rows[0]
    assert row[0] == "hello"
    assert row[1] is True
    assert row[2] == datetime(2000, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert (type(row[3]), row[3]) == (int, 100)
    assert (type(row[4]), row[4]) == (int, 101)
    assert (type(row[5]), row[5]) == (float, 102.1)


def test_query_start_and_end_time(
    emulator: EmulatorHandle, sandbox: Sandbox, client: LogsQueryClient
) -> None:
    entry = _replay(emulator, sandbox, "test_query_start_and_end_time")
    sent: list[str] = []
    response = _query(
        client,
        sandbox,
        entry,
        timespan=(datetime(2022, 11, 5, tzinfo=UTC), datetime(2022, 11, 8, tzinfo=UTC)),
        raw_request_hook=lambda request: sent.append(request.http_request.body),
    )
    assert '"timespan": "2022-11-05T00:00:00.000Z/2022-11-08T00:00:00.000Z"' in sent[0]
    assert response.status == LogsQueryStatus.SUCCESS
    assert len(response.tables[0].columns) == len(entry["ResponseBody"]["tables"][0]["columns"])


def test_single_query_fatal_exception_is_answered_by_the_emulator_itself(
    emulator: EmulatorHandle, client: LogsQueryClient
) -> None:
    # Not canned: the emulator's own 404 must carry the recorded code and message.
    recorded = recording("test_logs_single_query_fatal_exception")["Entries"][-1]
    with pytest.raises(HttpResponseError) as caught:
        client.query_workspace("bad_workspace_id", "AppRequests", timespan=None)
    assert caught.value.status_code == recorded["StatusCode"]
    assert caught.value.error is not None
    assert caught.value.error.code == recorded["ResponseBody"]["error"]["code"]
    assert caught.value.error.message == recorded["ResponseBody"]["error"]["message"]


def test_batch_query_with_a_bad_secret_fails_at_the_token_as_recorded(
    emulator: EmulatorHandle, sandbox: Sandbox
) -> None:
    recorded = recording("test_logs_batch_query_fatal_exception")["Entries"][-1]
    credential = ClientSecretCredential(
        sandbox.tenant_id,
        sandbox.client_id,
        "bad_secret",
        authority=emulator.authority,
        disable_instance_discovery=True,
    )
    logs = LogsQueryClient(
        credential, endpoint=emulator.logs_endpoint, audience=LOG_ANALYTICS_AUDIENCE, retry_total=0
    )
    before = emulator.bookmark()
    assert sandbox.log_analytics_workspace_id is not None
    with pytest.raises(HttpResponseError) as caught:
        logs.query_batch(
            [LogsBatchQuery(sandbox.log_analytics_workspace_id, "AppRequests", timespan=None)]
        )
    logs.close()
    assert isinstance(caught.value, ClientAuthenticationError)
    assert recorded["StatusCode"] == 401
    assert recorded["ResponseBody"]["error"] == "invalid_client"
    assert recorded["ResponseBody"]["error_description"].split(":")[0] in str(caught.value)
    assert emulator.requests("la.", since=before) == []  # the batch was never sent
