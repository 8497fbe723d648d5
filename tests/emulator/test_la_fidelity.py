"""Every answer of the emulated Log Analytics API validates against the official swagger.

OperationalInsights.json (2022-10-27): `queryResults` for 200 query answers, `errorResponse` for
every non-200, `batchResponse` for `$batch`, whose entries carry `batchQueryResults` bodies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.loganalytics import LogAnalyticsLimits, LogAnalyticsService
from tests.emulator.test_la_support import (
    OTHER_WORKSPACE,
    RECORDINGS,
    RESOURCE,
    WORKSPACE,
    assert_valid,
    body_of,
    call,
    make_service,
    validator,
)
from tests.support.reference import require

QUERY_PATH = f"/v1/workspaces/{WORKSPACE}/query"

# (name, limits, path, body, prefer) -> each answer is validated against the swagger.
CASES: list[tuple[str, LogAnalyticsLimits | None, str, Any, str | None]] = [
    ("success", None, QUERY_PATH, {"query": "AppRequests", "timespan": "PT1H"}, None),
    (
        "statistics+render",
        None,
        QUERY_PATH,
        {"query": "AppRequests"},
        "wait=60,include-statistics=true,include-render=true",
    ),
    ("resource", None, f"/v1{RESOURCE}/query", {"query": "requests"}, ""),
    ("partial-rows", LogAnalyticsLimits(max_rows=1), QUERY_PATH, {"query": "AppRequests"}, None),
    (
        "partial-bytes",
        LogAnalyticsLimits(max_response_bytes=400),
        QUERY_PATH,
        {"query": "AppRequests"},
        None,
    ),
    ("syntax-error", None, QUERY_PATH, {"query": "bad"}, None),
    ("semantic-error", None, QUERY_PATH, {"query": "Nope"}, None),
    ("bad-timespan", None, QUERY_PATH, {"query": "AppRequests", "timespan": "x"}, None),
    ("bad-json", None, QUERY_PATH, b"{", None),
    ("path-not-found", None, "/v1/workspaces/bad_workspace_id/query", {"query": "x"}, None),
    ("workspace-not-found", None, f"/v1/workspaces/{OTHER_WORKSPACE}/query", {"query": "x"}, None),
    ("resource-not-found", None, f"/v1{RESOURCE}x/query", {"query": "x"}, None),
    ("rate-limited", LogAnalyticsLimits(rate_limit=0), QUERY_PATH, {"query": "AppRequests"}, None),
]


@pytest.mark.parametrize(
    ("limits", "path", "body", "prefer"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_answer_validates_against_the_swagger(
    limits: LogAnalyticsLimits | None, path: str, body: Any, prefer: str | None
) -> None:
    response = call(make_service(limits, rows=5), path, body, prefer=prefer)
    definition = "queryResults" if response.status_code == 200 else "errorResponse"
    assert_valid(body_of(response), definition)


def test_the_server_timeout_and_forbidden_answers_validate() -> None:
    slow = make_service(LogAnalyticsLimits(latency_s=1.2))
    assert_valid(
        body_of(call(slow, QUERY_PATH, {"query": "AppRequests"}, prefer="wait=1")), "errorResponse"
    )
    service = make_service()
    service.store.add_workspace(OTHER_WORKSPACE, {}, readers=[])
    forbidden = call(service, f"/v1/workspaces/{OTHER_WORKSPACE}/query", {"query": "x"})
    assert forbidden.status_code == 403
    assert_valid(body_of(forbidden), "errorResponse")


def test_a_mixed_batch_validates_as_a_batch_response() -> None:
    service: LogAnalyticsService = make_service(LogAnalyticsLimits(max_rows=2), rows=5)
    batch = {
        "requests": [
            {
                "id": "1",
                "workspace": WORKSPACE,
                "body": {"query": "AppRequests"},
                "headers": {"Prefer": "include-statistics=true,include-render=true"},
            },
            {"id": "2", "workspace": WORKSPACE, "body": {"query": "bad"}},
            {"id": "3", "workspace": "bad_workspace_id", "body": {"query": "x"}},
            {
                "id": "4",
                "workspace": WORKSPACE,
                "body": {"query": "AppRequests"},
                "headers": {"Prefer": "wait=30"},
            },
        ]
    }
    assert_valid(batch, "batchRequest")  # the test's own request is what the SDK sends
    response = body_of(call(service, "/v1/$batch", batch))
    assert_valid(response, "batchResponse")
    statuses = [r["status"] for r in response["responses"]]
    assert statuses == [200, 400, 404, 200]
    assert "error" in response["responses"][0]["body"]  # partial: rows cut at max_rows
    for entry in response["responses"]:
        assert_valid(entry["body"], "batchQueryResults")


def test_a_refused_batch_validates_as_an_error_response() -> None:
    assert_valid(body_of(call(make_service(), "/v1/$batch", {"requests": []})), "errorResponse")


def test_the_schema_adaptation_accepts_azures_own_recorded_answers() -> None:
    # Guards the one change made to the swagger (row cells may be any JSON value): every real
    # recorded body must validate, so the tests above hold the emulator to Azure's standard.
    checked = 0
    for path in sorted(require(RECORDINGS).glob("*.json")):
        for entry in json.loads(path.read_text())["Entries"]:
            if "api.loganalytics.io" not in entry["RequestUri"]:
                continue
            definition = "queryResults" if entry["StatusCode"] == 200 else "errorResponse"
            errors = list(validator(definition).iter_errors(entry["ResponseBody"]))
            assert not errors, (path.name, errors[0].message)
            checked += 1
    assert checked >= 8
