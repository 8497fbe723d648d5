"""Issue 10 item 4: a log query whose audit record cannot be written does not run.

Text no database can store (a lone surrogate from a ``"\\ud800"`` escape, a NUL) is refused with
a 400 on every route, before any Azure call and before any audit event: typed query, telemetry
views, the Log Analytics-compatible endpoint (Azure's error shape) and its ``$batch``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import EmulatorHandle, Sandbox
from service.services import audit_queue
from service.services.runtime import Runtime
from tests.integration.log_support import Wired, wire
from tests.support.api import ApiClient, World

# Raw JSON text: json.dumps would escape the same way; written out to show what is sent.
BAD_QUERIES = {
    "lone surrogate": 'AppRequests | where Name == "\\ud800" | take 1',
    "NUL": 'AppRequests | where Name == "\\u0000" | take 1',
}


@pytest.fixture(autouse=True)
def _flush(runtime: Runtime) -> Iterator[None]:
    yield
    audit_queue.flush(runtime)


@pytest.fixture
def wired(api: ApiClient, world: World, admin_key: str, sandbox: Sandbox) -> Wired:
    return wire(api, world, admin_key, sandbox, seed=False)


def _raw(document_text: str) -> bytes:
    return document_text.encode()


def _query_events(api: ApiClient, w: Wired, runtime: Runtime) -> list[dict[str, Any]]:
    audit_queue.flush(runtime)
    r = api.get("/v1/audit-events", w.reader, query_string={"limit": "200"})
    assert r.status_code == 200, r.get_data(as_text=True)
    return [e for e in r.get_json()["items"] if e["action"].startswith("logs.")]


def _no_effect(
    api: ApiClient, w: Wired, runtime: Runtime, emulator: EmulatorHandle, mark: int
) -> None:
    assert emulator.requests(since=mark) == []  # not even a token request
    assert _query_events(api, w, runtime) == []


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_typed_query_with_unstorable_text_is_400_and_never_runs(
    api: ApiClient, wired: Wired, runtime: Runtime, emulator: EmulatorHandle, case: str
) -> None:
    mark = emulator.bookmark()
    body = _compat_body(BAD_QUERIES[case])
    r = api.post(
        wired.base + "/logs/query", wired.reader, data=_raw(body), content_type="application/json"
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.get_json()["errors"][0]["field"] == "body.query"
    _no_effect(api, wired, runtime, emulator, mark)


def _compat_body(query: str) -> str:
    # query holds JSON escapes (\\ud800) that must reach the service as escapes.
    return '{"query": "' + query.replace('"', '\\"').replace("\\\\", "\\") + '"}'


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_compat_query_with_unstorable_text_is_400_in_azures_shape(
    api: ApiClient, wired: Wired, runtime: Runtime, emulator: EmulatorHandle, case: str
) -> None:
    ws = wired.box.log_analytics_workspace_id
    mark = emulator.bookmark()
    r = api.call(
        "POST",
        f"/loganalytics/v1/workspaces/{ws}/query",
        wired.reader,
        validate=False,
        data=_raw(_compat_body(BAD_QUERIES[case])),
        content_type="application/json",
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["code"] == "BadArgumentError"
    assert "query" in error["message"]
    _no_effect(api, wired, runtime, emulator, mark)


@pytest.mark.parametrize("case", sorted(BAD_QUERIES))
def test_batch_with_unstorable_text_is_400_and_nothing_runs(
    api: ApiClient, wired: Wired, runtime: Runtime, emulator: EmulatorHandle, case: str
) -> None:
    ws = wired.box.log_analytics_workspace_id
    good = json.dumps({"id": "1", "workspace": ws, "body": {"query": "AppRequests | take 1"}})
    bad = f'{{"id": "2", "workspace": "{ws}", "body": {_compat_body(BAD_QUERIES[case])}}}'
    mark = emulator.bookmark()
    r = api.call(
        "POST",
        "/loganalytics/v1/$batch",
        wired.reader,
        validate=False,
        data=_raw('{"requests": [' + good + ", " + bad + "]}"),
        content_type="application/json",
    )
    # The whole batch is refused: no entry runs without its audit record being writable.
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"]["code"] == "BadArgumentError"
    _no_effect(api, wired, runtime, emulator, mark)


def test_view_parameter_with_a_nul_is_400_and_never_runs(
    api: ApiClient, wired: Wired, runtime: Runtime, emulator: EmulatorHandle
) -> None:
    mark = emulator.bookmark()
    r = api.get(wired.base + "/endpoints/scorer-a/telemetry/traces?contains=a%00b", wired.reader)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["errors"][0]["field"] == "query.contains"
    _no_effect(api, wired, runtime, emulator, mark)


def test_deeply_nested_json_on_loganalytics_is_400_not_500(
    api: ApiClient, wired: Wired, emulator: EmulatorHandle
) -> None:
    ws = wired.box.log_analytics_workspace_id
    for raw in (b"[" * 50_000 + b"]" * 50_000, b'{"query": ' + b"[" * 100 + b"]" * 100 + b"}"):
        r = api.call(
            "POST",
            f"/loganalytics/v1/workspaces/{ws}/query",
            wired.reader,
            validate=False,
            data=raw,
            content_type="application/json",
        )
        assert r.status_code == 400, r.get_data(as_text=True)
        assert r.get_json()["error"]["code"] == "BadArgumentError"


def test_an_unstorable_audit_row_is_refused_loudly_not_queued(runtime: Runtime) -> None:
    """The last line: a row that would poison the writer's batch is never queued."""
    queue = audit_queue.AuditQueue(lambda rows: None, capacity=10)
    row = {"action": "logs.compat", "after": {"query": "a\ud800"}}
    with pytest.raises(audit_queue.ValidationFailed):
        queue.put(row)
    assert queue.pending() == 0
