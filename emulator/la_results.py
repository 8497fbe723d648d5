"""Success and partial bodies of the query API: result limits, statistics and render objects."""

from __future__ import annotations

import json
from typing import Any

from emulator import la_errors
from emulator.la_limits import LogAnalyticsLimits
from emulator.la_request import Preferences

JsonObject = dict[str, Any]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=True).encode


def _render_object() -> JsonObject:
    # Exactly the render object of a query without a `render` operator, as recorded
    # (test_logs_single_query_with_visualization); "NaN" is a string in the real body.
    return {
        "visualization": None,
        "title": None,
        "accumulate": False,
        "isQuerySorted": False,
        "kind": None,
        "legend": None,
        "series": None,
        "yMin": "NaN",
        "yMax": "NaN",
        "xAxis": None,
        "xColumn": None,
        "xTitle": None,
        "yAxis": None,
        "yColumns": None,
        "ySplit": None,
        "yTitle": None,
        "anomalyColumns": None,
    }


def _statistics_object(
    execution_s: float, scanned_rows: int, tables: list[JsonObject]
) -> JsonObject:
    # The recorded statistics shape (test_logs_single_query_with_statistics) with the figures
    # the emulator can know; cache/shard counters of the real cluster stay zero.
    zero_cache = {"hits": 0, "misses": 0, "total": 0}
    zero_shard = {"hitbytes": 0, "missbytes": 0, "retrievebytes": 0}
    return {
        "query": {
            "executionTime": round(execution_s, 7),
            "resourceUsage": {
                "cache": {
                    "memory": dict(zero_cache),
                    "disk": dict(zero_cache),
                    "shards": {"hot": dict(zero_shard), "cold": dict(zero_shard), "bypassbytes": 0},
                },
                "cpu": {"user": "00:00:00", "kernel": "00:00:00", "totalCpu": "00:00:00"},
                "memory": {"peakPerNode": 524384},
                "network": {"interClusterTotalBytes": 0, "crossClusterTotalBytes": 0},
            },
            "inputDatasetStatistics": {
                "extents": {
                    "total": 0,
                    "scanned": 0,
                    "scannedMinDatetime": "0001-01-01T00:00:00.0000000Z",
                    "scannedMaxDatetime": "0001-01-01T00:00:00.0000000Z",
                },
                "rows": {"total": scanned_rows, "scanned": scanned_rows},
                "rowstores": {"scannedRows": 0, "scannedValuesSize": 0},
                "shards": {"queriesGeneric": 0, "queriesSpecialized": 0},
            },
            "datasetStatistics": [
                {"tableRowCount": len(t["rows"]), "tableSize": 0} for t in tables
            ],
            "crossClusterResourceUsage": {},
        }
    }


def _cut_rows(tables: list[JsonObject], max_rows: int) -> tuple[list[JsonObject], bool]:
    """Keep at most `max_rows` rows over all tables, in order; report whether any were cut."""
    if sum(len(t["rows"]) for t in tables) <= max_rows:
        return tables, False
    kept: list[JsonObject] = []
    budget = max_rows
    for table in tables:
        rows = table["rows"][: max(budget, 0)]
        budget -= len(rows)
        kept.append({**table, "rows": rows})
    return kept, True


def query_body(
    tables: list[JsonObject],
    prefer: Preferences,
    limits: LogAnalyticsLimits,
    *,
    execution_s: float,
    scanned_rows: int,
    engine_error: JsonObject | None = None,
) -> bytes:
    """Serialize a query result, cutting it to the row and size limits as Kusto does.

    A cut result is a 200 with the rows that fit and a PartialError beside `tables`, which
    azure-monitor-query turns into a LogsQueryPartialResult. `engine_error` is a PartialError
    the engine itself reported (an aggregation overflow); its details come first.
    """
    tables, cut = _cut_rows(tables, limits.max_rows)
    error = la_errors.partial_error("record count", limits.max_rows) if cut else None
    error = _combine(engine_error, error)
    body = _assemble(tables, prefer, error, execution_s, scanned_rows)
    encoded = _dumps(body).encode()
    while len(encoded) > limits.max_response_bytes:
        # Shrink by the overshoot ratio (plus a margin) until the body fits; few iterations.
        total = sum(len(t["rows"]) for t in tables)
        if total == 0:
            break
        keep = int(total * limits.max_response_bytes / len(encoded) * 0.95)
        tables, _ = _cut_rows(tables, max(keep, 0) if keep < total else total - 1)
        error = _combine(
            engine_error, la_errors.partial_error("data size", limits.max_response_bytes)
        )
        body = _assemble(tables, prefer, error, execution_s, scanned_rows)
        encoded = _dumps(body).encode()
    return encoded


def _combine(first: JsonObject | None, second: JsonObject | None) -> JsonObject | None:
    """One PartialError carrying the details of both (either may be None)."""
    if first is None or second is None:
        return first or second
    return {**first, "details": [*first["details"], *second["details"]]}


def _assemble(
    tables: list[JsonObject],
    prefer: Preferences,
    error: JsonObject | None,
    execution_s: float,
    scanned_rows: int,
) -> JsonObject:
    body: JsonObject = {"tables": tables}
    if prefer.include_statistics:
        body["statistics"] = _statistics_object(execution_s, scanned_rows, tables)
    if prefer.include_render:
        body["render"] = _render_object()
    if error is not None:
        body["error"] = error
    return body


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, the one serializer of every emulator answer."""
    return _dumps(value).encode()
