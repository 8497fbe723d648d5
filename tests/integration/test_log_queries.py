"""The typed log query API and the telemetry views, through the service, against the emulator
(the real LogsQueryClient inside the service); expected numbers computed here from the seed."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import pytest

from emulator.testing import EmulatorHandle
from service.db.session import Database
from service.services import audit_queue
from service.services.runtime import Runtime
from tests.integration.log_support import NOW, START, TABLES, Wired
from tests.support.api import ApiClient

SOURCES = pytest.mark.parametrize("source", ["log_analytics", "app_insights"])


def records(table: str, role: str) -> list[dict[str, Any]]:
    t = TABLES[table]
    names = [c.name for c in t.columns]
    rows = [dict(zip(names, row, strict=True)) for row in t.rows]
    role_col = "AppRoleName" if table.startswith("App") else "cloud_RoleName"
    return [r for r in rows if r[role_col] == role]


def names(source: str) -> dict[str, str]:
    if source == "log_analytics":
        return {"req": "AppRequests", "dep": "AppDependencies", "exc": "AppExceptions",
                "tr": "AppTraces", "time": "TimeGenerated", "dur": "DurationMs",
                "target": "Target", "type": "ExceptionType", "dims": "Properties"}  # fmt: skip
    return {"req": "requests", "dep": "dependencies", "exc": "exceptions", "tr": "traces",
            "time": "timestamp", "dur": "duration", "target": "target", "type": "type",
            "dims": "customDimensions"}  # fmt: skip


def failed(r: dict[str, Any]) -> bool:
    return r.get("success") == "False" or r.get("Success") is False


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def view(api: ApiClient, w: Wired, endpoint: str, kind: str, **query: str) -> dict[str, Any]:
    r = api.get(f"{w.base}/endpoints/{endpoint}/telemetry/{kind}", w.reader, query_string=query)
    assert r.status_code == 200, r.get_data(as_text=True)
    body: dict[str, Any] = r.get_json()
    return body


@SOURCES
def test_the_request_view_gives_rate_latency_and_failures_per_bin(
    api: ApiClient, wired: Wired, source: str
) -> None:
    n = names(source)
    body = view(api, wired, "scorer-a", "requests", source=source, interval="PT1H",
                timespan=f"{iso(START)}/{iso(NOW)}")  # fmt: skip
    bins: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for r in records(n["req"], "scorer-a"):
        bins[r[n["time"]].replace(minute=0, second=0, microsecond=0)].append(r)
    assert len(body["items"]) == len(bins) == 4
    assert body["schema"] == ("workspace" if source == "log_analytics" else "classic")
    for item, hour in zip(body["items"], sorted(bins), strict=True):
        group = bins[hour]
        durations = sorted(r[n["dur"]] for r in group)
        assert item["bin_start"] == iso(hour)
        assert item["requests"] == len(group)
        assert math.isclose(item["requests_per_second"], len(group) / 3600)
        assert math.isclose(item["avg_duration_ms"], math.fsum(durations) / len(group))
        assert item["p50_duration_ms"] == durations[math.ceil(0.50 * len(durations)) - 1]
        assert item["p95_duration_ms"] == durations[math.ceil(0.95 * len(durations)) - 1]
        assert item["failures"] == sum(failed(r) for r in group)
        assert math.isclose(item["failure_rate"], item["failures"] / len(group))


@SOURCES
def test_the_dependency_exception_and_trace_views_match_the_seeded_telemetry(
    api: ApiClient, wired: Wired, source: str
) -> None:
    n = names(source)
    span = f"{iso(START)}/{iso(NOW)}"
    deps = view(api, wired, "scorer-b", "dependencies", source=source, timespan=span)["items"]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records(n["dep"], "scorer-b"):
        groups[r[n["target"]]].append(r)
    assert {d["target"]: d["calls"] for d in deps} == {t: len(g) for t, g in groups.items()}
    for d in deps:
        g = groups[d["target"]]
        assert math.isclose(d["avg_duration_ms"], math.fsum(r[n["dur"]] for r in g) / len(g))
        assert d["failures"] == sum(failed(r) for r in g)
        assert math.isclose(d["calls_per_second"], len(g) / (NOW - START).total_seconds())

    exc = view(api, wired, "scorer-b", "exceptions", source=source, timespan=span)["items"]
    mine = records(n["exc"], "scorer-b")
    assert {e["exception_type"]: e["exceptions"] for e in exc} == Counter(
        r[n["type"]] for r in mine
    )
    latest = max(mine, key=lambda r: r[n["time"]])
    top = next(e for e in exc if e["exception_type"] == latest[n["type"]])
    assert top["last_seen"] == iso(latest[n["time"]])

    traces = view(api, wired, "scorer-b", "traces", source=source, timespan=span,
                  contains="input", limit="5")["items"]  # fmt: skip
    expected = sorted((r for r in records(n["tr"], "scorer-b") if "input" in r[n["dims"]]),
                      key=lambda r: r[n["time"]], reverse=True)[:5]  # fmt: skip
    assert [t["timestamp"] for t in traces] == [iso(r[n["time"]]) for r in expected]
    for t, r in zip(traces, expected, strict=True):
        assert t["data"]["input"] == r[n["dims"]]["input"]  # score.py's printed JSON, parsed
        assert t["custom_dimensions"]["Service Name"] == "scorer-b"


def test_a_kql_query_returns_typed_tables_and_is_audited_with_its_figures(
    api: ApiClient, wired: Wired, database: Database
) -> None:
    query = "AppRequests | summarize n = count() by AppRoleName | order by AppRoleName asc"
    r = api.post(f"{wired.base}/logs/query", wired.reader,
                 json={"query": query, "timespan": "P1D", "include_statistics": True})  # fmt: skip
    assert r.status_code == 200, r.get_data(as_text=True)
    body = r.get_json()
    assert body["status"] == "success"
    (table,) = body["tables"]
    assert table["columns"] == [{"name": "AppRoleName", "type": "string"},
                                {"name": "n", "type": "long"}]  # fmt: skip
    counts = Counter(row[TABLES["AppRequests"].columns.index(
        next(c for c in TABLES["AppRequests"].columns if c.name == "AppRoleName"))]
        for row in TABLES["AppRequests"].rows)  # fmt: skip
    assert table["rows"] == [[role, counts[role]] for role in sorted(counts)]
    assert body["statistics"] is not None

    events = api.get("/v1/audit-events", wired.reader, query_string={"action": "logs.query"})
    (event, *_) = events.get_json()["items"]
    after = event["after"]
    assert after["query"] == query
    assert after["status"] == "success"
    assert after["rows"] == 2
    assert after["bytes"] > 0
    assert after["timespan"] == "P1D"  # as sent (canonical ISO 8601), not PT86400.0S
    assert len(after["query_sha256"]) == 64
    assert after["duration_ms"] >= 0


@pytest.mark.parametrize(
    "query",
    [".show tables", "  // comment\n  .set x = 1", "x" * 10_001],
    ids=["control", "control-after-comment", "too-long"],
)
def test_control_commands_and_over_long_queries_are_refused_before_azure(
    api: ApiClient, wired: Wired, emulator: EmulatorHandle, query: str
) -> None:
    mark = emulator.bookmark()
    r = api.post(f"{wired.base}/logs/query", wired.reader, json={"query": query})
    assert r.status_code == 400
    assert r.get_json()["code"] == "validation_failed"
    assert emulator.requests("la.", since=mark) == []


def test_bad_kql_is_a_400_carrying_azures_innererror(api: ApiClient, wired: Wired) -> None:
    r = api.post(f"{wired.base}/logs/query", wired.reader, json={"query": "AppRequests | where"})
    assert r.status_code == 400
    problem = r.get_json()
    assert problem["code"] == "query_rejected"
    assert problem["azure_error"]["innererror"]["code"] == "SyntaxError"


def test_a_rejected_query_puts_kustos_own_cause_in_the_detail(api: ApiClient, wired: Wired) -> None:
    r = api.post(f"{wired.base}/logs/query", wired.reader, json={"query": "NoSuchTable | take 1"})
    assert r.status_code == 400
    problem = r.get_json()
    assert problem["code"] == "query_rejected"
    assert problem["detail"] == "Failed to resolve table or column expression named 'NoSuchTable'"
    assert problem["azure_error"]["message"] == "The request had some invalid properties"


@pytest.mark.parametrize(
    ("source", "table", "advice"),
    [
        (None, "traces", "whose table is 'AppTraces'"),
        ("log_analytics", "requests", "whose table is 'AppRequests'"),
        ("app_insights", "AppExceptions", "whose table is 'exceptions'"),
    ],
)
def test_a_table_of_the_other_schema_gets_told_which_table_or_source_to_use(
    api: ApiClient, wired: Wired, source: str | None, table: str, advice: str
) -> None:
    body: dict[str, Any] = {"query": f"{table} | take 1"}
    if source is not None:
        body["source"] = source
    r = api.post(f"{wired.base}/logs/query", wired.reader, json=body)
    assert r.status_code == 400
    detail = r.get_json()["detail"]
    assert detail.startswith(f"Failed to resolve table or column expression named '{table}'")
    assert advice in detail
    other = "app_insights" if source != "app_insights" else "log_analytics"
    assert f'"source": "{other}"' in detail


def test_a_partial_result_keeps_azures_details_and_innererror(
    api: ApiClient, wired: Wired, emulator: EmulatorHandle
) -> None:
    inner = {"code": "E_QUERY_RESULT_SET_TOO_LARGE", "message": "too big"}
    error = {"code": "PartialError", "message": "There were some errors when processing your "
             "query.", "details": [{"code": "EngineError", "message": "Something went wrong.",
             "innererror": inner}]}  # fmt: skip
    body = {"tables": [{"name": "PrimaryResult", "columns": [{"name": "n", "type": "long"}],
            "rows": [[1]]}], "error": error}  # fmt: skip
    emulator.state.telemetry.set_canned_response(
        f"/workspaces/{wired.box.log_analytics_workspace_id}/query", status=200, body=body
    )
    r = api.post(f"{wired.base}/logs/query", wired.reader, json={"query": "AppRequests"})
    assert r.status_code == 200
    got = r.get_json()
    assert got["status"] == "partial"
    assert got["tables"][0]["rows"] == [[1]]
    assert got["error"] == error


def test_azure_throttling_and_server_errors_are_retried_or_mapped_never_a_500(
    api: ApiClient, wired: Wired, emulator: EmulatorHandle
) -> None:
    tid, url = wired.box.tenant_id, f"{wired.base}/logs/query"
    ok = {"query": "AppRequests | take 1"}
    emulator.add_fault("throttle", "la.", retry_after_s=1, count=1, tenant_id=tid)
    emulator.add_fault("status", "la.", status=503, count=1, tenant_id=tid)
    assert api.post(url, wired.reader, json=ok).status_code == 200  # both retried

    emulator.add_fault("throttle", "la.", retry_after_s=40, count=1, tenant_id=tid)
    r = api.post(url, wired.reader, json=ok)
    assert (r.status_code, r.headers["Retry-After"]) == (429, "40")  # too long to wait inline

    emulator.add_fault("status", "la.", status=504, count=1, tenant_id=tid)
    assert api.post(url, wired.reader, json=ok).get_json()["code"] == "query_timeout"

    emulator.add_fault("status", "la.", status=500, count=3, tenant_id=tid)
    r = api.post(url, wired.reader, json=ok)
    assert (r.status_code, r.get_json()["code"]) == (503, "azure_unavailable")


def test_results_over_the_row_cap_are_cut_with_a_clear_error(
    api: ApiClient, wired: Wired, app: Any
) -> None:
    rt = app.extensions["amlcp.runtime"]
    settings = rt.settings
    rt.settings = settings.with_overrides(
        log_query=settings.log_query.__class__(max_rows=3, max_bytes=4096)
    )
    try:
        r = api.post(
            f"{wired.base}/logs/query",
            wired.reader,
            json={"query": "AppRequests | take 5 | project Id"},
        )
        body = r.get_json()
        assert (body["status"], len(body["tables"][0]["rows"])) == ("partial", 3)
        assert "LOG_QUERY_MAX_ROWS" in body["error"]["message"]
        r = api.post(
            f"{wired.base}/logs/query", wired.reader, json={"query": "AppTraces | take 50"}
        )
        assert (r.status_code, r.get_json()["code"]) == (400, "result_too_large")
    finally:
        rt.settings = settings


def test_query_audit_events_are_written_off_the_request_path_in_order(
    api: ApiClient, wired: Wired, runtime: Runtime, database: Database
) -> None:
    from sqlalchemy import select

    from service.db.models import AuditEvent

    queries = [f"AppRequests | take {n}" for n in range(1, 6)]
    for query in queries:
        r = api.post(f"{wired.base}/logs/query", wired.reader, json={"query": query})
        assert r.status_code == 200, r.get_data(as_text=True)
    audit_queue.flush(runtime)  # deterministic: whatever the writer thread has not written yet
    assert audit_queue.queue_for(runtime).pending() == 0
    with database.session_factory() as s:
        rows = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "logs.query", AuditEvent.tenant_id.is_not(None))
            .order_by(AuditEvent.id.desc())
            .limit(5)
        ).all()
    assert [e.after["query"] for e in reversed(rows)] == queries
    assert all(e.request_id for e in rows)
