"""Routes, answers and limits of the emulated Log Analytics API, called through `handle`."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from emulator.loganalytics import LogAnalyticsLimits
from tests.emulator.test_la_support import (
    OTHER_WORKSPACE,
    RESOURCE,
    WORKSPACE,
    body_of,
    call,
    make_service,
    requests_table,
)

QUERY_PATH = f"/v1/workspaces/{WORKSPACE}/query"


def test_a_workspace_query_answers_200_with_typed_tables() -> None:
    response = call(make_service(), QUERY_PATH, {"query": "AppRequests", "timespan": "PT1H"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "Preference-Applied" not in response.headers
    (table,) = body_of(response)["tables"]
    assert table["name"] == "PrimaryResult"
    assert table["columns"][0] == {"name": "TimeGenerated", "type": "datetime"}
    assert len(table["rows"]) == 3


def test_the_workspace_id_matches_in_any_case() -> None:
    path = f"/v1/workspaces/{WORKSPACE.upper()}/query"
    response = call(make_service(), path, {"query": "AppRequests"})
    assert response.status_code == 200


def test_get_takes_the_query_from_the_query_string() -> None:
    response = call(
        make_service(),
        QUERY_PATH,
        method="GET",
        query_string={"query": "AppRequests", "timespan": "P1D"},
    )
    assert response.status_code == 200
    assert len(body_of(response)["tables"][0]["rows"]) == 3


@pytest.mark.parametrize(
    "path",
    [
        f"/v1{RESOURCE}/query",
        f"/v1{RESOURCE.upper().replace('/SUBSCRIPTIONS', '/subscriptions')}/query",
        "/v1/" + quote(RESOURCE, safe="") + "/query",
    ],
    ids=["plain", "other-case", "percent-encoded"],
)
def test_a_resource_query_finds_the_resource_however_its_id_is_spelled(path: str) -> None:
    response = call(make_service(), path, {"query": "requests"})
    assert response.status_code == 200, body_of(response)
    assert len(body_of(response)["tables"][0]["rows"]) == 2


def test_an_unknown_route_is_a_path_not_found_error() -> None:
    for path in ["/v1/workspaces", "/v1/nothing", f"/v1/workspaces/{WORKSPACE}/metadata"]:
        response = call(make_service(), path, {"query": "AppRequests"})
        assert response.status_code == 404
        assert body_of(response)["error"]["code"] == "PathNotFoundError"


def test_a_malformed_workspace_id_is_a_path_not_found_error_as_recorded() -> None:
    response = call(make_service(), "/v1/workspaces/bad_workspace_id/query", {"query": "x"})
    assert response.status_code == 404
    error = body_of(response)["error"]
    assert error["code"] == "PathNotFoundError"
    assert error["message"] == "The requested path does not exist"
    assert error["correlationId"]


def test_an_unknown_workspace_and_resource_answer_404() -> None:
    service = make_service()
    response = call(service, f"/v1/workspaces/{OTHER_WORKSPACE}/query", {"query": "x"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (
        404,
        "WorkspaceNotFoundError",
    )
    response = call(service, f"/v1{RESOURCE}-gone/query", {"query": "x"})
    assert (response.status_code, body_of(response)["error"]["code"]) == (
        404,
        "ResourceNotFoundError",
    )


def test_an_identity_outside_the_readers_gets_insufficient_access() -> None:
    service = make_service()
    service.store.add_workspace(
        OTHER_WORKSPACE, {"AppRequests": requests_table()}, readers=["sp-reader"]
    )
    path = f"/v1/workspaces/{OTHER_WORKSPACE}/query"
    assert call(service, path, {"query": "AppRequests"}, identity="sp-reader").status_code == 200
    denied = call(service, path, {"query": "AppRequests"}, identity="sp-other")
    assert denied.status_code == 403
    assert body_of(denied)["error"]["code"] == "InsufficientAccessError"


@pytest.mark.parametrize(
    ("body", "target"),
    [
        (b"{not json", "body"),
        ([1, 2], "body"),
        ({"timespan": "PT1H"}, "query"),
        ({"query": "AppRequests", "timespan": "P1M"}, "timespan"),
        ({"query": "AppRequests", "workspaces": "abc"}, "workspaces"),
    ],
)
def test_invalid_request_bodies_are_bad_argument_errors(body: object, target: str) -> None:
    response = call(make_service(), QUERY_PATH, body)
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert error["code"] == "BadArgumentError"
    assert error["details"][0]["target"] == target


def test_bad_kql_is_a_bad_argument_error_with_the_kusto_chain() -> None:
    response = call(make_service(), QUERY_PATH, {"query": "bad query"})
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert error["message"] == "The request had some invalid properties"
    assert error["innererror"]["code"] == "SyntaxError"
    assert error["innererror"]["innererror"]["code"] == "SYN0002"


def test_an_engine_bug_answers_500_without_leaking_the_exception() -> None:
    def broken(*_: object) -> list[dict[str, object]]:
        raise RuntimeError("secret internals")

    response = call(make_service(engine=broken), QUERY_PATH, {"query": "AppRequests"})
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)


def test_statistics_and_render_come_back_only_when_preferred() -> None:
    service = make_service()
    plain = body_of(call(service, QUERY_PATH, {"query": "AppRequests"}, prefer=""))
    assert set(plain) == {"tables"}
    both = call(
        service,
        QUERY_PATH,
        {"query": "AppRequests"},
        prefer="include-statistics=true,include-render=true",
    )
    assert "Preference-Applied" not in both.headers  # as recorded: only wait is echoed
    body = body_of(both)
    assert body["statistics"]["query"]["inputDatasetStatistics"]["rows"]["scanned"] == 3
    assert body["statistics"]["query"]["datasetStatistics"] == [
        {"tableRowCount": 3, "tableSize": 0}
    ]
    assert body["render"]["yMin"] == "NaN"


def test_a_server_timeout_preference_is_echoed_and_capped_at_ten_minutes() -> None:
    service = make_service()
    response = call(service, QUERY_PATH, {"query": "AppRequests"}, prefer="wait=30")
    assert response.headers["Preference-Applied"] == "wait=30"
    response = call(service, QUERY_PATH, {"query": "AppRequests"}, prefer="wait=3600")
    assert response.headers["Preference-Applied"] == "wait=600"


def test_a_query_slower_than_the_server_timeout_gets_the_recorded_504() -> None:
    service = make_service(LogAnalyticsLimits(latency_s=1.5))
    response = call(service, QUERY_PATH, {"query": "AppRequests"}, prefer="wait=1")
    assert response.status_code == 504
    assert response.headers["Preference-Applied"] == "wait=1"
    error = body_of(response)["error"]
    assert (error["code"], error["message"]) == ("GatewayTimeout", "Gateway timeout")
    assert error["innererror"] == {"code": "GatewayTimeout", "message": "ADX query timed out"}
    assert service.stats()["in_flight"] == 0


def test_more_rows_than_the_row_limit_is_a_partial_result() -> None:
    service = make_service(LogAnalyticsLimits(max_rows=2), rows=5)
    response = call(service, QUERY_PATH, {"query": "AppRequests"})
    assert response.status_code == 200
    body = body_of(response)
    assert len(body["tables"][0]["rows"]) == 2
    assert body["error"]["code"] == "PartialError"
    inner = body["error"]["details"][0]["innererror"]
    assert "record count limit 2 (E_QUERY_RESULT_SET_TOO_LARGE" in inner["message"]


def test_a_result_over_the_size_limit_is_cut_to_fit_and_partial() -> None:
    service = make_service(LogAnalyticsLimits(max_response_bytes=2_000), rows=200)
    response = call(service, QUERY_PATH, {"query": "AppRequests"})
    assert response.status_code == 200
    assert len(response.get_data()) <= 2_000
    body = body_of(response)
    assert 0 < len(body["tables"][0]["rows"]) < 200
    assert "data size limit 2000" in body["error"]["details"][0]["innererror"]["message"]


def test_additional_workspaces_union_their_tables() -> None:
    service = make_service()
    service.store.add_workspace(OTHER_WORKSPACE, {"AppRequests": requests_table(4, role="b")})
    response = call(service, QUERY_PATH, {"query": "AppRequests", "workspaces": [OTHER_WORKSPACE]})
    assert len(body_of(response)["tables"][0]["rows"]) == 7
    unknown = call(service, QUERY_PATH, {"query": "AppRequests", "workspaces": ["nope"]})
    assert unknown.status_code == 400


def test_a_batch_answers_every_id_and_a_bad_entry_fails_alone() -> None:
    batch = {
        "requests": [
            {
                "id": "ok",
                "workspace": WORKSPACE,
                "body": {"query": "AppRequests"},
                "headers": {"Prefer": "include-statistics=true"},
                "path": "/query",
                "method": "POST",
            },
            {"id": "kql", "workspace": WORKSPACE, "body": {"query": "bad"}},
            {"id": "missing", "workspace": OTHER_WORKSPACE, "body": {"query": "AppRequests"}},
            {"id": "nobody", "workspace": WORKSPACE},
            {
                "id": "timeout",
                "workspace": WORKSPACE,
                "body": {"query": "AppRequests"},
                "headers": {"prefer": "wait=45"},
            },
        ]
    }
    response = call(make_service(), "/v1/$batch", batch)
    assert response.status_code == 200
    answers = {r["id"]: r for r in body_of(response)["responses"]}
    assert [r["id"] for r in body_of(response)["responses"]] == [
        "ok",
        "kql",
        "missing",
        "nobody",
        "timeout",
    ]
    assert answers["ok"]["status"] == 200
    assert "statistics" in answers["ok"]["body"]
    assert "headers" not in answers["ok"]
    assert (answers["kql"]["status"], answers["kql"]["body"]["error"]["code"]) == (
        400,
        "BadArgumentError",
    )
    assert answers["missing"]["status"] == 404
    assert answers["nobody"]["status"] == 400
    assert answers["timeout"]["headers"] == {"Preference-Applied": "wait=45"}


@pytest.mark.parametrize(
    "batch",
    [
        {},
        {"requests": []},
        {"requests": [{"workspace": WORKSPACE}]},
        {"requests": [{"id": "a", "workspace": WORKSPACE}, {"id": "a", "workspace": WORKSPACE}]},
    ],
    ids=["no-requests", "empty", "no-id", "duplicate-id"],
)
def test_a_batch_whose_answers_could_not_be_matched_is_refused_whole(batch: object) -> None:
    response = call(make_service(), "/v1/$batch", batch)
    assert response.status_code == 400
    assert body_of(response)["error"]["code"] == "BadArgumentError"


def test_a_canned_response_replays_a_recorded_answer_for_its_route_only() -> None:
    service = make_service()
    service.store.set_canned_response(
        f"/workspaces/{WORKSPACE}/query",
        status=200,
        body={"tables": [{"name": "PrimaryResult", "columns": [], "rows": []}]},
        headers={"Content-Length": "9999", "Via": "1.1 draft-oms", "Vary": ["a", "b"]},
        query="AppRequests | take 1",
    )
    hit = call(service, QUERY_PATH, {"query": "AppRequests | take 1"})
    assert body_of(hit)["tables"][0]["rows"] == []
    assert hit.headers["Via"] == "1.1 draft-oms"
    assert "Vary" not in hit.headers
    assert len(hit.get_data()) == int(hit.headers["Content-Length"])
    other_query = call(service, QUERY_PATH, {"query": "AppRequests"})
    assert len(body_of(other_query)["tables"][0]["rows"]) == 3
    batch = call(
        service,
        "/v1/$batch",
        {
            "requests": [
                {"id": "1", "workspace": WORKSPACE, "body": {"query": "AppRequests | take 1"}}
            ]
        },
    )
    assert body_of(batch)["responses"][0]["body"]["tables"][0]["rows"] == []
    service.store.clear_canned_responses()
    assert (
        len(
            body_of(call(service, QUERY_PATH, {"query": "AppRequests | take 1"}))["tables"][0][
                "rows"
            ]
        )
        == 3
    )


def test_a_canned_response_may_be_non_json_and_serves_unknown_workspaces() -> None:
    service = make_service()
    service.store.set_canned_response(
        "/workspaces/00000000-0000-0000-0000-000000000000/query", status=502, body="<html>"
    )
    direct = call(
        service, "/v1/workspaces/00000000-0000-0000-0000-000000000000/query", {"query": "anything"}
    )
    assert (direct.status_code, direct.get_data()) == (502, b"<html>")
    batch = call(
        service,
        "/v1/$batch",
        {
            "requests": [
                {
                    "id": "1",
                    "workspace": "00000000-0000-0000-0000-000000000000",
                    "body": {"query": "x"},
                }
            ]
        },
    )
    assert json.loads(batch.get_data())["responses"][0] == {
        "id": "1",
        "status": 502,
        "body": "<html>",
    }
