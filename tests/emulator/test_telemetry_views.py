"""The product's telemetry views (issue 6) over generated telemetry, in both schemas, checked
against numbers computed directly from the generated rows; plus generator properties."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from emulator.kql import Table, execute
from emulator.kql.schemas import CLASSIC_COLUMNS, WORKSPACE_COLUMNS
from emulator.kql.wire import table_to_wire
from emulator.telemetry import TelemetrySpec, generate, large_table

START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(hours=6)
NOW = END
SPEC = TelemetrySpec(roles=("svc-a", "svc-b"), start=START, end=END, requests_per_hour=120.0,
                     failure_rate=0.1, seed=7)  # fmt: skip
TABLES = generate(SPEC)

# Column names of each schema, so one test body serves both.
CLASSIC = {"req": "requests", "dep": "dependencies", "exc": "exceptions", "tr": "traces",
           "time": "timestamp", "role": "cloud_RoleName", "dur": "duration",
           "ok": 'success == "False"', "target": "target", "type": "type",
           "msg": "outerMessage", "dims": "customDimensions", "text": "message"}  # fmt: skip
WORKSPACE = {"req": "AppRequests", "dep": "AppDependencies", "exc": "AppExceptions",
             "tr": "AppTraces", "time": "TimeGenerated", "role": "AppRoleName",
             "dur": "DurationMs", "ok": "Success == false", "target": "Target",
             "type": "ExceptionType", "msg": "OuterMessage", "dims": "Properties",
             "text": "Message"}  # fmt: skip
SCHEMAS = pytest.mark.parametrize("names", [CLASSIC, WORKSPACE], ids=["classic", "workspace"])


def records(table: str) -> list[dict[str, Any]]:
    t = TABLES[table]
    return [dict(zip((c.name for c in t.columns), row, strict=True)) for row in t.rows]


def query(text: str) -> list[dict[str, Any]]:
    (result,) = execute(text, TABLES, now=NOW, timespan=(START, END))
    return [dict(zip((c.name for c in result.columns), row, strict=True)) for row in result.rows]


def failed(record: dict[str, Any]) -> bool:
    return record.get("success") == "False" or record.get("Success") is False


def assert_rows_close(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Equal rows, floats equal up to summation-order rounding."""
    assert [list(r) for r in got] == [list(r) for r in expected]  # same columns, same order
    for g, e in zip(got, expected, strict=True):
        for key, value in e.items():
            if isinstance(value, float):
                assert math.isclose(g[key], value, rel_tol=1e-12), key
            else:
                assert g[key] == value, key


def nearest_rank_95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


@SCHEMAS
def test_request_view(names: dict[str, str]) -> None:
    got = query(
        f"{names['req']} | where {names['role']} == 'svc-a'"
        f" | summarize requests = count(), avg_ms = avg({names['dur']}),"
        f" p95_ms = percentile({names['dur']}, 95), failures = countif({names['ok']})"
        f" by bin({names['time']}, 1h)"
        " | extend failure_rate = todouble(failures) / requests"
        f" | order by {names['time']} asc"
    )
    bins: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for r in records(names["req"]):
        if r[names["role"]] == "svc-a":
            bins[r[names["time"]].replace(minute=0, second=0, microsecond=0)].append(r)
    expected = []
    for hour in sorted(bins):
        group = bins[hour]
        durations = [r[names["dur"]] for r in group]
        failures = sum(failed(r) for r in group)
        expected.append({names["time"]: hour, "requests": len(group),
                         "avg_ms": math.fsum(durations) / len(group),
                         "p95_ms": nearest_rank_95(durations), "failures": failures,
                         "failure_rate": failures / len(group)})  # fmt: skip
    assert len(expected) == 6
    assert_rows_close(got, expected)


@SCHEMAS
def test_dependency_view(names: dict[str, str]) -> None:
    got = query(
        f"{names['dep']} | where {names['role']} == 'svc-b'"
        f" | summarize calls = count(), avg_ms = avg({names['dur']}),"
        f" failed = countif({names['ok']}) by {names['target']} | order by calls desc"
    )
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records(names["dep"]):
        if r[names["role"]] == "svc-b":
            groups[r[names["target"]]].append(r)
    expected = sorted(
        ({names["target"]: target, "calls": len(g),
          "avg_ms": math.fsum(r[names["dur"]] for r in g) / len(g),
          "failed": sum(failed(r) for r in g)} for target, g in groups.items()),
        key=lambda row: -row["calls"],
    )  # fmt: skip
    assert len(expected) == 2  # the blob store and the SQL database
    assert_rows_close(got, expected)


@SCHEMAS
def test_exception_view(names: dict[str, str]) -> None:
    counts = query(
        f"{names['exc']} | where {names['role']} == 'svc-a'"
        f" | summarize n = count() by {names['type']} | order by n desc, {names['type']} asc"
    )
    expected = Counter(r[names["type"]] for r in records(names["exc"])
                       if r[names["role"]] == "svc-a")  # fmt: skip
    assert counts == sorted(({names["type"]: t, "n": n} for t, n in expected.items()),
                            key=lambda row: (-row["n"], row[names["type"]]))  # fmt: skip
    latest = query(
        f"{names['exc']} | where {names['role']} == 'svc-a'"
        f" | top 3 by {names['time']} desc | project {names['time']}, {names['msg']}"
    )
    mine = sorted((r for r in records(names["exc"]) if r[names["role"]] == "svc-a"),
                  key=lambda r: r[names["time"]], reverse=True)[:3]  # fmt: skip
    assert latest == [{names["time"]: r[names["time"]], names["msg"]: r[names["msg"]]}
                      for r in mine]  # fmt: skip


@SCHEMAS
def test_trace_view_finds_score_py_json(names: dict[str, str]) -> None:
    got = query(
        f"{names['tr']} | where {names['role']} == 'svc-b'"
        f" | where {names['dims']} contains 'input' | top 10 by {names['time']} desc"
        f" | project {names['time']}, {names['text']}, {names['dims']}"
    )
    mine = sorted((r for r in records(names["tr"]) if r[names["role"]] == "svc-b"
                   and "input" in r[names["dims"]]),
                  key=lambda r: r[names["time"]], reverse=True)[:10]  # fmt: skip
    assert got == [{names["time"]: r[names["time"]], names["text"]: r[names["text"]],
                    names["dims"]: r[names["dims"]]} for r in mine]  # fmt: skip
    for row in got:  # the message is the printed JSON; its content is in the dimensions
        printed = json.loads(row[names["text"]])
        assert row[names["dims"]]["input"] == printed["input"]
        assert row[names["dims"]]["Service Name"] == "svc-b"


def test_both_schemas_hold_the_same_events() -> None:
    for classic, app, pairs in [
        ("requests", "AppRequests", [("timestamp", "TimeGenerated"), ("id", "Id"),
                                     ("duration", "DurationMs"), ("cloud_RoleName", "AppRoleName"),
                                     ("operation_Id", "OperationId")]),
        ("traces", "AppTraces", [("timestamp", "TimeGenerated"), ("message", "Message"),
                                 ("customDimensions", "Properties")]),
        ("exceptions", "AppExceptions", [("problemId", "ProblemId"), ("type", "ExceptionType")]),
        ("dependencies", "AppDependencies", [("target", "Target"), ("type", "DependencyType")]),
    ]:  # fmt: skip
        left, right = records(classic), records(app)
        assert len(left) == len(right) > 0
        for a, b in zip(left, right, strict=True):
            assert [a[x] for x, _ in pairs] == [b[y] for _, y in pairs]


def test_operations_link_requests_to_their_children() -> None:
    operations = {r["operation_Id"] for r in records("requests")}
    for child in ("dependencies", "exceptions"):
        assert {r["operation_Id"] for r in records(child)} <= operations
    failed_ops = {r["operation_Id"] for r in records("requests") if r["resultCode"] == "500"}
    assert {r["operation_Id"] for r in records("exceptions")} == failed_ops


def test_schemas_and_types() -> None:
    for name, table in TABLES.items():
        expected = CLASSIC_COLUMNS.get(name) or WORKSPACE_COLUMNS[name]
        assert tuple(table.columns) == expected
        assert all(len(row) == len(expected) for row in table.rows)
    assert [(c.name, c.type) for c in WORKSPACE_COLUMNS["AppRequests"][:10]] == [
        ("TenantId", "string"), ("TimeGenerated", "datetime"), ("Id", "string"),
        ("Source", "string"), ("Name", "string"), ("Url", "string"), ("Success", "bool"),
        ("ResultCode", "string"), ("DurationMs", "real"), ("PerformanceBucket", "string"),
    ]  # fmt: skip
    assert len(WORKSPACE_COLUMNS["AppRequests"]) == 41
    assert len(CLASSIC_COLUMNS["requests"]) == 37


def test_generation_is_deterministic_and_realistic() -> None:
    again = generate(SPEC)
    assert {k: t.rows for k, t in again.items()} == {k: t.rows for k, t in TABLES.items()}
    other = generate(TelemetrySpec(roles=SPEC.roles, start=START, end=END, seed=8))
    assert other["requests"].rows != TABLES["requests"].rows
    reqs = records("requests")
    assert 0.7 * 1440 < len(reqs) < 1.3 * 1440  # 2 roles x 6 h x 120/h
    assert 0.05 < sum(failed(r) for r in reqs) / len(reqs) < 0.15
    assert all(START <= r["timestamp"] < END for r in reqs)
    assert {r["cloud_RoleInstance"] for r in reqs if r["cloud_RoleName"] == "svc-a"}.__len__() == 2


def test_large_table_is_about_the_requested_size() -> None:
    table: Table = large_table(2_000_000)
    size = len(json.dumps(table_to_wire(table)))
    assert 1_800_000 < size < 2_200_000
