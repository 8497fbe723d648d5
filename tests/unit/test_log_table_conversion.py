"""The typed query reads Azure's JSON itself (issue 16): every value must come out exactly as
it did when LogsQueryClient's LogsTable gave it and the adapter converted it."""

from __future__ import annotations

import json
from typing import Any

from azure.monitor.query import LogsTable

from service.adapters import logs

COLUMNS = [
    {"name": "at", "type": "datetime"},
    {"name": "took", "type": "timespan"},
    {"name": "id", "type": "guid"},
    {"name": "props", "type": "dynamic"},
    {"name": "n", "type": "long"},
    {"name": "name", "type": "string"},
]
ROWS: list[list[Any]] = [
    ["2026-11-30T16:00:00.1234567Z", "00:00:01.5", "5f0c", '{"a": [1, 2]}', 1, "x"],
    ["2026-11-30T16:00:00Z", "1.00:00:00", None, "not json", None, None],
    ["2026-11-30T16:00:00.5z", None, "g", None, 3, ""],
    ["2026-11-30T16:00:00.000Z", 12, 7, '"s"', 0, "y"],
    ["2026-11-30T18:00:00.25+02:00", "x", "y", "[1]", 2, "z"],  # an offset: the SDK's path
    ["2026-02-30T16:00:00Z", "x", "y", "{}", 2, "z"],  # no such day: given back as is
    ["0000-01-01T00:00:00Z", None, None, None, None, None],
    [None, None, None, None, None, None],
    [12345, None, None, {"already": "parsed"}, None, None],
    ["yesterday", None, None, None, None, None],
]


def through_the_sdk(table: dict[str, Any]) -> list[list[Any]]:
    """What the adapter returned when LogsQueryClient parsed the answer (its former _table)."""
    sdk = LogsTable._from_generated(json.loads(json.dumps(table)))
    converters = [logs._CONVERT.get(t) for t in sdk.columns_types]
    rows = []
    for row in sdk.rows:
        values = list(row)
        for i, convert in enumerate(converters):
            if convert is not None and values[i] is not None:
                values[i] = convert(values[i])
        rows.append(values)
    return rows


def test_every_value_comes_out_as_the_sdk_and_the_former_conversion_gave_it() -> None:
    table = {"name": "PrimaryResult", "columns": COLUMNS, "rows": ROWS}
    ours = logs._table(json.loads(json.dumps(table)))
    assert ours.name == "PrimaryResult"
    assert ours.columns == tuple((c["name"], c["type"]) for c in COLUMNS)
    assert ours.rows == through_the_sdk(table)
    assert ours.rows[0][0] == "2026-11-30T16:00:00.123456Z"  # cut to microseconds
    assert ours.rows[1][0] == "2026-11-30T16:00:00Z"


def test_tables_of_plain_columns_are_passed_as_they_are() -> None:
    table = {
        "name": "t",
        "columns": [{"name": "a", "type": "string"}, {"name": "b", "type": "real"}],
        "rows": [["x", 1.5], [None, None]],
    }
    assert logs._table(table).rows == through_the_sdk(table) == [["x", 1.5], [None, None]]


def test_the_environment_requests_would_read_per_call_is_read_once_with_the_same_result(
    monkeypatch: Any,
) -> None:
    """The log clients no longer let requests scan the environment on every call (issue 16);
    what it would have found there still applies: the proxy, NO_PROXY, the CA bundle."""
    from service.config import AzureSettings

    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    settings = AzureSettings()
    verify, proxy = logs._environment(settings)
    assert verify == "/etc/ca.pem"
    assert proxy == "http://proxy.example:3128"
    monkeypatch.setenv("NO_PROXY", "api.loganalytics.io")
    assert logs._environment(settings)[1] is None
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "http://all.example:3128")
    assert logs._environment(settings)[1] == "http://all.example:3128"
    configured = AzureSettings(ca_bundle="/run/emulator-ca.pem")
    assert logs._environment(configured)[0] == "/run/emulator-ca.pem"
