"""table_to_wire: the Log Analytics JSON encoding of every column type."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from emulator.kql import Column, Table, execute
from emulator.kql.wire import table_to_wire


def test_every_type_is_encoded_as_the_service_does() -> None:
    columns = [Column(n, t) for n, t in [
        ("dt", "datetime"), ("ts", "timespan"), ("dyn", "dynamic"), ("b", "bool"),
        ("l", "long"), ("i", "int"), ("r", "real"), ("g", "guid"), ("s", "string"),
    ]]  # fmt: skip
    rows = [
        [datetime(2024, 1, 1, tzinfo=UTC), timedelta(hours=1), {"a": [1, "x"]}, True, 5, 3, 1.5,
         "0f8fad5b-d9cb-469f-a165-70867728950e", "text"],
        [datetime(2024, 1, 1, 1, 2, 3, 450000, tzinfo=UTC),
         timedelta(days=2, hours=3, minutes=4, seconds=5, microseconds=678900), "just text",
         False, 2**40, -1, math.nan, None, ""],
        [None, -timedelta(minutes=5), [1, 2], None, None, None, math.inf, None, None],
        [None, None, None, None, None, None, -math.inf, None, None],
    ]  # fmt: skip
    wire = table_to_wire(Table("PrimaryResult", columns, rows))
    assert wire["name"] == "PrimaryResult"
    assert wire["columns"][0] == {"name": "dt", "type": "datetime"}
    assert wire["rows"] == [
        ["2024-01-01T00:00:00Z", "01:00:00", '{"a":[1,"x"]}', True, 5, 3, 1.5,
         "0f8fad5b-d9cb-469f-a165-70867728950e", "text"],
        ["2024-01-01T01:02:03.45Z", "2.03:04:05.6789000", "just text", False, 2**40, -1, "NaN",
         None, ""],
        [None, "-00:05:00", "[1,2]", None, None, None, "Infinity", None, None],
        [None, None, None, None, None, None, "-Infinity", None, None],
    ]  # fmt: skip
    assert json.loads(json.dumps(wire, allow_nan=False)) == wire  # strict JSON, no NaN tokens


def test_query_results_round_trip_through_the_wire_format() -> None:
    (table,) = execute(
        'print when = datetime(2024-05-06T07:08:09.1234567Z), span = 90s, bag = dynamic({"k": 1})',
        {},
        now=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert table_to_wire(table)["rows"] == [["2024-05-06T07:08:09.123456Z", "00:01:30",
                                             '{"k":1}']]  # fmt: skip
