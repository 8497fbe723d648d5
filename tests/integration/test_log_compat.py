"""The Log Analytics-compatible endpoint: an unmodified LogsQueryClient, pointed at the service
(over HTTPS) with an API key as its token, gets what it gets from the emulator directly."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import LogsBatchQuery, LogsQueryClient, LogsQueryStatus
from flask import Flask

from emulator.telemetry import large_table
from emulator.testing import EmulatorHandle, Sandbox
from emulator.tls import CertificateAuthority
from service.adapters.logs import CHUNK_BYTES, AzureLogs
from service.config import LogQuerySettings
from service.db.session import Database
from service.services import audit_queue
from service.services.runtime import Runtime
from tests.api.helpers import audit_events
from tests.integration.log_support import serve_https, wire
from tests.support.api import ApiClient, World, emulator_azure_settings

QUERY = "AppRequests | summarize n = count(), avg_ms = avg(DurationMs) by AppRoleName"


class ApiKeyCredential:
    """A TokenCredential whose token is an API key of this service."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.key, int(time.time()) + 3600)


@pytest.fixture(autouse=True)
def _no_pending_query_audit(runtime: Runtime) -> Iterator[None]:
    """Query audit events are written by a background thread: none is left over for later tests."""
    yield
    audit_queue.flush(runtime)


@pytest.fixture(scope="module")
def service_url(
    app: Flask, emulator_ca: CertificateAuthority, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with serve_https(app, emulator_ca, tmp_path_factory.mktemp("svc-tls")) as url:
        yield url


def client(url: str, credential: Any) -> LogsQueryClient:
    return LogsQueryClient(credential, endpoint=url, audience="https://api.loganalytics.io",
                           retry_total=0)  # fmt: skip


def rows(result: Any) -> list[list[Any]]:
    return [list(r) for table in result.tables for r in table.rows]


def test_an_unmodified_logs_query_client_gets_the_same_result_through_the_service(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, emulator: EmulatorHandle,
    service_url: str, database: Database,
) -> None:  # fmt: skip
    w = wire(api, world, admin_key, sandbox)
    ws_id, ai_id = sandbox.log_analytics_workspace_id, sandbox.app_insights_resource_id
    assert ws_id is not None
    assert ai_id is not None
    ours = client(f"{service_url}/loganalytics", ApiKeyCredential(w.reader))
    direct = client(emulator.logs_endpoint, sandbox.credential())

    got = ours.query_workspace(ws_id, QUERY, timespan=None, include_statistics=True)
    want = direct.query_workspace(ws_id, QUERY, timespan=None)
    assert got.status == want.status == LogsQueryStatus.SUCCESS
    assert rows(got) == rows(want)
    assert got.tables[0].columns == want.tables[0].columns

    classic = "requests | summarize n = count() by cloud_RoleName"
    got = ours.query_resource(ai_id, classic, timespan=None)
    assert rows(got) == rows(direct.query_resource(ai_id, classic, timespan=None))

    batch = [LogsBatchQuery(ws_id, QUERY, timespan=None),
             LogsBatchQuery(ws_id, "AppRequests | where", timespan=None)]  # fmt: skip
    first, second = ours.query_batch(batch)
    assert rows(first) == rows(want)
    assert second.__class__.__name__ == "LogsQueryError"
    assert second.code == "BadArgumentError"

    events = api.get("/v1/audit-events", w.reader, query_string={"action": "logs.compat"})
    actions = events.get_json()["items"]
    assert sorted(e["after"]["status"] for e in actions) == [
        "error",
        "success",
        "success",
        "success",
    ]


def test_a_foreign_or_unknown_workspace_is_a_404_in_azures_shape_and_not_audited(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, emulator: EmulatorHandle,
    service_url: str,
) -> None:  # fmt: skip
    victim = wire(api, world, admin_key, sandbox)
    other = wire(api, world, admin_key, emulator.sandbox())
    ours = client(f"{service_url}/loganalytics", ApiKeyCredential(other.reader))
    assert sandbox.log_analytics_workspace_id
    assert sandbox.app_insights_resource_id
    for call in (
        lambda: ours.query_workspace(sandbox.log_analytics_workspace_id, QUERY, timespan=None),
        lambda: ours.query_resource(sandbox.app_insights_resource_id, QUERY, timespan=None),
        lambda: ours.query_workspace("00000000-0000-0000-0000-000000000000", QUERY, timespan=None),
    ):
        with pytest.raises(HttpResponseError) as caught:
            call()
        assert caught.value.status_code == 404
        assert caught.value.error.code in ("WorkspaceNotFoundError", "ResourceNotFoundError")
    (entry,) = ours.query_batch(
        [LogsBatchQuery(sandbox.log_analytics_workspace_id, QUERY, timespan=None)]
    )
    assert entry.code == "WorkspaceNotFoundError"
    for key in (other.reader, victim.reader):
        events = api.get("/v1/audit-events", key, query_string={"action": "logs.compat"})
        assert events.get_json()["items"] == []


def test_a_bad_key_and_a_control_command_get_azures_error_shape(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, service_url: str
) -> None:
    w = wire(api, world, admin_key, sandbox, seed=False)
    ws_id = sandbox.log_analytics_workspace_id
    assert ws_id is not None
    with pytest.raises(HttpResponseError) as caught:
        client(f"{service_url}/loganalytics", ApiKeyCredential("nope")).query_workspace(
            ws_id, QUERY, timespan=None
        )
    assert caught.value.status_code == 401
    with pytest.raises(HttpResponseError) as caught:
        client(f"{service_url}/loganalytics", ApiKeyCredential(w.reader)).query_workspace(
            ws_id, ".show tables", timespan=None
        )
    assert (caught.value.status_code, caught.value.error.code) == (400, "BadArgumentError")


def test_fifty_concurrent_callers_never_put_more_than_five_queries_in_flight_at_azure(
    app: Flask, database: Database, world: World, admin_key: str, fresh_emulator: EmulatorHandle,
) -> None:  # fmt: skip
    from service.app import create_app
    from tests.support.api import ApiClient as Client

    settings = app.extensions["amlcp.runtime"].settings.with_overrides(
        azure=emulator_azure_settings(fresh_emulator),
        log_query=LogQuerySettings(queue_timeout_s=0.5, coalesce=False),
    )
    own = create_app(settings, database=database)
    box = fresh_emulator.sandbox()
    fresh_emulator.state.log_analytics.limits.latency_s = 0.05
    with own.test_client() as http:
        w = wire(Client(http), world, admin_key, box)
    keys = [world.key("reader", w.tenant) for _ in range(5)]

    def one(i: int) -> int:
        with own.test_client() as http:
            r = http.post(f"{w.base}/logs/query", json={"query": f"AppRequests | take {i}"},
                          headers={"Authorization": f"Bearer {keys[i % 5]}"})  # fmt: skip
            assert r.status_code in (200, 429), r.get_data(as_text=True)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
            return r.status_code

    with ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(one, range(50)))
    stats = fresh_emulator.state.log_analytics.stats()
    assert stats["max_in_flight_per_identity"] <= 5
    assert stats["throttled"] == 0  # Azure never had to queue or refuse: we shaped first
    assert statuses.count(200) >= 5
    assert threading.active_count() < 200
    audit_queue.flush(own.extensions["amlcp.runtime"])  # this app's queued audit events


def assert_azure_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The answer is Azure's error shape (never problem+json) with this status (and code)."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.headers["Content-Type"].startswith("application/json"), text
    body = response.get_json()
    assert set(body) == {"error"}, text
    error = body["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    if code is not None:
        assert error["code"] == code, text
    return dict(error)


def test_every_error_under_loganalytics_is_in_azures_shape(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox
) -> None:
    w = wire(api, world, admin_key, sandbox, seed=False)
    ws = sandbox.log_analytics_workspace_id
    query = f"/loganalytics/v1/workspaces/{ws}/query"
    for path in (
        "/loganalytics",
        "/loganalytics/",
        f"/loganalytics/workspaces/{ws}/query",  # the /v1 is missing
        f"/loganalytics/v1/workspaces/{ws}%0A/query",
        "/loganalytics/v1/workspaces/nope/query",
        f"/loganalytics/v1/workspaces/{ws}/metadata",
    ):
        r = api.call("POST", path, w.reader, json={"query": "AppRequests"}, validate=False)
        assert_azure_error(r, 404, "PathNotFoundError")
    for method, path, allow in (
        ("DELETE", query, "GET, POST"),
        ("PUT", query, "GET, POST"),
        ("GET", "/loganalytics/v1/$batch", "POST"),
        ("PROPFIND", query, None),  # a method no route knows: werkzeug's routing 405
    ):
        r = api.call(method, path, w.reader, validate=False)
        assert_azure_error(r, 405, "MethodNotAllowedError")
        if allow is not None:
            assert r.headers["Allow"] == allow
        else:
            assert "POST" in r.headers["Allow"]
    r = api.call("POST", query, None, json={"query": "AppRequests"}, validate=False)
    assert_azure_error(r, 401, "AuthorizationRequiredError")
    big = b'{"query": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    r = api.call("POST", query, w.reader, data=big, content_type="application/json",
                 validate=False)  # fmt: skip
    assert_azure_error(r, 413, "PayloadTooLargeError")
    deep = b'{"query": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for path in (query, "/loganalytics/v1/$batch"):
        r = api.call("POST", path, w.reader, data=deep, content_type="application/json",
                     validate=False)  # fmt: skip
        assert_azure_error(r, 400, "BadArgumentError")
    surrogate = b'{"query": "AppRequests | where Name == \\"\\ud800\\""}'
    r = api.call("POST", query, w.reader, data=surrogate, content_type="application/json",
                 validate=False)  # fmt: skip
    assert_azure_error(r, 400, "BadArgumentError")
    lone = "AppRequests | where Name == '\ud800'"
    batch = {"requests": [{"id": "1", "workspace": ws, "body": {"query": lone}}]}
    # Text that is not Unicode is refused for the whole request, the same way on every route
    # (issue 10 item 4), before any entry runs; in Azure's shape here.
    r = api.call("POST", "/loganalytics/v1/$batch", w.reader, json=batch, validate=False)
    assert_azure_error(r, 400, "BadArgumentError")
    assert "unpaired surrogate" in r.get_json()["error"]["message"]
    events = api.get("/v1/audit-events", w.reader, query_string={"action": "logs.compat"})
    assert events.get_json()["items"] == []  # nothing ran, so nothing to audit


def test_a_get_query_with_query_and_timespan_in_the_query_string_works(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox
) -> None:
    w = wire(api, world, admin_key, sandbox)
    ws, ai = sandbox.log_analytics_workspace_id, sandbox.app_insights_resource_id
    assert ws is not None
    assert ai is not None
    r = api.call("GET", f"/loganalytics/v1/workspaces/{ws}/query", w.reader, validate=False,
                 query_string={"query": "AppRequests | count", "timespan": "P1D"})  # fmt: skip
    assert r.status_code == 200, r.get_data(as_text=True)
    (table,) = r.get_json()["tables"]
    assert table["rows"][0][0] > 0
    r = api.call("GET", f"/loganalytics/v1{ai}/query", w.reader, validate=False,
                 query_string={"query": "requests | count", "timespan": "PT1H"})  # fmt: skip
    assert r.status_code == 200, r.get_data(as_text=True)
    r = api.call("GET", f"/loganalytics/v1/workspaces/{ws}/query", w.reader, validate=False,
                 query_string={"timespan": "PT1H"})  # fmt: skip
    assert_azure_error(r, 400, "BadArgumentError")


def test_a_streamed_answer_is_audited_when_the_call_returns_even_if_its_body_is_never_read(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, database: Database
) -> None:
    """The audit event of a streamed answer is written when the stream ends; the test client
    ends it before returning (as a WSGI server does), so it cannot land in a later test: an
    unread answer used to end whenever the collector reached it (CI's api-key fingerprint)."""
    w = wire(api, world, admin_key, sandbox)
    ws = sandbox.log_analytics_workspace_id
    r = api.call("GET", f"/loganalytics/v1/workspaces/{ws}/query", w.reader, validate=False,
                 query_string={"query": "AppRequests | count", "timespan": "P1D"})  # fmt: skip
    assert r.status_code == 200
    audit_queue.flush_all()
    events = audit_events(database, request_id=r.headers["X-Request-ID"])
    assert [e.action for e in events] == ["logs.compat"]
    assert events[0].after["status"] == "success"


def test_a_batch_answers_each_entry_even_when_some_touch_another_tenants_workspace(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox, emulator: EmulatorHandle,
    service_url: str,
) -> None:  # fmt: skip
    ours = wire(api, world, admin_key, sandbox)
    theirs_box = emulator.sandbox()
    wire(api, world, admin_key, theirs_box)
    mine, theirs = sandbox.log_analytics_workspace_id, theirs_box.log_analytics_workspace_id
    assert mine is not None
    assert theirs is not None
    batch = {
        "requests": [
            {"id": "own", "workspace": mine, "body": {"query": "AppRequests | count"}},
            {"id": "foreign", "workspace": theirs, "body": {"query": "AppRequests | count"}},
            {"id": "cross", "workspace": mine,
             "body": {"query": "AppRequests | count", "workspaces": [theirs]}},
            {"id": "kql", "workspace": mine, "body": {"query": "AppRequests | wher"}},
            {"id": "nobody", "workspace": mine},
            {"id": "after", "workspace": mine, "body": {"query": "AppRequests | take 1"}},
        ]
    }  # fmt: skip
    r = api.call("POST", "/loganalytics/v1/$batch", ours.reader, json=batch, validate=False)
    assert r.status_code == 200, r.get_data(as_text=True)
    answers = {a["id"]: a for a in r.get_json()["responses"]}
    assert list(answers) == ["own", "foreign", "cross", "kql", "nobody", "after"]
    assert answers["own"]["status"] == answers["after"]["status"] == 200
    assert answers["own"]["body"]["tables"][0]["rows"][0][0] > 0
    for entry, status, code in (
        ("foreign", 404, "WorkspaceNotFoundError"),
        ("cross", 404, "WorkspaceNotFoundError"),
        ("kql", 400, "BadArgumentError"),
        ("nobody", 400, "BadArgumentError"),
    ):
        assert answers[entry]["status"] == status, answers[entry]
        assert answers[entry]["body"]["error"]["code"] == code
    # The envelope itself must be a batch: anything else is refused whole, in Azure's shape.
    for payload in ({"requests": "x"}, {"requests": [1]}, {"requests": []}, [1],
                    {"requests": [{"id": "a"}, {"id": "a"}]}):  # fmt: skip
        r = api.call("POST", "/loganalytics/v1/$batch", ours.reader, json=payload,
                     validate=False)  # fmt: skip
        assert_azure_error(r, 400, "BadArgumentError")


def test_a_workspaces_property_that_is_not_a_list_is_refused(
    api: ApiClient, world: World, admin_key: str, sandbox: Sandbox
) -> None:
    w = wire(api, world, admin_key, sandbox, seed=False)
    query = f"/loganalytics/v1/workspaces/{sandbox.log_analytics_workspace_id}/query"
    for workspaces in ({}, "", 0, False, [1]):
        body = {"query": "AppRequests", "workspaces": workspaces}
        r = api.call("POST", query, w.reader, json=body, validate=False)
        assert_azure_error(r, 400, "BadArgumentError")


def test_a_streamed_answer_is_read_in_large_blocks_not_the_transports_4_kib(
    emulator: EmulatorHandle,
) -> None:
    """azure-core's ``iter_bytes`` ignores the chunk size it is given and reads its transport's
    block size (4 KiB by default): a 50 MB answer was 12,500 reads and TLS sends through Python
    (issue 16, P2). The adapter's transport reads ``CHUNK_BYTES`` at a time."""
    box = emulator.sandbox()
    emulator.state.telemetry.add_workspace(
        box.log_analytics_workspace_id, {"AppTraces": large_table(2_000_000)}
    )
    adapter = AzureLogs(emulator_azure_settings(emulator))
    try:
        answer = adapter.forward(
            box.credential(),
            f"/workspaces/{box.log_analytics_workspace_id}/query",
            b'{"query": "AppTraces"}',
            None,
        )
        sizes = [len(chunk) for chunk in answer.chunks]
    finally:
        adapter.close()
    assert answer.status == 200
    assert sum(sizes) > 1_000_000
    assert max(sizes[:-1]) == CHUNK_BYTES
    assert len(sizes) <= sum(sizes) // CHUNK_BYTES + 1
